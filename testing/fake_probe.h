#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autoscaler/probe.h"

/// Fakes of the probe seams for the service's unit tests: answers set per host:port, every call
/// counted and recorded. Thread-safe; they never block and never touch the network.
namespace ra::testing {

using autoscaler::PrimaryFacts;
using autoscaler::PrimaryLocator;
using autoscaler::PrimaryState;
using autoscaler::ProbeResult;
using autoscaler::ReplicaProbe;

/// A ReplicaProbe that answers what the test set for each host:port.
class FakeReplicaProbe final : public ReplicaProbe {
 public:
  /// Computes a probe's answer from the primary LSN the caller passed (e.g. a replica whose
  /// replay position the test moves).
  using Responder =
      std::function<ProbeResult(const std::string& host, int port, int64_t primary_lsn)>;

  struct Call {
    std::string method;  ///< "PrimaryPosition", "ProbeReplica" or "ReplicationLatencies"
    std::string host;
    int port = 0;
    int64_t primary_lsn = -1;  ///< ProbeReplica's argument; -1 for the others
  };

  /// The system identifier and timeline every fake primary and replica has unless a test says
  /// otherwise.
  static constexpr const char* kSystemId = "7300000000000000001";
  static constexpr int64_t kTimeline = 1;

  /// A replica caught up: reachable, in recovery, both lags 0, streaming the primary's timeline,
  /// no client session.
  static ProbeResult CaughtUp() { return Lagging(0, 0.0); }
  /// A replica behind by `bytes` and `seconds`, still streaming.
  static ProbeResult Lagging(int64_t bytes, double seconds) {
    ProbeResult r;
    r.reachable = true;
    r.in_recovery = true;
    r.lag_bytes = bytes;
    r.lag_seconds = seconds;
    r.system_identifier = kSystemId;
    r.receiver_status = "streaming";
    r.receiver_timeline = kTimeline;
    r.receiver_silence_seconds = 0.5;
    r.upstream = "10.0.0.1:5432";
    r.client_sessions = 0;
    return r;
  }
  /// The primary at `lsn` (flushed up to it), timeline kTimeline, system kSystemId.
  static PrimaryFacts Primary(int64_t lsn) {
    return PrimaryFacts{
        .lsn = lsn, .flush_lsn = lsn, .timeline = kTimeline, .system_identifier = kSystemId};
  }
  /// PQping did not get an answer.
  static ProbeResult Unreachable(std::string error = "PQping: no response") {
    ProbeResult r;
    r.error = std::move(error);
    return r;
  }

  /// What PrimaryPosition(host, port) returns from now on: Primary(lsn), or the error.
  void SetPrimaryLsn(const std::string& host, int port, Result<int64_t> answer) {
    if (!answer) return SetPrimary(host, port, Fail(answer.error()));
    SetPrimary(host, port, Primary(*answer));
  }
  /// What PrimaryPosition(host, port) returns from now on.
  void SetPrimary(const std::string& host, int port, Result<PrimaryFacts> answer) {
    std::lock_guard lock(mu_);
    primary_.insert_or_assign(Key(host, port), std::move(answer));
  }
  /// What ProbeReplica(host, port, ...) returns from now on, whatever the primary LSN.
  void SetProbe(const std::string& host, int port, ProbeResult answer) {
    std::lock_guard lock(mu_);
    responders_.erase(Key(host, port));
    probes_.insert_or_assign(Key(host, port), std::move(answer));
  }
  /// ProbeReplica(host, port, lsn) returns responder(host, port, lsn) from now on.
  void SetProbeResponder(const std::string& host, int port, Responder responder) {
    std::lock_guard lock(mu_);
    probes_.erase(Key(host, port));
    responders_.insert_or_assign(Key(host, port), std::move(responder));
  }
  /// What ReplicationLatencies(host, port) returns from now on (application_name -> seconds,
  /// or an error).
  void SetReplicationLatencies(const std::string& host, int port,
                               Result<std::map<std::string, double>> answer) {
    std::lock_guard lock(mu_);
    latencies_.insert_or_assign(Key(host, port), std::move(answer));
  }
  /// Forgets every answer set for host:port (calls stay counted).
  void Forget(const std::string& host, int port) {
    std::lock_guard lock(mu_);
    primary_.erase(Key(host, port));
    latencies_.erase(Key(host, port));
    probes_.erase(Key(host, port));
    responders_.erase(Key(host, port));
  }

