#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "autoscaler/probe.h"

/// A TEST DOUBLE of the PostgreSQL probes, linked into the service so that the scale benchmark
/// can run thousands of simulated replicas with no PostgreSQL behind them. Never the default: the
/// service builds it only when the configuration says `test_only: {probe_double: true}`, and logs
/// a WARNING naming it at start-up.
namespace ra::autoscaler {

/// Answers every probe from constants, without any I/O:
///  - PrimaryPosition: the primary is at kLsn (written and flushed), timeline kTimeline, system
///    kSystemId;
///  - ProbeReplica: any well-formed address is a reachable standby in recovery that replayed
///    exactly `primary_lsn` (lag 0 bytes and 0 s), streams timeline kTimeline from its upstream
///    with no silence, belongs to system kSystemId and has no client session. With
///    primary_lsn < 0 the lags are unknown and `error` says so, as the real probe does.
///  - ReplicationLatencies: no walsender has a value (an empty map).
/// It cannot tell whether anything runs at the address: the observer probes only the ACTIVE
/// servers the cloud lists, so with the cloud simulator's no-PostgreSQL mode "ACTIVE" stands for
/// "PostgreSQL up and caught up". Bad addresses get the same kConfig errors as the real probe
/// (empty host, host lists, ports outside 1..65535). Thread-safe; never blocks.
class SimulatedReplicaProbe final : public ReplicaProbe {
 public:
  static constexpr int64_t kLsn = int64_t{0x3} << 24;
  static constexpr int64_t kTimeline = 1;
  static constexpr const char* kSystemId = "7000000000000000042";

  Result<PrimaryFacts> PrimaryPosition(const std::string& host, int port) override;
  ProbeResult ProbeReplica(const std::string& host, int port, int64_t primary_lsn) override;
  Result<std::map<std::string, double>> ReplicationLatencies(const std::string& primary_host,
                                                             int primary_port) override;

  /// Calls answered so far (all three methods), for reports.
  int64_t calls() const { return calls_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> calls_{0};
};

}  // namespace ra::autoscaler
