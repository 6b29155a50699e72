#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "autoscaler/reconcile.h"
#include "core/result.h"
#include "policies/engine.h"

namespace prometheus {
class Registry;
}

/// The service's Prometheus metrics, named and labelled exactly as docs/metrics.md says.
/// Thread-safe (prometheus-cpp's families are).
namespace ra::autoscaler {

/// docs/metrics.md's `phase` label for a replica phase: creating, booting, catching_up, ready,
/// ejected, draining, deleting, failed.
std::string_view MetricPhase(Phase phase);

class ServiceMetrics {
 public:
  ServiceMetrics();
  ~ServiceMetrics();

  prometheus::Registry& registry();

  /// After each cluster's cycle: desired (decision.desired), replicas by phase of plan.replicas
  /// (every phase exported, 0 included), lag per replica (series of replicas no longer present,
  /// or whose lag is unknown, are removed), one policy trigger per verdict, and a decision
  /// (direction up or down) when decision.desired differs from `previous_desired`.
  void RecordCycle(const std::string& cluster, const policies::Decision& decision,
                   int previous_desired, const Plan& plan);
  void ObservePhaseDuration(const std::string& cluster, std::string_view phase, double seconds);
  /// reason: quota, capacity, volume_error, server_error, timeout, catch_up, admission, other.
  void CountProvisioningFailure(const std::string& cluster, const std::string& zone,
                                std::string_view reason);
  void CountForcedDrain(const std::string& cluster);
  /// The median latency between the primary and the zone's replicas (ZoneLatency::Median);
  /// std::nullopt removes the zone's series (a zone no longer used, or no sample left).
  void SetZoneLatency(const std::string& cluster, const std::string& zone,
                      std::optional<double> seconds);
  /// resource: instances, cores, ram_mb, volumes, gigabytes. Call only for limited resources:
  /// a value <= 0 means the next scale-up fails, and alerts fire on it.
  void SetQuota(const std::string& cluster, std::string_view resource, double remaining);
  /// service: compute, volumev3, identity, dns; code: the HTTP status or "error".
  void CountCloudRequest(std::string_view service, std::string_view method, std::string_view code);
  void CountDataPlaneRequest(std::string_view method, std::string_view code);
  /// component: cloud, dataplane, metrics, postgres, journal, api, config.
  void CountError(std::string_view component, ErrorKind kind);
  /// The cycle's duration; on success also the last-successful-cycle time (which is absent
  /// until the first success, for the alert on absent()).
  void ObserveCycle(double seconds, bool success, double unix_now);
  /// The cluster's configured objectives (config `slo:`), so alert rules compare against them;
  /// also creates its time-to-serve histogram (empty) so that increase() sees the first value.
  void SetSlo(const std::string& cluster, double time_to_serve_budget_seconds,
              double replay_lag_alert_seconds);
  /// One replica created by this service seen serving: seconds from the cycle that decided to
  /// create it to the cycle that first saw it serving.
  void ObserveTimeToServe(const std::string& cluster, double seconds);
  /// Seconds since the decision of each replica still wanted and not serving yet, by name; the
  /// series of replicas not in `pending_seconds` are removed.
  void SetPending(const std::string& cluster, const std::map<std::string, double>& pending_seconds);
  /// Several instances (ha): whether this one leads now. One instance alone exports 1. A
  /// follower exports no pending series: frozen at the last leading value, they could keep the
  /// time-to-serve alert firing.
  void SetLeader(bool leading);
  /// A follower's cycle (ha): nothing to do, and healthy; the last-successful-cycle time moves
  /// (so the stalled-loop alert stays quiet) and no duration is observed.
  void ObserveFollowing(double unix_now);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ra::autoscaler