  /// Unset: kTransient naming the address.
  Result<PrimaryFacts> PrimaryPosition(const std::string& host, int port) override {
    std::lock_guard lock(mu_);
    calls_.push_back({"PrimaryPosition", host, port, -1});
    auto it = primary_.find(Key(host, port));
    if (it == primary_.end()) {
      return Fail(ErrorKind::kTransient,
                  fmt::format("FakeReplicaProbe: no primary position set for {}", Key(host, port)));
    }
    return it->second;
  }

  /// Unset: unreachable, with an error naming the address.
  ProbeResult ProbeReplica(const std::string& host, int port, int64_t primary_lsn) override {
    Responder responder;
    {
      std::lock_guard lock(mu_);
      calls_.push_back({"ProbeReplica", host, port, primary_lsn});
      if (auto it = probes_.find(Key(host, port)); it != probes_.end()) return it->second;
      auto it = responders_.find(Key(host, port));
      if (it == responders_.end()) {
        return Unreachable(
            fmt::format("FakeReplicaProbe: no probe answer set for {}", Key(host, port)));
      }
      responder = it->second;
    }
    // Outside the lock: a responder may call back into the fake.
    return responder(host, port, primary_lsn);
  }

  /// Unset: kTransient naming the address.
  Result<std::map<std::string, double>> ReplicationLatencies(const std::string& primary_host,
                                                             int primary_port) override {
    std::lock_guard lock(mu_);
    calls_.push_back({"ReplicationLatencies", primary_host, primary_port, -1});
    auto it = latencies_.find(Key(primary_host, primary_port));
    if (it == latencies_.end()) {
      return Fail(ErrorKind::kTransient,
                  fmt::format("FakeReplicaProbe: no replication latencies set for {}",
                              Key(primary_host, primary_port)));
    }
    return it->second;
  }

  int primary_lsn_calls(const std::string& host, int port) const {
    return Count("PrimaryPosition", &host, port);
  }
  int probe_calls(const std::string& host, int port) const {
    return Count("ProbeReplica", &host, port);
  }
  int latency_calls(const std::string& host, int port) const {
    return Count("ReplicationLatencies", &host, port);
  }
  int primary_lsn_calls() const { return Count("PrimaryPosition", nullptr, 0); }
  int probe_calls() const { return Count("ProbeReplica", nullptr, 0); }

  /// The primary LSN passed to the last ProbeReplica of host:port; empty when never probed.
  std::optional<int64_t> last_primary_lsn(const std::string& host, int port) const {
    std::lock_guard lock(mu_);
    for (auto it = calls_.rbegin(); it != calls_.rend(); ++it) {
      if (it->method == "ProbeReplica" && it->host == host && it->port == port) {
        return it->primary_lsn;
      }
    }
    return std::nullopt;
  }

  /// Every call so far, in order.
  std::vector<Call> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  static std::string Key(const std::string& host, int port) {
    return fmt::format("{}:{}", host, port);
  }
  int Count(const char* method, const std::string* host, int port) const {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const Call& c : calls_) {
      if (c.method == method && (host == nullptr || (c.host == *host && c.port == port))) ++n;
    }
    return n;
  }

  mutable std::mutex mu_;
  std::map<std::string, Result<PrimaryFacts>> primary_;
  std::map<std::string, ProbeResult> probes_;
  std::map<std::string, Result<std::map<std::string, double>>> latencies_;
  std::map<std::string, Responder> responders_;
  std::vector<Call> calls_;
};

/// A PrimaryLocator that answers what the test set.
class FakePrimaryLocator final : public PrimaryLocator {
 public:
  FakePrimaryLocator() = default;
  FakePrimaryLocator(std::string host, int port) { SetPrimary(std::move(host), port); }

  /// Locate() answers this from now on (e.g. a failover: another host).
  void SetPrimary(std::string host, int port) { Set(PrimaryState{std::move(host), port, "fake"}); }
  /// Locate() answers this from now on, success or error.
  void Set(Result<PrimaryState> answer) {
    std::lock_guard lock(mu_);
    answer_ = std::move(answer);
  }

  /// Unset: kTransient.
  Result<PrimaryState> Locate() override {
    std::lock_guard lock(mu_);
    ++calls_;
    if (!answer_) return Fail(ErrorKind::kTransient, "FakePrimaryLocator: no primary set");
    return *answer_;
  }

  int calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  std::optional<Result<PrimaryState>> answer_;
  int calls_ = 0;
};

}  // namespace ra::testing
