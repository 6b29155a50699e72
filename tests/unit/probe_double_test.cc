// SimulatedReplicaProbe (the probe test double of the scale benchmark) and the test_only key
// that alone selects it.
#include "autoscaler/probe_double.h"

#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace ra::autoscaler {
namespace {

TEST(SimulatedReplicaProbeTest, ReplicaIsCaughtUpOnThePrimarysPosition) {
  SimulatedReplicaProbe probe;
  auto primary = probe.PrimaryPosition("127.0.1.1", 5432);
  ASSERT_TRUE(primary) << primary.error().message;
  EXPECT_EQ(primary->lsn, SimulatedReplicaProbe::kLsn);
  EXPECT_EQ(primary->flush_lsn, SimulatedReplicaProbe::kLsn);
  EXPECT_EQ(primary->timeline, SimulatedReplicaProbe::kTimeline);

  const ProbeResult r = probe.ProbeReplica("127.0.100.7", 5432, primary->lsn);
  EXPECT_TRUE(r.reachable);
  EXPECT_TRUE(r.in_recovery);
  EXPECT_EQ(r.error, "");
  ASSERT_TRUE(r.lag_bytes);
  EXPECT_EQ(*r.lag_bytes, 0);
  ASSERT_TRUE(r.lag_seconds);
  EXPECT_EQ(*r.lag_seconds, 0.0);
  ASSERT_TRUE(r.replay_lsn);
  EXPECT_EQ(*r.replay_lsn, primary->lsn);  // never beyond the primary: not "diverged"
  EXPECT_EQ(r.system_identifier, primary->system_identifier);
  EXPECT_EQ(r.receiver_status, "streaming");
  ASSERT_TRUE(r.receiver_timeline);
  EXPECT_EQ(*r.receiver_timeline, primary->timeline);
  ASSERT_TRUE(r.receiver_silence_seconds);
  EXPECT_EQ(*r.receiver_silence_seconds, 0.0);
  ASSERT_TRUE(r.client_sessions);
  EXPECT_EQ(*r.client_sessions, 0);  // a drain finishes at once
  EXPECT_EQ(probe.calls(), 2);
}

TEST(SimulatedReplicaProbeTest, UnknownPrimaryPositionLeavesTheLagUnknown) {
  SimulatedReplicaProbe probe;
  const ProbeResult r = probe.ProbeReplica("127.0.100.7", 5432, -1);
  EXPECT_TRUE(r.reachable);
  EXPECT_FALSE(r.lag_bytes);
  EXPECT_FALSE(r.lag_seconds);
  EXPECT_NE(r.error.find("primary LSN unknown"), std::string::npos) << r.error;
}

TEST(SimulatedReplicaProbeTest, BadAddressesAreRefusedAsByTheRealProbe) {
  SimulatedReplicaProbe probe;
  const ProbeResult empty = probe.ProbeReplica("", 5432, 10);
  EXPECT_FALSE(empty.reachable);
  EXPECT_EQ(empty.error, "no host to probe");
  const ProbeResult list = probe.ProbeReplica("a,b", 5432, 10);
  EXPECT_FALSE(list.reachable);
  EXPECT_NE(list.error.find("not one address"), std::string::npos) << list.error;
  auto port = probe.PrimaryPosition("127.0.1.1", 0);
  ASSERT_FALSE(port);
  EXPECT_EQ(port.error().kind, ErrorKind::kConfig);
  auto latencies = probe.ReplicationLatencies("", 5432);
  ASSERT_FALSE(latencies);
  EXPECT_EQ(latencies.error().kind, ErrorKind::kConfig);
}

TEST(SimulatedReplicaProbeTest, NoWalsenderHasALatency) {
  SimulatedReplicaProbe probe;
  auto latencies = probe.ReplicationLatencies("127.0.1.1", 5432);
  ASSERT_TRUE(latencies) << latencies.error().message;
  EXPECT_TRUE(latencies->empty());
}

constexpr const char* kConfig = R"yaml(clouds:
  prod:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: svc
      project_name: orders
      password: {env: OS_PASSWORD}
load_balancers:
  lb:
    url: https://lb.example:5555
    username: admin
    password: {env: LB_PASSWORD}
clusters:
  - name: orders
    cloud: prod
    primary: {static: {host: 10.0.0.5}}
    donor: {server: orders-pg-2}
    replica: {flavor: m1.large, image: pg15, networks: [db-net]}
    postgres: {user: monitor}
    load_balancer: {name: lb, backend: pg_ro}
    min_replicas: 1
    max_replicas: 5
api:
  tokens:
    - {name: ops, role: admin, token: {env: RA_TOKEN}}
)yaml";

config::ConfigResult Load(const std::string& extra) {
  config::LoadOptions options;
  options.check_environment = false;
  return config::LoadConfigFromString(std::string(kConfig) + extra, "test.yaml", options);
}

std::string Problems(const config::ConfigResult& r) {
  std::string out;
  if (r) return out;
  for (const config::ConfigProblem& p : r.error()) out += p.path + ": " + p.message + "\n";
  return out;
}

TEST(TestOnlyConfigTest, ProbeDoubleIsOffUnlessSaid) {
  auto r = Load("");
  ASSERT_TRUE(r) << Problems(r);
  EXPECT_FALSE(r->test_only.probe_double);
  auto off = Load("test_only: {probe_double: false}\n");
  ASSERT_TRUE(off) << Problems(off);
  EXPECT_FALSE(off->test_only.probe_double);
}

TEST(TestOnlyConfigTest, ProbeDoubleIsOnWhenSaid) {
  auto r = Load("test_only: {probe_double: true}\n");
  ASSERT_TRUE(r) << Problems(r);
  EXPECT_TRUE(r->test_only.probe_double);
}

TEST(TestOnlyConfigTest, BadValuesAndUnknownKeysAreProblems) {
  auto word = Load("test_only: {probe_double: simulated}\n");
  ASSERT_FALSE(word);
  EXPECT_NE(Problems(word).find("test_only.probe_double"), std::string::npos) << Problems(word);
  auto unknown = Load("test_only: {probe: true}\n");
  ASSERT_FALSE(unknown);
  EXPECT_NE(Problems(unknown).find("test_only"), std::string::npos) << Problems(unknown);
  EXPECT_NE(Problems(unknown).find("probe"), std::string::npos) << Problems(unknown);
}

}  // namespace
}  // namespace ra::autoscaler
