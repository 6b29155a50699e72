// Several load balancers per cluster: lb::MultiLoadBalancer, and the planner's decisions when one
// of them does not answer.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "api/api_server.h"
#include "autoscaler/observer.h"
#include "autoscaler/reconcile.h"
#include "lb/multi_load_balancer.h"
#include "testing/fake_cloud_provider.h"
#include "testing/fake_load_balancer.h"
#include "testing/fake_probe.h"

namespace ra {
namespace {

using namespace std::chrono_literals;
using lb::AdminState;
using testing::FakeLoadBalancer;

lb::Member M(std::string name, AdminState admin, bool up, int64_t sessions = 0) {
  lb::Member m;
  m.name = std::move(name);
  m.address = "10.0.0.7";
  m.port = 5432;
  m.admin = admin;
  m.health = up ? lb::Health::kUp : lb::Health::kDown;
  m.serving = up && admin == AdminState::kReady;
  m.sessions = sessions;
  m.detail = up ? "UP" : "DOWN";
  return m;
}

class MultiLbTest : public ::testing::Test {
 protected:
  lb::MultiLoadBalancer Multi(int quorum) {
    return lb::MultiLoadBalancer({{"lb1", &one_}, {"lb2", &two_}}, quorum);
  }
  FakeLoadBalancer one_;
  FakeLoadBalancer two_;
};

TEST_F(MultiLbTest, ListMembersMergesAndServesOnlyInTheQuorum) {
  one_.Put(M("r1", AdminState::kReady, true, 3));
  two_.Put(M("r1", AdminState::kReady, true, 4));
  one_.Put(M("r2", AdminState::kReady, true));
  auto all = Multi(2).ListMembers();
  ASSERT_TRUE(all.has_value());
  ASSERT_EQ(all->size(), 2u);
  const auto r1 = std::find_if(all->begin(), all->end(), [](auto& m) { return m.name == "r1"; });
  const auto r2 = std::find_if(all->begin(), all->end(), [](auto& m) { return m.name == "r2"; });
  EXPECT_TRUE(r1->serving);
  EXPECT_EQ(r1->sessions, 7);
  EXPECT_FALSE(r2->serving) << "serves in 1 of 2, quorum 2";

  auto one = Multi(1).ListMembers();
  ASSERT_TRUE(one.has_value());
  for (const lb::Member& m : *one) EXPECT_TRUE(m.serving) << m.name;
}

TEST_F(MultiLbTest, AMemberDrainingSomewhereIsReadyUntilDrainedEverywhere) {
  one_.Put(M("r1", AdminState::kDraining, true, 0));
  two_.Put(M("r1", AdminState::kReady, true, 2));
  auto merged = lb::MultiLoadBalancer::Merge({{.balancer = "lb1", .members = one_.ListMembers()},
                                              {.balancer = "lb2", .members = two_.ListMembers()}},
                                             2);
  ASSERT_EQ(merged.size(), 1u);
  EXPECT_EQ(merged[0].admin, AdminState::kReady);
  EXPECT_FALSE(merged[0].serving);
  EXPECT_EQ(merged[0].detail, "lb1: UP; lb2: UP");
}

TEST_F(MultiLbTest, OneBalancerDownHidesNothingOfTheOthers) {
  one_.Put(M("r1", AdminState::kReady, true));
  two_.FailNext("ListMembers", Error{ErrorKind::kTransient, "connection refused"});
  auto multi = Multi(2);
  auto each = multi.ListEach();
  ASSERT_EQ(each.size(), 2u);
  EXPECT_TRUE(each[0].members.has_value());
  EXPECT_FALSE(each[1].members.has_value());
  two_.FailNext("ListMembers", Error{ErrorKind::kTransient, "connection refused"});
  auto merged = multi.ListMembers();
  ASSERT_TRUE(merged.has_value());
  EXPECT_EQ(merged->size(), 1u);

  one_.FailNext("ListMembers", Error{ErrorKind::kTimeout, "slow"});
  two_.FailNext("ListMembers", Error{ErrorKind::kTransient, "connection refused"});
  auto none = multi.ListMembers();
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().kind, ErrorKind::kTimeout);
  EXPECT_NE(none.error().message.find("lb1: slow"), std::string::npos);
  EXPECT_NE(none.error().message.find("lb2: connection refused"), std::string::npos);
}

TEST_F(MultiLbTest, WritesReachEveryBalancerAndNameTheOnesThatFailed) {
  auto multi = Multi(2);
  two_.FailNext("EnsureMember", Error{ErrorKind::kTransient, "connection refused"});
  auto admitted = multi.EnsureMember({.name = "r1", .address = "10.0.0.7", .port = 5432});
  ASSERT_FALSE(admitted.has_value());
  EXPECT_EQ(admitted.error().kind, ErrorKind::kTransient);
  EXPECT_EQ(admitted.error().message, "admit r1: lb2: connection refused");
  EXPECT_TRUE(one_.Has("r1")) << "the balancer that answers is not held back";
  EXPECT_FALSE(two_.Has("r1"));

  // Drain where it is a member; the balancer that lacks it is no error.
  ASSERT_TRUE(multi.Drain("r1").has_value());
  EXPECT_EQ(one_.Get("r1").admin, AdminState::kDraining);
  EXPECT_EQ(multi.Drain("nobody").error().kind, ErrorKind::kNotFound);
}

TEST_F(MultiLbTest, RemoveIsDoneOnlyWhenGoneFromAll) {
  auto multi = Multi(2);
  one_.Put(M("r1", AdminState::kDraining, true, 0));
  two_.Put(M("r1", AdminState::kDraining, true, 2));
  auto still = multi.Remove("r1", lb::RemoveMode::kWhenIdle);
  ASSERT_TRUE(still.has_value());
  EXPECT_EQ(still->status, lb::RemoveOutcome::Status::kStillHasConnections);
  EXPECT_EQ(still->sessions, 2);
  EXPECT_FALSE(one_.Has("r1")) << "idle there: removed meanwhile";
  EXPECT_EQ(multi.SessionCount("r1").value(), 2);

  two_.FailNext("Remove", Error{ErrorKind::kTransient, "connection refused"});
  auto failed = multi.Remove("r1", lb::RemoveMode::kEvenWithSessions);
  ASSERT_FALSE(failed.has_value()) << "a balancer that did not answer may still route";

  auto removed = multi.Remove("r1", lb::RemoveMode::kEvenWithSessions);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(removed->status, lb::RemoveOutcome::Status::kRemoved);
  auto absent = multi.Remove("r1", lb::RemoveMode::kWhenIdle);
  ASSERT_TRUE(absent.has_value());
  EXPECT_EQ(absent->status, lb::RemoveOutcome::Status::kAbsent);
}

// ---------------------------------------------------------------------------------------------
// the planner, two balancers

namespace as = autoscaler;

const TimePoint kT0 = TimePoint(std::chrono::seconds(1795240800));

/// A caught-up replica on an ACTIVE server and what each balancer shows of it (nullopt: not a
/// member; `reachable` false: that balancer did not answer).
struct Seen {
  std::optional<lb::Member> lb1{};
  std::optional<lb::Member> lb2{};
  bool lb2_reachable = true;
};

class MultiLbPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_.name = "c1";
    cluster_.donor.server = "donor-1";
    cluster_.replica.flavor = "m1";
    cluster_.balancers.resize(2);
    cluster_.balancers[0].name = "lb1";
    cluster_.balancers[1].name = "lb2";
    cluster_.load_balancer = cluster_.balancers[0];
    cluster_.balancer_quorum = 2;
    input_.cluster = &cluster_;
    input_.now = kT0;
    input_.observed.zones = {"az1"};
    input_.observed.donor_volume_id = "vol-donor";
    input_.snapshot_busy = true;  // no snapshot actions in these plans
  }

  void Observe(const std::string& name, const Seen& seen) {
    as::ObservedReplica r;
    r.name = name;
    openstack::ServerFacts server;
    server.id = "srv-" + name;
    server.name = name;
    server.status = "ACTIVE";
    server.address = "10.0.0.7";
    server.availability_zone = "az1";
    server.created = kT0 - 1h;
    r.server = server;
    openstack::VolumeFacts volume;
    volume.id = "vol-" + name;
    volume.status = "in-use";
    volume.availability_zone = "az1";
    r.volume = volume;
    as::ProbeResult probe;
    probe.reachable = true;
    probe.in_recovery = true;
    probe.lag_bytes = 0;
    probe.lag_seconds = 0;
    probe.system_identifier = "sys-1";
    probe.receiver_status = "streaming";
    probe.receiver_timeline = 1;
    probe.receiver_silence_seconds = 1;
    probe.replay_lsn = 1000;
    probe.client_sessions = 0;
    r.probe = probe;

    std::vector<lb::Member> one;
    std::vector<lb::Member> two;
    if (seen.lb1) one.push_back(*seen.lb1);
    if (seen.lb2) two.push_back(*seen.lb2);
    std::vector<lb::BalancerReading> readings{{.balancer = "lb1", .members = one}};
    if (seen.lb2_reachable) {
      readings.push_back({.balancer = "lb2", .members = two});
    } else {
      readings.push_back(
          {.balancer = "lb2", .members = Fail(ErrorKind::kTransient, "connection refused")});
    }
    input_.observed.lb_unreachable.clear();
    if (!seen.lb2_reachable) input_.observed.lb_unreachable.push_back("lb2");
    auto merged = lb::MultiLoadBalancer::Merge(readings, cluster_.balancer_quorum);
    if (!merged.empty()) r.lb = merged.front();
    for (const auto& reading : readings) {
      as::BalancerView view{.balancer = reading.balancer, .reachable = reading.members.has_value()};
      if (reading.members && !reading.members->empty()) view.member = reading.members->front();
      r.balancers.push_back(view);
    }
    input_.observed.replicas = {r};
  }

  as::Plan Run() { return as::Reconcile(input_, memory_); }

  static std::vector<std::string> Kinds(const as::Plan& plan) {
    std::vector<std::string> out;
    for (const as::Action& a : plan.actions) out.emplace_back(as::ToString(a.kind));
    return out;
  }
  static bool Blocks(const as::Plan& plan, as::ActionKind kind, const std::string& needle) {
    return std::any_of(plan.blocked.begin(), plan.blocked.end(), [&](const as::Blocked& b) {
      return b.kind == kind && b.reason.find(needle) != std::string::npos;
    });
  }

  config::Cluster cluster_;
  as::ClusterMemory memory_;
  as::ReconcileInput input_;
};

