#include "autoscaler/service_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>

namespace ra::autoscaler {
namespace {

std::string Scrape(ServiceMetrics& metrics) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, metrics.registry().Collect());
  return out.str();
}

// prometheus-cpp writes labels in name order: the expected lines below are written that way.
bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

ReplicaView Replica(std::string name, Phase phase, std::optional<int64_t> lag_bytes = {},
                    std::optional<double> lag_seconds = {}) {
  ReplicaView r;
  r.name = std::move(name);
  r.phase = phase;
  r.lag_bytes = lag_bytes;
  r.lag_seconds = lag_seconds;
  return r;
}

policies::Decision DecisionTo(int current, int desired) {
  policies::Decision d;
  d.current = current;
  d.recommended = desired;
  d.desired = desired;
  d.verdicts = {
      {"sessions", policies::VerdictKind::kScaleUp, desired, "sessions per replica 42 > 30"},
      {"night", policies::VerdictKind::kAbstain, std::nullopt, "outside its windows"}};
  return d;
}

TEST(MetricPhaseTest, MapsEveryPhaseToTheDashboardsNames) {
  EXPECT_EQ(MetricPhase(Phase::kVolumeCreating), "creating");
  EXPECT_EQ(MetricPhase(Phase::kServerBuilding), "creating");
  EXPECT_EQ(MetricPhase(Phase::kPostgresStarting), "booting");
  EXPECT_EQ(MetricPhase(Phase::kCatchingUp), "catching_up");
  EXPECT_EQ(MetricPhase(Phase::kAdmitting), "catching_up");
  EXPECT_EQ(MetricPhase(Phase::kServing), "ready");
  EXPECT_EQ(MetricPhase(Phase::kLagging), "ejected");
  EXPECT_EQ(MetricPhase(Phase::kDraining), "draining");
  EXPECT_EQ(MetricPhase(Phase::kDrained), "draining");
  EXPECT_EQ(MetricPhase(Phase::kDeleting), "deleting");
  EXPECT_EQ(MetricPhase(Phase::kFailed), "failed");
}

TEST(ServiceMetricsTest, RecordCycleExportsDesiredPhasesLagTriggersAndDecision) {
  ServiceMetrics metrics;
  Plan plan;
  plan.desired = 3;
  plan.replicas = {Replica("main-replica-a1", Phase::kServing, 8192, 0.4),
                   Replica("main-replica-b2", Phase::kServerBuilding),
                   Replica("main-replica-c3", Phase::kVolumeCreating)};
  metrics.RecordCycle("main", DecisionTo(1, 3), 1, plan);
  const std::string text = Scrape(metrics);

  EXPECT_TRUE(Has(text, "replica_autoscaler_desired_replicas{cluster=\"main\"} 3")) << text;
  EXPECT_TRUE(Has(text, "replica_autoscaler_replicas{cluster=\"main\",phase=\"creating\"} 2"));
  EXPECT_TRUE(Has(text, "replica_autoscaler_replicas{cluster=\"main\",phase=\"ready\"} 1"));
  // Every phase is exported, 0 included, so the dashboard's stacked panel has no gaps.
  for (const char* phase :
       {"booting", "catching_up", "ejected", "draining", "deleting", "failed"}) {
    EXPECT_TRUE(Has(text, std::string("replica_autoscaler_replicas{cluster=\"main\",phase=\"") +
                              phase + "\"} 0"))
        << phase;
  }
  EXPECT_TRUE(Has(text, "replica_autoscaler_decisions_total{cluster=\"main\",direction=\"up\"} 1"));
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_decisions_total{cluster=\"main\",direction=\"down\"} 0"));
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_policy_triggers_total{cluster=\"main\",policy=\"sessions\","
                  "verdict=\"scale_up\"} 1"));
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_policy_triggers_total{cluster=\"main\",policy=\"night\","
                  "verdict=\"abstain\"} 1"));
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_replica_lag_bytes{cluster=\"main\","
                  "replica=\"main-replica-a1\"} 8192"));
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_replica_lag_seconds{cluster=\"main\","
                  "replica=\"main-replica-a1\"} 0.4"));
  // An unknown lag is no series, not a zero that would look healthy.
  EXPECT_EQ(text.find("replica=\"main-replica-b2\""), std::string::npos);
  // Alerts take increase() of this one: it exists at 0 before the first forced drain.
  EXPECT_TRUE(Has(text, "replica_autoscaler_forced_drains_total{cluster=\"main\"} 0"));
  EXPECT_NE(text.find("# TYPE replica_autoscaler_desired_replicas gauge"), std::string::npos);
  EXPECT_NE(text.find("# TYPE replica_autoscaler_decisions_total counter"), std::string::npos);
}

