#include "autoscaler/time_to_serve.h"

#include <gtest/gtest.h>

namespace ra::autoscaler {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint{} + 24h;

ReplicaView View(std::string name, Phase phase, bool leaving = false) {
  ReplicaView v;
  v.name = std::move(name);
  v.phase = phase;
  v.leaving = leaving;
  return v;
}

Action Create(std::string replica) {
  return Action{.kind = ActionKind::kCreateVolume, .replica = std::move(replica)};
}

/// The bookkeeping of one cluster across cycles, as the cycle drives it: a plan per cycle, its
/// replicas in the memory as PlanActions leaves them.
class TimeToServeTest : public ::testing::Test {
 protected:
  TimeToServe Cycle(Duration since_start, std::vector<ReplicaView> replicas,
                    std::vector<Action> actions = {}, bool cloud_read = true) {
    Plan plan;
    plan.replicas = std::move(replicas);
    plan.actions = std::move(actions);
    for (const ReplicaView& v : plan.replicas) memory_.replicas[v.name].phase = v.phase;
    return TrackTimeToServe(decided_, memory_, plan, cloud_read, kT0 + since_start);
  }

  std::map<std::string, TimePoint> decided_;
  ClusterMemory memory_;
};

TEST_F(TimeToServeTest, CreatedThenServingIsObservedOnceWithTheTimeSinceTheDecision) {
  TimeToServe t = Cycle(0s, {View("r1", Phase::kVolumeCreating)}, {Create("r1")});
  EXPECT_TRUE(t.changed) << "a new decision is saved";
  ASSERT_EQ(decided_.count("r1"), 1u);
  EXPECT_EQ(decided_["r1"], kT0);
  EXPECT_EQ(t.pending.at("r1"), 0.0);
  EXPECT_TRUE(t.served.empty());

  t = Cycle(30s, {View("r1", Phase::kServerBuilding)});
  EXPECT_FALSE(t.changed) << "nothing to save while it comes up";
  EXPECT_EQ(t.pending.at("r1"), 30.0);
  t = Cycle(150s, {View("r1", Phase::kCatchingUp)});
  EXPECT_EQ(t.pending.at("r1"), 150.0);

  t = Cycle(210s, {View("r1", Phase::kServing)});
  EXPECT_TRUE(t.changed) << "the decision is erased before the value is observed";
  ASSERT_EQ(t.served.size(), 1u);
  EXPECT_EQ(t.served[0].first, "r1");
  EXPECT_EQ(t.served[0].second, 210.0);
  EXPECT_TRUE(t.pending.empty());
  EXPECT_TRUE(decided_.empty());

  // Serving on, lagging, serving again: never observed again.
  for (Phase phase : {Phase::kServing, Phase::kLagging, Phase::kServing}) {
    t = Cycle(300s, {View("r1", phase)});
    EXPECT_TRUE(t.served.empty());
    EXPECT_TRUE(t.pending.empty());
    EXPECT_FALSE(t.changed);
  }
}

TEST_F(TimeToServeTest, TheFirstDecisionWinsAndOnlyNewVolumesAreDecisions) {
  Cycle(0s, {View("r1", Phase::kVolumeCreating)}, {Create("r1")});
  // The same replica again (a retried volume) keeps its first decision.
  TimeToServe t = Cycle(30s, {View("r1", Phase::kVolumeCreating)}, {Create("r1")});
  EXPECT_FALSE(t.changed);
  EXPECT_EQ(decided_["r1"], kT0);
  // Other actions (a server for an adopted volume, an admission) decide nothing.
  t = Cycle(60s, {View("r1", Phase::kServerBuilding), View("adopted", Phase::kServerBuilding)},
            {Action{.kind = ActionKind::kCreateServer, .replica = "adopted"},
             Action{.kind = ActionKind::kAdmit, .replica = "r1"}});
  EXPECT_EQ(decided_.count("adopted"), 0u);
  EXPECT_EQ(t.pending.count("adopted"), 0u) << "not created by this service: not pending";
  t = Cycle(90s, {View("r1", Phase::kServing), View("adopted", Phase::kServing)});
  ASSERT_EQ(t.served.size(), 1u) << "replicas never decided here are not observed";
  EXPECT_EQ(t.served[0].first, "r1");
}

TEST_F(TimeToServeTest, NeverServingIsNotObservedWhileItsPendingAgeGrows) {
  Cycle(0s, {View("r1", Phase::kVolumeCreating)}, {Create("r1")});
  double last = -1;
  for (int i = 1; i <= 40; ++i) {
    TimeToServe t = Cycle(i * 30s, {View("r1", Phase::kCatchingUp)});
    EXPECT_TRUE(t.served.empty());
    ASSERT_EQ(t.pending.count("r1"), 1u);
    EXPECT_GT(t.pending.at("r1"), last);
    last = t.pending.at("r1");
  }
  EXPECT_EQ(last, 1200.0) << "20 minutes: past a 10-minute budget, the alert's input";
}

TEST_F(TimeToServeTest, FailedLeavingOrGoneReplicasLeaveThePendingSetUnobserved) {
  Cycle(0s,
        {View("r1", Phase::kVolumeCreating), View("r2", Phase::kVolumeCreating),
         View("r3", Phase::kVolumeCreating)},
        {Create("r1"), Create("r2"), Create("r3")});
  TimeToServe t = Cycle(60s, {View("r1", Phase::kFailed), View("r2", Phase::kCatchingUp, true),
                              View("r3", Phase::kPostgresStarting)});
  EXPECT_TRUE(t.changed);
  EXPECT_EQ(t.pending.count("r1"), 0u) << "failed: its replacement has a decision of its own";
  EXPECT_EQ(t.pending.count("r2"), 0u) << "chosen to leave before it served: no longer wanted";
  EXPECT_EQ(t.pending.at("r3"), 60.0);
  // The cloud was not read: a replica not shown is not taken for gone.
  t = Cycle(90s, {}, {}, /*cloud_read=*/false);
  EXPECT_FALSE(t.changed);
  EXPECT_EQ(decided_.count("r3"), 1u);
  // Read, and not there: gone.
  t = Cycle(120s, {});
  EXPECT_TRUE(t.changed);
  EXPECT_TRUE(decided_.empty());
  EXPECT_TRUE(t.pending.empty());
  EXPECT_TRUE(t.served.empty());
  // Gone replicas that come back serving (a name reused) are not observed.
  t = Cycle(150s, {View("r1", Phase::kServing), View("r2", Phase::kServing)});
  EXPECT_TRUE(t.served.empty());
}

TEST_F(TimeToServeTest, AfterARestartOnlyReplicasSeenComingUpAreObserved) {
  Cycle(0s, {View("up", Phase::kVolumeCreating), View("done", Phase::kVolumeCreating)},
        {Create("up"), Create("done")});
  // Restarted: the memory is gone, the decisions were saved (state.json or etcd).
  memory_ = ClusterMemory{};
  // "done" became serving while the service was down (or in the cycle before it died): when is
  // unknown, so it is not observed; "up" is still catching up and is observed once it serves.
  TimeToServe t = Cycle(300s, {View("up", Phase::kCatchingUp), View("done", Phase::kServing)});
  EXPECT_TRUE(t.served.empty());
  EXPECT_TRUE(t.changed);
  EXPECT_EQ(decided_.count("done"), 0u);
  EXPECT_EQ(t.pending.at("up"), 300.0) << "the age counts from the saved decision";
  t = Cycle(330s, {View("up", Phase::kServing), View("done", Phase::kServing)});
  ASSERT_EQ(t.served.size(), 1u);
  EXPECT_EQ(t.served[0].first, "up");
  EXPECT_EQ(t.served[0].second, 330.0);

  // A replica first seen in maint (lagging) after a restart had served: not observed either.
  Cycle(400s, {View("lag", Phase::kVolumeCreating)}, {Create("lag")});
  memory_ = ClusterMemory{};
  t = Cycle(500s, {View("lag", Phase::kLagging)});
  EXPECT_TRUE(t.served.empty());
  EXPECT_EQ(decided_.count("lag"), 0u);
}

TEST_F(TimeToServeTest, ADecisionAfterNowIsNeverObserved) {
  // A saved decision from a clock that ran ahead (another instance, or a clock stepped back).
  decided_["r1"] = kT0 + 1h;
  TimeToServe t = Cycle(0s, {View("r1", Phase::kCatchingUp)});
  EXPECT_EQ(t.pending.at("r1"), 0.0) << "no negative age";
  t = Cycle(30s, {View("r1", Phase::kServing)});
  EXPECT_TRUE(t.served.empty());
  EXPECT_TRUE(decided_.empty());
}

TEST_F(TimeToServeTest, ForeignReplicasAreNeverPending) {
  decided_["donor"] = kT0;  // e.g. a name HAProxy holds for someone else
  ReplicaView donor = View("donor", Phase::kCatchingUp);
  donor.foreign = true;
  TimeToServe t = Cycle(30s, {donor});
  EXPECT_TRUE(t.pending.empty());
  EXPECT_TRUE(decided_.empty());
}

}  // namespace
}  // namespace ra::autoscaler
