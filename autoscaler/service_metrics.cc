#include "autoscaler/service_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <map>
#include <mutex>
#include <set>

namespace ra::autoscaler {

namespace {

constexpr std::array<std::string_view, 8> kMetricPhases = {
    "creating", "booting", "catching_up", "ready", "ejected", "draining", "deleting", "failed"};

// docs/metrics.md: label values are lowercase ASCII ("get", not "GET").
std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

std::string_view MetricPhase(Phase phase) {
  switch (phase) {
    case Phase::kVolumeCreating:
    case Phase::kServerBuilding:
      return "creating";
    case Phase::kPostgresStarting:
      return "booting";
    case Phase::kCatchingUp:
    case Phase::kAdmitting:
      return "catching_up";
    case Phase::kServing:
      return "ready";
    case Phase::kLagging:
      return "ejected";
    case Phase::kDraining:
    case Phase::kDrained:
      return "draining";
    case Phase::kDeleting:
      return "deleting";
    case Phase::kFailed:
      return "failed";
  }
  return "failed";
}

struct ServiceMetrics::Impl {
  prometheus::Registry registry{};

  prometheus::Family<prometheus::Gauge>& desired =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_desired_replicas")
          .Help(
              "Replicas the policies (and any manual override) want now, after min/max and "
              "behaviour")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& creation_blocked =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_creation_blocked")
          .Help(
              "1 while new replicas are blocked because replacements failed twice in a row for "
              "this PostgreSQL reason (catch_up, lagging, diverged)")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& replicas =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_replicas")
          .Help("Replicas the last cycle observed, by phase")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& decisions =
      prometheus::BuildCounter()
          .Name("replica_autoscaler_decisions_total")
          .Help("Cycles whose decision changed the desired count, by direction")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& policy_triggers =
      prometheus::BuildCounter()
          .Name("replica_autoscaler_policy_triggers_total")
          .Help("Policy evaluations by verdict")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& forced_drains =
      prometheus::BuildCounter()
          .Name("replica_autoscaler_forced_drains_total")
          .Help("Scale-ins whose drain timeout ran out with sessions still open")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& phase_duration =
      prometheus::BuildHistogram()
          .Name("replica_autoscaler_provisioning_phase_duration_seconds")
          .Help("How long each step of a scale-up took, observed when the step ends")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& provisioning_failures =
      prometheus::BuildCounter()
          .Name("replica_autoscaler_provisioning_failures_total")
          .Help("Scale-ups that failed, by availability zone and reason")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& quota =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_quota_remaining")
          .Help("What the project's quota still allows, as last read from the cloud")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& lag_bytes =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_replica_lag_bytes")
          .Help("Primary's current WAL LSN minus the replica's replay LSN")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& lag_seconds =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_replica_lag_seconds")
          .Help("now() - pg_last_xact_replay_timestamp() on the replica, 0 when caught up")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& zone_latency =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_zone_latency_seconds")
          .Help(
              "Median of the zone's last round trips between the primary and its replicas "
              "(pg_stat_replication.write_lag)")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& reconcile =
      prometheus::BuildHistogram()
          .Name("replica_autoscaler_reconcile_duration_seconds")
          .Help("One observe, reconcile, act cycle")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& last_success =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_last_successful_cycle_timestamp_seconds")
          .Help("Unix time at which the last cycle completed without an error")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& errors = prometheus::BuildCounter()
                                                        .Name("replica_autoscaler_errors_total")
                                                        .Help("Errors by component and kind")
                                                        .Register(registry);
  prometheus::Family<prometheus::Counter>& cloud_requests =
      prometheus::BuildCounter()
          .Name("replica_autoscaler_cloud_requests_total")
          .Help("OpenStack API calls by service, method and HTTP status")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& dataplane_requests =
      prometheus::BuildCounter()
          .Name("replica_autoscaler_dataplane_requests_total")
          .Help("HAProxy Data Plane API calls by method and HTTP status")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& leader =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_leader")
          .Help("1 while this instance leads (ha: several instances, etcd election), else 0")
          .Register(registry);

