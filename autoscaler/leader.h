#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/http_transport.h"
#include "core/result.h"
#include "core/secret.h"

/// Leader election for several instances of the service (ha): one etcd lease, one key. The
/// instance that puts the key under its lease leads; the others follow and read who leads.
namespace ra::autoscaler {

/// What the actuator and the controller ask before they act: does this instance lead, and in
/// which term. Thread-safe; never blocks on the network.
class Fence {
 public:
  virtual ~Fence() = default;
  /// The term this instance leads in now; nullopt when it does not lead.
  virtual std::optional<uint64_t> HeldTerm() const = 0;
  /// Leads now, in `term`: work planned in an earlier term (before leadership was lost and won
  /// again) is not done.
  bool HoldsTerm(uint64_t term) const {
    const std::optional<uint64_t> held = HeldTerm();
    return held && *held == term;
  }
  /// The instance name of the leader as last seen ("" when unknown); this one's when it leads.
  virtual std::string LeaderName() const = 0;
};

struct EtcdOptions {
  /// Base URLs of etcd's v3 JSON gateway ("https://10.0.0.5:2379"); tried in turn on a transport
  /// failure.
  std::vector<std::string> endpoints{};
  /// etcd authentication (empty username: none).
  std::string username{};
  Secret password{};
};

/// POSTs to etcd's v3 JSON gateway: one endpoint at a time, the next after a transport failure;
/// authenticates (/v3/auth/authenticate) when a username is set, and again when etcd refuses
/// the token. Thread-safe; blocks for the request.
class EtcdGateway {
 public:
  /// `transport` must outlive the gateway.
  EtcdGateway(EtcdOptions options, HttpTransport& transport)
      : options_(std::move(options)), transport_(transport) {}

  /// The answer's body on HTTP 200. Errors: the transport's; kNotFound when etcd says a lease is
  /// not found; kAuth when authentication fails; kTransient for 5xx; kBadRequest otherwise.
  Result<std::string> Post(const std::string& path, const std::string& body, Duration timeout);

 private:
  Result<std::string> PostOnce(const std::string& path, const std::string& body, Duration timeout);
  Result<void> Authenticate(Duration timeout);

  EtcdOptions options_;
  HttpTransport& transport_;
  std::mutex mu_;
  size_t endpoint_ = 0;
  std::string token_{};  // an ephemeral secret
};

/// etcd's int64 field `name` of a JSON object (the gateway writes them as strings).
std::optional<int64_t> EtcdInt64(const nlohmann::json& object, const char* name);

struct LeaderElectorOptions {
  EtcdOptions etcd{};
  /// The election key (the configured key prefix plus "/leader").
  std::string key{};
  /// This instance's name, the key's value while it leads.
  std::string instance{};
  Duration ttl = std::chrono::seconds(10);
  /// Leadership is held only until the last renewal + ttl - margin: etcd may expire the lease at
  /// renewal + ttl, and another instance may lead from then on. Default: ttl / 3.
  std::optional<Duration> margin{};
};

/// Campaigns on etcd through its v3 JSON gateway (/v3/lease/grant, /v3/lease/keepalive,
/// /v3/kv/txn, /v3/kv/range, /v3/lease/revoke): a lease of `ttl`, and a transaction that puts
/// the key with that lease only when the key does not exist (create_revision == 0); otherwise it
/// reads the holder. The leader renews the lease every ttl / 3. A renewal that fails ends the
/// leadership at once, without waiting for etcd; so does the margin passing without a renewal.
///
/// Step() does one round and blocks for its requests (each bounded by the margin); Start() runs
/// it on a thread of its own every ttl / 3. Thread-safe.
class LeaderElector final : public Fence {
 public:
  /// `transport` and `clock` must outlive the elector.
  LeaderElector(LeaderElectorOptions options, HttpTransport& transport, const Clock& clock);
  ~LeaderElector() override;
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  /// One round: get a lease when there is none, renew it, campaign when not leading. Answers
  /// the error of the round's first failing request (leadership is then already given up).
  Result<void> Step();

  /// Step() now and every ttl / 3 on a thread of its own, until Stop.
  void Start();
  /// Ends the thread; when leading and `revoke`, revokes the lease so that another instance
  /// leads at once (best effort); without, the lease runs out on its own (an action may still be
  /// running). Idempotent.
  void Stop(bool revoke = true);

  bool IsLeader() const { return HeldTerm().has_value(); }
  // Fence
  std::optional<uint64_t> HeldTerm() const override;
  std::string LeaderName() const override;
  /// The term of the last leadership won (0: never); counts every win of this instance.
  uint64_t LastTerm() const;

  Duration RenewEvery() const { return options_.ttl / 3; }

 private:
  Result<void> StepOnce();
  Result<std::string> Post(const std::string& path, const std::string& body);
  Result<void> Grant();
  /// Renews the lease; kNotFound when etcd no longer has it.
  Result<void> KeepAlive();
  /// Puts the key when free; reads the holder otherwise. True when this instance holds it.
  Result<bool> Campaign();
  void Revoke();
  /// Gives leadership up locally (requires mu_).
  void LoseLocked(const std::string& why);

  LeaderElectorOptions options_;
  EtcdGateway gateway_;
  const Clock& clock_;
  Duration margin_;

  mutable std::mutex mu_;
  int64_t lease_ = 0;  // 0: none
  bool leading_ = false;
  TimePoint renewed_{};  // when the last successful renewal was sent
  uint64_t term_ = 0;
  std::string leader_{};

  std::mutex run_mu_;
  std::condition_variable run_cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ra::autoscaler