TEST_F(MultiLbPlanTest, NewReplicaIsAdmittedInTheBalancerThatAnswersAndWaitsForTheOther) {
  input_.desired = 1;
  Observe("c1-replica-aaa", Seen{.lb2_reachable = false});
  as::Plan plan = Run();
  EXPECT_EQ(Kinds(plan), std::vector<std::string>{"admit"}) << plan.reason;
  EXPECT_TRUE(Blocks(plan, as::ActionKind::kAdmit, "lb2 does not answer")) << plan.reason;

  // Serving in lb1 only: with quorum 2 it does not count as serving yet, and is not admitted
  // again while lb2 is down.
  Observe("c1-replica-aaa",
          Seen{.lb1 = M("c1-replica-aaa", AdminState::kReady, true), .lb2_reachable = false});
  plan = Run();
  EXPECT_TRUE(plan.actions.empty()) << plan.reason;
  ASSERT_EQ(plan.replicas.size(), 1u);
  EXPECT_EQ(plan.replicas[0].phase, as::Phase::kAdmitting);
  EXPECT_TRUE(plan.replicas[0].partial);
  EXPECT_NE(plan.replicas[0].detail.find("lb2: no answer"), std::string::npos)
      << plan.replicas[0].detail;
  EXPECT_TRUE(Blocks(plan, as::ActionKind::kAdmit, "lb2 does not answer"));

  // lb2 answers again, without it: admitted there.
  Observe("c1-replica-aaa", Seen{.lb1 = M("c1-replica-aaa", AdminState::kReady, true)});
  plan = Run();
  ASSERT_EQ(Kinds(plan), std::vector<std::string>{"admit"}) << plan.reason;
  EXPECT_NE(plan.actions[0].reason.find("not admitted yet in lb2"), std::string::npos)
      << plan.actions[0].reason;

  Observe("c1-replica-aaa", Seen{.lb1 = M("c1-replica-aaa", AdminState::kReady, true),
                                 .lb2 = M("c1-replica-aaa", AdminState::kReady, true)});
  plan = Run();
  EXPECT_TRUE(plan.actions.empty()) << plan.reason;
  EXPECT_EQ(plan.replicas[0].phase, as::Phase::kServing);
  EXPECT_FALSE(plan.replicas[0].partial);
  ASSERT_EQ(plan.replicas[0].balancers.size(), 2u);
  EXPECT_EQ(plan.replicas[0].balancers[1].balancer, "lb2");
}