TEST(ServiceMetricsTest, ReplicasThatLeftLoseTheirLagSeriesAndDecisionsCountDown) {
  ServiceMetrics metrics;
  Plan plan;
  plan.replicas = {Replica("main-replica-a1", Phase::kServing, 100, 0.0),
                   Replica("main-replica-b2", Phase::kDraining, 200, 1.5)};
  metrics.RecordCycle("main", DecisionTo(2, 2), 2, plan);
  plan.replicas = {Replica("main-replica-a1", Phase::kServing, 50, 0.0)};
  metrics.RecordCycle("main", DecisionTo(2, 1), 2, plan);
  const std::string text = Scrape(metrics);

  EXPECT_EQ(text.find("main-replica-b2"), std::string::npos) << text;
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_replica_lag_bytes{cluster=\"main\","
                  "replica=\"main-replica-a1\"} 50"));
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_decisions_total{cluster=\"main\",direction=\"down\"} 1"));
  EXPECT_TRUE(Has(text, "replica_autoscaler_decisions_total{cluster=\"main\",direction=\"up\"} 0"));
  EXPECT_TRUE(Has(text, "replica_autoscaler_replicas{cluster=\"main\",phase=\"draining\"} 0"));
  EXPECT_TRUE(Has(text, "replica_autoscaler_desired_replicas{cluster=\"main\"} 1"));
}

TEST(ServiceMetricsTest, ProvisioningHistogramUsesTheDocumentedBuckets) {
  ServiceMetrics metrics;
  metrics.ObservePhaseDuration("main", "volume", 42);
  const std::string text = Scrape(metrics);
  const std::string prefix =
      "replica_autoscaler_provisioning_phase_duration_seconds_bucket{cluster=\"main\","
      "phase=\"volume\",le=\"";
  for (const char* le : {"1", "5", "10", "30"}) {
    EXPECT_TRUE(Has(text, prefix + le + "\"} 0")) << le << "\n" << text;
  }
  for (const char* le : {"60", "120", "300", "600", "1200", "1800", "3600", "+Inf"}) {
    EXPECT_TRUE(Has(text, prefix + le + "\"} 1")) << le;
  }
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_provisioning_phase_duration_seconds_sum{cluster=\"main\","
                  "phase=\"volume\"} 42"));
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_provisioning_phase_duration_seconds_count{cluster=\"main\","
                  "phase=\"volume\"} 1"));
}

TEST(ServiceMetricsTest, CountersForFailuresRequestsAndErrors) {
  ServiceMetrics metrics;
  metrics.CountProvisioningFailure("main", "az2", "quota");
  metrics.CountProvisioningFailure("main", "az2", "quota");
  metrics.CountForcedDrain("main");
  metrics.SetQuota("main", "instances", 0);
  metrics.CountCloudRequest("compute", "POST", "202");
  metrics.CountCloudRequest("volumev3", "GET", "error");
  metrics.CountDataPlaneRequest("PUT", "409");
  metrics.CountError("cloud", ErrorKind::kQuota);
  metrics.CountError("dataplane", ErrorKind::kNotFound);
  const std::string text = Scrape(metrics);

  EXPECT_TRUE(
      Has(text,
          "replica_autoscaler_provisioning_failures_total{cluster=\"main\",reason=\"quota\","
          "zone=\"az2\"} 2"))
      << text;
  EXPECT_TRUE(Has(text, "replica_autoscaler_forced_drains_total{cluster=\"main\"} 1"));
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_quota_remaining{cluster=\"main\",resource=\"instances\"} 0"));
  // Label values are lowercase, as docs/metrics.md says.
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_cloud_requests_total{code=\"202\",method=\"post\","
                  "service=\"compute\"} 1"));
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_cloud_requests_total{code=\"error\",method=\"get\","
                  "service=\"volumev3\"} 1"));
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_dataplane_requests_total{code=\"409\",method=\"put\"} 1"));
  EXPECT_TRUE(Has(text, "replica_autoscaler_errors_total{component=\"cloud\",kind=\"quota\"} 1"));
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_errors_total{component=\"dataplane\",kind=\"not-found\"} 1"));
}

TEST(ServiceMetricsTest, ZoneLatencyIsSetPerClusterAndZoneAndRemoved) {
  ServiceMetrics metrics;
  metrics.SetZoneLatency("main", "az1", 0.0015);
  metrics.SetZoneLatency("main", "az2", 0.032);
  metrics.SetZoneLatency("calm", "az1", 0.001);
  std::string text = Scrape(metrics);
  EXPECT_TRUE(Has(text, "# TYPE replica_autoscaler_zone_latency_seconds gauge")) << text;
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_zone_latency_seconds{cluster=\"main\",zone=\"az1\"} "
                  "0.0015"))
      << text;
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_zone_latency_seconds{cluster=\"main\",zone=\"az2\"} 0.032"))
      << text;
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_zone_latency_seconds{cluster=\"calm\",zone=\"az1\"} 0.001"))
      << text;

  metrics.SetZoneLatency("main", "az1", 0.002);
  metrics.SetZoneLatency("main", "az2", std::nullopt);
  metrics.SetZoneLatency("main", "az3", std::nullopt);  // never set: nothing to remove, no series
  text = Scrape(metrics);
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_zone_latency_seconds{cluster=\"main\",zone=\"az1\"} 0.002"))
      << text;
  EXPECT_EQ(text.find("zone=\"az2\""), std::string::npos) << text;
  EXPECT_EQ(text.find("zone=\"az3\""), std::string::npos) << text;
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_zone_latency_seconds{cluster=\"calm\",zone=\"az1\"} 0.001"))
      << text;
}

