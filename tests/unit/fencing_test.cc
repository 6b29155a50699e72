// Several instances (ha): the actuator starts an action only while this instance leads in the
// term the action was planned in.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "autoscaler/actuator.h"
#include "autoscaler/leader.h"
#include "testing/fake_load_balancer.h"

namespace ra::autoscaler {
namespace {

using ra::testing::FakeLoadBalancer;

class FakeFence final : public Fence {
 public:
  std::optional<uint64_t> HeldTerm() const override {
    if (!leading) return std::nullopt;
    return term.load();
  }
  std::string LeaderName() const override { return leading ? "me" : "other"; }
  std::atomic<bool> leading{true};
  std::atomic<uint64_t> term{1};
};

config::Cluster TestCluster() {
  config::Cluster c;
  c.name = "pg";
  c.load_balancer.name = "lb";
  c.load_balancer.backend = "pg_replicas";
  return c;
}

Action Drain(const std::string& replica) {
  Action a;
  a.kind = ActionKind::kDrain;
  a.replica = replica;
  a.reason = "test";
  return a;
}

std::vector<std::string> Types(EventJournal& journal) {
  std::vector<std::string> out;
  for (const Event& e : journal.Recent("pg", 100, std::nullopt)) {
    out.push_back(e.type + " " + e.replica);
  }
  return out;
}

struct FencingTest : ::testing::Test {
  FakeClock clock{TimePoint{} + std::chrono::hours(1000)};
  EventJournal journal{config::JournalConfig{.path = ""}};
  FakeLoadBalancer lb;
  config::Cluster cluster = TestCluster();
  FakeFence fence;
  ActionContext context;

  void SetUp() override {
    context.cluster = &cluster;
    context.lb = &lb;
    lb.EnsureMember({"pg-replica-000001", "10.0.0.9", 5432});
    lb.EnsureMember({"pg-replica-000002", "10.0.0.10", 5432});
  }
};

TEST_F(FencingTest, AFollowerStartsNothing) {
  Actuator actuator({.inline_execution = true, .fence = &fence}, journal, clock);
  fence.leading = false;
  actuator.Submit("pg", context, {Drain("pg-replica-000001")}, 1);
  EXPECT_TRUE(actuator.TakeCompletions("pg").empty());
  EXPECT_EQ(Types(journal), (std::vector<std::string>{"action_abandoned pg-replica-000001"}));
}

TEST_F(FencingTest, APlanOfAnEarlierTermIsRefused) {
  Actuator actuator({.inline_execution = true, .fence = &fence}, journal, clock);
  fence.term = 2;  // leadership was lost and won again since the plan was made
  actuator.Submit("pg", context, {Drain("pg-replica-000001")}, 1);
  EXPECT_TRUE(actuator.TakeCompletions("pg").empty());
  actuator.Submit("pg", context, {Drain("pg-replica-000001")}, 2);
  const auto done = actuator.TakeCompletions("pg");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_FALSE(done[0].error);
}

TEST_F(FencingTest, LeadershipLostMidPlanStopsTheActionsNotStartedYet) {
  Actuator actuator({.inline_execution = true, .fence = &fence}, journal, clock);
  // The first action runs; leadership ends while it runs; the second is checked right before it
  // would start, and is not started.
  actuator.SetOnCompletion([this](const Completion&) { fence.leading = false; });
  actuator.Submit("pg", context, {Drain("pg-replica-000001"), Drain("pg-replica-000002")}, 1);
  actuator.SetOnCompletion(nullptr);
  const auto done = actuator.TakeCompletions("pg");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].action.replica, "pg-replica-000001");
  EXPECT_EQ(Types(journal), (std::vector<std::string>{"action_started pg-replica-000001",
                                                      "action_succeeded pg-replica-000001",
                                                      "action_abandoned pg-replica-000002"}));
}

TEST_F(FencingTest, WithoutAFenceEverythingRuns) {
  Actuator actuator({.inline_execution = true}, journal, clock);
  actuator.Submit("pg", context, {Drain("pg-replica-000001")});
  EXPECT_EQ(actuator.TakeCompletions("pg").size(), 1u);
}

}  // namespace
}  // namespace ra::autoscaler