TEST_F(MultiLbPlanTest, WithQuorumOneAServingReplicaIsAdmittedWhereItIsMissing) {
  cluster_.balancer_quorum = 1;
  input_.desired = 1;
  Observe("c1-replica-aaa", Seen{.lb1 = M("c1-replica-aaa", AdminState::kReady, true)});
  as::Plan plan = Run();
  EXPECT_EQ(plan.replicas[0].phase, as::Phase::kServing);
  EXPECT_TRUE(plan.replicas[0].partial);
  ASSERT_EQ(Kinds(plan), std::vector<std::string>{"admit"}) << plan.reason;
  EXPECT_NE(plan.actions[0].reason.find("serving in 1 of 2 load balancers; admit it in lb2"),
            std::string::npos)
      << plan.actions[0].reason;
}

TEST_F(MultiLbPlanTest, DeletionWaitsForTheBalancerThatDoesNotAnswer) {
  input_.desired = 0;
  memory_.replicas["c1-replica-aaa"] = as::ReplicaMemory{.phase = as::Phase::kDeleting,
                                                         .phase_since = kT0 - 1min,
                                                         .first_seen = kT0 - 1h,
                                                         .leaving = true,
                                                         .drain_started = kT0 - 2min};
  // Gone from lb1; lb2 is down and may still route to it.
  Observe("c1-replica-aaa", Seen{.lb2_reachable = false});
  as::Plan plan = Run();
  EXPECT_TRUE(plan.actions.empty()) << plan.reason;
  EXPECT_TRUE(Blocks(plan, as::ActionKind::kDeleteReplica, "lb2 does not answer")) << plan.reason;

  // lb2 is back and still has it ready with sessions: drained there first.
  Observe("c1-replica-aaa", Seen{.lb2 = M("c1-replica-aaa", AdminState::kReady, true, 2)});
  plan = Run();
  EXPECT_EQ(Kinds(plan), std::vector<std::string>{"drain"}) << plan.reason;

  // Drained there, sessions still open: nothing removed yet.
  Observe("c1-replica-aaa", Seen{.lb2 = M("c1-replica-aaa", AdminState::kDraining, true, 2)});
  plan = Run();
  EXPECT_TRUE(plan.actions.empty()) << plan.reason;

  Observe("c1-replica-aaa", Seen{.lb2 = M("c1-replica-aaa", AdminState::kDraining, true, 0)});
  plan = Run();
  EXPECT_EQ(Kinds(plan), std::vector<std::string>{"remove_from_lb"}) << plan.reason;

  Observe("c1-replica-aaa", Seen{});
  plan = Run();
  EXPECT_EQ(Kinds(plan), std::vector<std::string>{"delete_replica"}) << plan.reason;
}