TEST(ServiceMetricsTest, LastSuccessfulCycleIsSetOnlyBySuccess) {
  ServiceMetrics metrics;
  metrics.ObserveCycle(0.3, false, 1800000000);
  std::string text = Scrape(metrics);
  // absent() is what the "never succeeded" alert looks for.
  EXPECT_EQ(text.find("replica_autoscaler_last_successful_cycle_timestamp_seconds "),
            std::string::npos)
      << text;
  EXPECT_TRUE(Has(text, "replica_autoscaler_reconcile_duration_seconds_bucket{le=\"0.25\"} 0"));
  EXPECT_TRUE(Has(text, "replica_autoscaler_reconcile_duration_seconds_bucket{le=\"0.5\"} 1"));
  EXPECT_TRUE(Has(text, "replica_autoscaler_reconcile_duration_seconds_bucket{le=\"60\"} 1"));

  metrics.ObserveCycle(0.2, true, 1800000030);
  text = Scrape(metrics);
  EXPECT_TRUE(Has(text, "replica_autoscaler_last_successful_cycle_timestamp_seconds 1800000030"))
      << text;
  EXPECT_TRUE(Has(text, "replica_autoscaler_reconcile_duration_seconds_count 2"));
}

TEST(ServiceMetricsTest, TimeToServeHistogramThresholdsAndPendingReplicas) {
  ServiceMetrics metrics;
  metrics.SetSlo("main", 600, 1);
  std::string text = Scrape(metrics);
  EXPECT_TRUE(Has(text, "replica_autoscaler_time_to_serve_budget_seconds{cluster=\"main\"} 600"))
      << text;
  EXPECT_TRUE(Has(text, "replica_autoscaler_replay_lag_alert_seconds{cluster=\"main\"} 1"));
  // The histogram exists, empty, before the first replica serves: increase() sees the first.
  EXPECT_TRUE(Has(text, "replica_autoscaler_time_to_serve_seconds_count{cluster=\"main\"} 0"));
  EXPECT_NE(text.find("# TYPE replica_autoscaler_time_to_serve_seconds histogram"),
            std::string::npos);

  metrics.ObserveTimeToServe("main", 200);
  metrics.ObserveTimeToServe("main", 650);
  text = Scrape(metrics);
  EXPECT_TRUE(Has(text, "replica_autoscaler_time_to_serve_seconds_count{cluster=\"main\"} 2"));
  EXPECT_TRUE(Has(text, "replica_autoscaler_time_to_serve_seconds_sum{cluster=\"main\"} 850"));
  // Buckets from 15 s to 1 h: 200 s is under 240, 650 s over 600 and under 900.
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_time_to_serve_seconds_bucket{cluster=\"main\",le=\"180\"} 0"));
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_time_to_serve_seconds_bucket{cluster=\"main\",le=\"240\"} 1"));
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_time_to_serve_seconds_bucket{cluster=\"main\",le=\"600\"} 1"));
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_time_to_serve_seconds_bucket{cluster=\"main\",le=\"900\"} 2"));
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_time_to_serve_seconds_bucket{cluster=\"main\",le=\"15\"} 0"));
  EXPECT_TRUE(
      Has(text, "replica_autoscaler_time_to_serve_seconds_bucket{cluster=\"main\",le=\"3600\"} 2"));

  metrics.SetPending("main", {{"main-replica-a1", 30}, {"main-replica-b2", 700}});
  metrics.SetPending("calm", {{"calm-replica-c3", 5}});
  text = Scrape(metrics);
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_replica_pending_seconds{cluster=\"main\","
                  "replica=\"main-replica-a1\"} 30"))
      << text;
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_replica_pending_seconds{cluster=\"main\","
                  "replica=\"main-replica-b2\"} 700"));
  // A replica no longer pending (serving, gone) loses its series; other clusters keep theirs.
  metrics.SetPending("main", {{"main-replica-a1", 60}});
  text = Scrape(metrics);
  EXPECT_EQ(text.find("main-replica-b2"), std::string::npos) << text;
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_replica_pending_seconds{cluster=\"main\","
                  "replica=\"main-replica-a1\"} 60"));
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_replica_pending_seconds{cluster=\"calm\","
                  "replica=\"calm-replica-c3\"} 5"));

  // A follower (ha) exports no pending series: a frozen value would keep the alert firing.
  metrics.SetLeader(false);
  text = Scrape(metrics);
  EXPECT_EQ(text.find("replica_autoscaler_replica_pending_seconds{"), std::string::npos) << text;
  EXPECT_TRUE(Has(text, "replica_autoscaler_time_to_serve_seconds_count{cluster=\"main\"} 2"));
  metrics.SetLeader(true);
  metrics.SetPending("main", {{"main-replica-a1", 90}});
  text = Scrape(metrics);
  EXPECT_TRUE(Has(text,
                  "replica_autoscaler_replica_pending_seconds{cluster=\"main\","
                  "replica=\"main-replica-a1\"} 90"));
}

}  // namespace
}  // namespace ra::autoscaler
