#include "autoscaler/probe_double.h"

#include <fmt/format.h>

namespace ra::autoscaler {

Result<PrimaryFacts> SimulatedReplicaProbe::PrimaryPosition(const std::string& host, int port) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  if (auto ok = CheckProbeAddress(host, port); !ok) return Fail(ok.error());
  return PrimaryFacts{
      .lsn = kLsn, .flush_lsn = kLsn, .timeline = kTimeline, .system_identifier = kSystemId};
}

ProbeResult SimulatedReplicaProbe::ProbeReplica(const std::string& host, int port,
                                                int64_t primary_lsn) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  ProbeResult r;
  if (auto ok = CheckProbeAddress(host, port); !ok) {
    r.error = ok.error().message;
    return r;
  }
  r.reachable = true;
  r.in_recovery = true;
  r.system_identifier = kSystemId;
  r.receiver_status = "streaming";
  r.receiver_timeline = kTimeline;
  r.receiver_silence_seconds = 0.0;
  r.upstream = "simulated-primary";
  r.client_sessions = 0;
  if (primary_lsn < 0) {
    // As the real probe: without the primary's position there is no lag to report.
    r.replay_lsn = kLsn;
    r.error = "primary LSN unknown: lag not computed (SimulatedReplicaProbe)";
    return r;
  }
  r.replay_lsn = primary_lsn;
  r.lag_bytes = 0;
  r.lag_seconds = 0.0;
  return r;
}

Result<std::map<std::string, double>> SimulatedReplicaProbe::ReplicationLatencies(
    const std::string& primary_host, int primary_port) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  if (auto ok = CheckProbeAddress(primary_host, primary_port); !ok) return Fail(ok.error());
  return std::map<std::string, double>{};
}

}  // namespace ra::autoscaler