TEST_F(MultiLbPlanTest, ADrainIsRepeatedUntilDoneInEveryBalancer) {
  input_.desired = 0;
  memory_.replicas["c1-replica-aaa"] = as::ReplicaMemory{.phase = as::Phase::kDraining,
                                                         .phase_since = kT0 - 1min,
                                                         .first_seen = kT0 - 1h,
                                                         .leaving = true,
                                                         .drain_started = kT0 - 1min};
  Observe("c1-replica-aaa", Seen{.lb1 = M("c1-replica-aaa", AdminState::kDraining, true, 0),
                                 .lb2 = M("c1-replica-aaa", AdminState::kReady, true, 1)});
  as::Plan plan = Run();
  EXPECT_EQ(Kinds(plan), std::vector<std::string>{"drain"}) << plan.reason;
}

TEST(MultiLbStatus, EachBalancersViewIsInTheReplicasStatus) {
  as::ClusterStatus status;
  status.name = "c1";
  as::ReplicaView v;
  v.name = "c1-replica-aaa";
  v.partial = true;
  v.balancers = {{.balancer = "lb1",
                  .reachable = true,
                  .member = M("c1-replica-aaa", AdminState::kReady, true, 3)},
                 {.balancer = "lb2", .reachable = true, .member = std::nullopt},
                 {.balancer = "lb3", .reachable = false, .member = std::nullopt},
                 {.balancer = "lb4",
                  .reachable = true,
                  .member = M("c1-replica-aaa", AdminState::kDraining, true, 1)}};
  status.replicas = {v};
  const nlohmann::json json = as::StatusJson(status, kT0);
  const nlohmann::json& replica = json["replicas"][0];
  EXPECT_EQ(replica["partial"], true);
  ASSERT_EQ(replica["balancers"].size(), 4u);
  EXPECT_EQ(replica["balancers"][0],
            (nlohmann::json{
                {"name", "lb1"}, {"reachable", true}, {"state", "serving"}, {"sessions", 3}}));
  EXPECT_EQ(replica["balancers"][1]["state"], "absent");
  EXPECT_EQ(replica["balancers"][2]["state"], "unknown");
  EXPECT_EQ(replica["balancers"][2]["reachable"], false);
  EXPECT_TRUE(replica["balancers"][2]["sessions"].is_null());
  EXPECT_EQ(replica["balancers"][3]["state"], "draining");
}