  prometheus::Family<prometheus::Histogram>& time_to_serve =
      prometheus::BuildHistogram()
          .Name("replica_autoscaler_time_to_serve_seconds")
          .Help(
              "From the cycle that decided to create a replica to the cycle that first saw it "
              "serving, for replicas this service created")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& pending =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_replica_pending_seconds")
          .Help("Seconds since the decision to create each replica still wanted and not serving")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& time_to_serve_budget =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_time_to_serve_budget_seconds")
          .Help("The cluster's slo.time_to_serve_budget")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& replay_lag_alert =
      prometheus::BuildGauge()
          .Name("replica_autoscaler_replay_lag_alert_seconds")
          .Help("The cluster's slo.replay_lag_alert")
          .Register(registry);

  // Guards lag_series and pending_series: prometheus-cpp's families are thread-safe, but removing
  // the series of a replica that left needs the set of names we exported last time, per cluster.
  std::mutex mu{};
  std::map<std::string, std::set<std::string>> lag_series{};
  std::map<std::string, std::set<std::string>> pending_series{};  // by cluster

  void SetLag(const std::string& cluster, const std::string& replica,
              prometheus::Family<prometheus::Gauge>& family, std::optional<double> value) {
    prometheus::Gauge& gauge = family.Add({{"cluster", cluster}, {"replica", replica}});
    if (value) {
      gauge.Set(*value);
    } else {
      // An unknown lag is no series at all: a stale or zero value would mislead the alerts.
      family.Remove(&gauge);
    }
  }

  void RemoveLag(const std::string& cluster, const std::string& replica) {
    for (auto* family : {&lag_bytes, &lag_seconds}) {
      family->Remove(&family->Add({{"cluster", cluster}, {"replica", replica}}));
    }
  }
};

ServiceMetrics::ServiceMetrics() : impl_(std::make_unique<Impl>()) {
  impl_->leader.Add({}).Set(1);  // one instance leads alone; with ha the controller says
}
ServiceMetrics::~ServiceMetrics() = default;

prometheus::Registry& ServiceMetrics::registry() { return impl_->registry; }

void ServiceMetrics::RecordCycle(const std::string& cluster, const policies::Decision& decision,
                                 int previous_desired, const Plan& plan) {
  Impl& m = *impl_;
  m.desired.Add({{"cluster", cluster}}).Set(decision.desired);
  for (const char* reason : {"catch_up", "lagging", "diverged"}) {
    m.creation_blocked.Add({{"cluster", cluster}, {"reason", reason}})
        .Set(plan.creation_blocked == reason ? 1 : 0);
  }

  std::map<std::string_view, int> by_phase;
  for (std::string_view phase : kMetricPhases) by_phase[phase] = 0;
  for (const ReplicaView& r : plan.replicas) ++by_phase[MetricPhase(r.phase)];
  for (const auto& [phase, count] : by_phase) {
    m.replicas.Add({{"cluster", cluster}, {"phase", std::string(phase)}}).Set(count);
  }

  // Counters that alerts take increase() of are created at 0 up front, so their first
  // increment is seen as one.
  m.forced_drains.Add({{"cluster", cluster}});
  prometheus::Counter& up = m.decisions.Add({{"cluster", cluster}, {"direction", "up"}});
  prometheus::Counter& down = m.decisions.Add({{"cluster", cluster}, {"direction", "down"}});
  if (decision.desired > previous_desired) up.Increment();
  if (decision.desired < previous_desired) down.Increment();

  for (const policies::Verdict& v : decision.verdicts) {
    m.policy_triggers
        .Add({{"cluster", cluster},
              {"policy", v.policy},
              {"verdict", std::string(policies::ToString(v.kind))}})
        .Increment();
  }

  std::lock_guard lock(m.mu);
  std::set<std::string>& exported = m.lag_series[cluster];
  std::set<std::string> present;
  for (const ReplicaView& r : plan.replicas) {
    present.insert(r.name);
    m.SetLag(cluster, r.name, m.lag_bytes,
             r.lag_bytes ? std::optional<double>(static_cast<double>(*r.lag_bytes)) : std::nullopt);
    m.SetLag(cluster, r.name, m.lag_seconds, r.lag_seconds);
  }
  for (const std::string& name : exported) {
    if (!present.count(name)) m.RemoveLag(cluster, name);
  }
  exported = std::move(present);
}

void ServiceMetrics::ObservePhaseDuration(const std::string& cluster, std::string_view phase,
                                          double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {1,   5,   10,   30,   60,  120,
                                                                   300, 600, 1200, 1800, 3600};
  impl_->phase_duration.Add({{"cluster", cluster}, {"phase", std::string(phase)}}, kBuckets)
      .Observe(seconds);
}

void ServiceMetrics::CountProvisioningFailure(const std::string& cluster, const std::string& zone,
                                              std::string_view reason) {
  impl_->provisioning_failures
      .Add({{"cluster", cluster}, {"zone", zone}, {"reason", std::string(reason)}})
      .Increment();
}

void ServiceMetrics::CountForcedDrain(const std::string& cluster) {
  impl_->forced_drains.Add({{"cluster", cluster}}).Increment();
}

void ServiceMetrics::SetZoneLatency(const std::string& cluster, const std::string& zone,
                                    std::optional<double> seconds) {
  prometheus::Gauge& gauge = impl_->zone_latency.Add({{"cluster", cluster}, {"zone", zone}});
  if (seconds) {
    gauge.Set(*seconds);
  } else {
    // No series rather than a stale or zero value, which placement dashboards would misread.
    impl_->zone_latency.Remove(&gauge);
  }
}

void ServiceMetrics::SetQuota(const std::string& cluster, std::string_view resource,
                              double remaining) {
  impl_->quota.Add({{"cluster", cluster}, {"resource", std::string(resource)}}).Set(remaining);
}

void ServiceMetrics::CountCloudRequest(std::string_view service, std::string_view method,
                                       std::string_view code) {
  impl_->cloud_requests
      .Add({{"service", std::string(service)},
            {"method", Lower(method)},
            {"code", std::string(code)}})
      .Increment();
}

void ServiceMetrics::CountDataPlaneRequest(std::string_view method, std::string_view code) {
  impl_->dataplane_requests.Add({{"method", Lower(method)}, {"code", std::string(code)}})
      .Increment();
}

void ServiceMetrics::CountError(std::string_view component, ErrorKind kind) {
  impl_->errors.Add({{"component", std::string(component)}, {"kind", std::string(ToString(kind))}})
      .Increment();
}

namespace {

// 10 s .. 1 h around the default budget of 10 minutes, finer below it.
const prometheus::Histogram::BucketBoundaries& TimeToServeBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      15, 30, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 3600};
  return kBuckets;
}

}  // namespace