// The observer with two balancers, the second of which stops answering: what each one shows,
// and a replica served there at its last answer still counting towards the quorum.
TEST(MultiLbObserve, ASilentBalancerCountsAsItLastAnswered) {
  config::Cluster cluster;
  cluster.name = "pg";
  cluster.primary = config::StaticPrimary{"10.0.0.1", 5432};
  cluster.replica.zones = {"az1"};
  cluster.balancer_quorum = 2;
  testing::FakeCloudProvider cloud;
  testing::FakeReplicaProbe probe;
  testing::FakePrimaryLocator primary;
  primary.SetPrimary("10.0.0.1", 5432);
  FakeLoadBalancer one;
  FakeLoadBalancer two;
  lb::MultiLoadBalancer multi({{"lb1", &one}, {"lb2", &two}}, 2);
  as::ClusterDeps deps;
  deps.cluster = &cluster;
  deps.cloud = &cloud;
  deps.lb = &multi;
  deps.multi = &multi;
  deps.probe = &probe;
  deps.primary = &primary;
  as::ObserverCache cache;

  one.Put(M("pg-replica-aaaaaa", AdminState::kReady, true));
  two.Put(M("pg-replica-aaaaaa", AdminState::kReady, true));
  one.Put(M("pg-replica-bbbbbb", AdminState::kReady, true));
  auto seen = as::ObserveCluster(deps, cache, kT0, 1h);
  ASSERT_EQ(seen.observed.replicas.size(), 2u);
  EXPECT_TRUE(seen.observed.replicas[0].lb->serving);
  EXPECT_FALSE(seen.observed.replicas[1].lb->serving) << "serves in 1 of 2";
  EXPECT_TRUE(seen.observed.lb_unreachable.empty());

  two.FailNext("ListMembers", Error{ErrorKind::kTransient, "connection refused"});
  seen = as::ObserveCluster(deps, cache, kT0 + 1min, 1h);
  EXPECT_FALSE(seen.observed.lb_error.has_value());
  EXPECT_EQ(seen.observed.lb_unreachable, std::vector<std::string>{"lb2"});
  ASSERT_EQ(seen.observed.replicas.size(), 2u);
  const as::ObservedReplica& a = seen.observed.replicas[0];
  EXPECT_TRUE(a.lb->serving) << "lb2 served it at its last answer";
  ASSERT_EQ(a.balancers.size(), 2u);
  EXPECT_TRUE(a.balancers[0].reachable);
  EXPECT_FALSE(a.balancers[1].reachable);
  EXPECT_FALSE(seen.observed.replicas[1].lb->serving) << "lb2 never served it";
}

}  // namespace
}  // namespace ra