void ServiceMetrics::SetSlo(const std::string& cluster, double time_to_serve_budget_seconds,
                            double replay_lag_alert_seconds) {
  Impl& m = *impl_;
  m.time_to_serve_budget.Add({{"cluster", cluster}}).Set(time_to_serve_budget_seconds);
  m.replay_lag_alert.Add({{"cluster", cluster}}).Set(replay_lag_alert_seconds);
  m.time_to_serve.Add({{"cluster", cluster}}, TimeToServeBuckets());
}

void ServiceMetrics::ObserveTimeToServe(const std::string& cluster, double seconds) {
  impl_->time_to_serve.Add({{"cluster", cluster}}, TimeToServeBuckets()).Observe(seconds);
}

void ServiceMetrics::SetPending(const std::string& cluster,
                                const std::map<std::string, double>& pending_seconds) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  std::set<std::string>& exported = m.pending_series[cluster];
  for (const std::string& name : exported) {
    if (!pending_seconds.count(name)) {
      m.pending.Remove(&m.pending.Add({{"cluster", cluster}, {"replica", name}}));
    }
  }
  exported.clear();
  for (const auto& [name, seconds] : pending_seconds) {
    m.pending.Add({{"cluster", cluster}, {"replica", name}}).Set(seconds);
    exported.insert(name);
  }
}

void ServiceMetrics::SetLeader(bool leading) {
  Impl& m = *impl_;
  m.leader.Add({}).Set(leading ? 1 : 0);
  if (leading) return;
  std::lock_guard lock(m.mu);
  for (auto& [cluster, names] : m.pending_series) {
    for (const std::string& name : names) {
      m.pending.Remove(&m.pending.Add({{"cluster", cluster}, {"replica", name}}));
    }
    names.clear();
  }
}

void ServiceMetrics::ObserveFollowing(double unix_now) {
  impl_->last_success.Add({}).Set(unix_now);
}

void ServiceMetrics::ObserveCycle(double seconds, bool success, double unix_now) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {0.05, 0.1, 0.25, 0.5, 1,
                                                                   2.5,  5,   10,   30,  60};
  impl_->reconcile.Add({}, kBuckets).Observe(seconds);
  // Set only after a success: the alert on absent() covers a service that never succeeded.
  if (success) impl_->last_success.Add({}).Set(unix_now);
}

}  // namespace ra::autoscaler
