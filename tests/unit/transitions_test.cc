#include "autoscaler/transitions.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"

namespace ra::autoscaler {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint{} + std::chrono::hours(24 * 365 * 50);

TransitionWatch VolumeWatch(const std::string& replica, TimePoint since,
                            const std::string& budget = "") {
  TransitionWatch w;
  w.cluster = "pg";
  w.replica = replica;
  w.kind = WatchKind::kVolume;
  w.id = "vol-" + replica;
  w.from = "creating";
  w.budget = budget;
  w.since = since;
  return w;
}

struct Harness {
  explicit Harness(TransitionWatcher::Options o = {}) : clock(kT0) {
    watcher = std::make_unique<TransitionWatcher>(
        std::move(o), clock,
        [this](const TransitionWatch& w) -> Result<bool> {
          std::lock_guard lock(mu);
          polled.push_back(w.replica);
          if (failing) return Fail(ErrorKind::kTransient, "cloud unreachable");
          return done.count(w.replica) > 0;
        },
        [this] { ++cycles; });
  }
  FakeClock clock;
  std::mutex mu;
  std::vector<std::string> polled;
  std::set<std::string> done;
  bool failing = false;
  std::atomic<int> cycles{0};
  std::unique_ptr<TransitionWatcher> watcher;
};

TEST(TransitionWatcher, WaitsAShareOfTheTimeAlreadyTakenBetweenItsBounds) {
  TransitionWatcher::Options o;
  o.min_delay = 250ms;
  o.max_delay = 30s;
  o.fraction = 0.1;
  Harness h(o);
  EXPECT_EQ(h.watcher->DelayFor(kT0, kT0), 250ms);         // at first: the least
  EXPECT_EQ(h.watcher->DelayFor(kT0, kT0 + 1s), 250ms);    // 100 ms < the least
  EXPECT_EQ(h.watcher->DelayFor(kT0, kT0 + 10s), 1000ms);  // a tenth
  EXPECT_EQ(h.watcher->DelayFor(kT0, kT0 + 120s), 12000ms);
  EXPECT_EQ(h.watcher->DelayFor(kT0, kT0 + 3600s), 30000ms);  // never beyond the interval
  // A clock that went back never makes a negative wait.
  EXPECT_EQ(h.watcher->DelayFor(kT0 + 10s, kT0), 250ms);
}

TEST(TransitionWatcher, PollsOnlyWhatIsDueAndAsksForACycleWhenOneMovedOn) {
  Harness h;
  h.watcher->Sync({VolumeWatch("r1", kT0), VolumeWatch("r2", kT0)}, kT0);
  EXPECT_EQ(h.watcher->PollDue(kT0 + 100ms), 0);  // not due before the least delay
  EXPECT_EQ(h.watcher->PollDue(kT0 + 250ms), 2);
  EXPECT_EQ(h.cycles.load(), 0);
  h.done.insert("r1");
  EXPECT_EQ(h.watcher->PollDue(kT0 + 500ms), 2);
  EXPECT_EQ(h.cycles.load(), 1);     // one cycle for the round
  EXPECT_EQ(h.watcher->size(), 1u);  // r1 is handed back by that cycle if still moving
  EXPECT_EQ(h.watcher->moved(), 1);
  EXPECT_EQ(h.watcher->polls(), 4);
}

TEST(TransitionWatcher, AWatchKeptBySyncKeepsItsScheduleAndOneLeftOutIsDropped) {
  Harness h;
  h.watcher->Sync({VolumeWatch("r1", kT0), VolumeWatch("r2", kT0)}, kT0 + 20s);
  // Both due 2 s (a tenth of 20 s) after the sync.
  EXPECT_EQ(h.watcher->NextDue(), kT0 + 22s);
  // The next cycle keeps r1 (same key: same schedule) and drops r2; r3 is new.
  h.watcher->Sync({VolumeWatch("r1", kT0), VolumeWatch("r3", kT0 + 21s)}, kT0 + 21s);
  EXPECT_EQ(h.watcher->size(), 2u);
  EXPECT_EQ(h.watcher->PollDue(kT0 + 21s + 250ms), 1);  // r3, new: its least delay
  {
    std::lock_guard lock(h.mu);
    EXPECT_EQ(h.polled, (std::vector<std::string>{"r3"}));
    h.polled.clear();
  }
  EXPECT_EQ(h.watcher->PollDue(kT0 + 22s - 1ms), 1);  // r3 again (0.25 s later); r1 not yet
  EXPECT_EQ(h.watcher->PollDue(kT0 + 22s), 1);        // r1 on its old schedule
  std::lock_guard lock(h.mu);
  EXPECT_EQ(h.polled, (std::vector<std::string>{"r3", "r1"}));
}

TEST(TransitionWatcher, AClockSteppedBackDoesNotPushAKeptWatchBeyondOneInterval) {
  TransitionWatcher::Options o;
  o.max_delay = 2s;
  Harness h(o);
  h.watcher->Sync({VolumeWatch("r1", kT0)}, kT0 + 1h);  // due 2 s later (a tenth, capped)
  EXPECT_EQ(h.watcher->NextDue(), kT0 + 1h + 2s);
  // The wall clock steps back an hour: the next cycle keeps the watch, due within an interval.
  h.watcher->Sync({VolumeWatch("r1", kT0)}, kT0);
  EXPECT_EQ(h.watcher->NextDue(), kT0 + 2s);
}

TEST(TransitionWatcher, AFailedPollKeepsTheWatchAndAsksForNothing) {
  Harness h;
  h.failing = true;
  h.watcher->Sync({VolumeWatch("r1", kT0)}, kT0);
  EXPECT_EQ(h.watcher->PollDue(kT0 + 1s), 1);
  EXPECT_EQ(h.cycles.load(), 0);
  EXPECT_EQ(h.watcher->size(), 1u);
}

TEST(TransitionWatcher, ACloudsPollsStayWithinItsBudgetHoweverManyWatches) {
  TransitionWatcher::Options o;
  o.budgets["cloud-a"] = 2.0;  // polls a second
  o.parallel = 100;
  Harness h(o);
  std::vector<TransitionWatch> many;
  for (int i = 0; i < 40; ++i) many.push_back(VolumeWatch("r" + std::to_string(i), kT0, "cloud-a"));
  many.push_back(VolumeWatch("pg-probe", kT0, ""));  // unlimited budget
  h.watcher->Sync(many, kT0);
  // 20 s of rounds every 50 ms, as the thread would run them when polls are due.
  int cloud_polls = 0;
  for (TimePoint t = kT0; t <= kT0 + 20s; t += 50ms) {
    h.clock.Set(t);
    h.watcher->PollDue(t);
  }
  {
    std::lock_guard lock(h.mu);
    for (const std::string& r : h.polled) cloud_polls += r != "pg-probe" ? 1 : 0;
  }
  // A burst of one and 2 a second: at most 1 + 2 x 20 over 20 s.
  EXPECT_LE(cloud_polls, 41);
  EXPECT_GE(cloud_polls, 35);  // and the budget is used, not starved
  // The unlimited one was polled on its own schedule all along: at 0.25 s then a tenth of the
  // time waited (min 0.25 s), i.e. more than 20 times in 20 s.
  std::lock_guard lock(h.mu);
  EXPECT_GT(std::count(h.polled.begin(), h.polled.end(), "pg-probe"), 20);
}

TEST(TransitionWatcher, TheThreadPollsOnItsOwnAndStops) {
  TransitionWatcher::Options o;
  o.min_delay = 50ms;
  MonotonicClock clock;
  std::atomic<int> polls{0};
  std::atomic<int> cycles{0};
  TransitionWatcher watcher(
      o, clock, [&polls](const TransitionWatch&) -> Result<bool> { return ++polls >= 3; },
      [&cycles] { ++cycles; });
  watcher.Start();
  watcher.Sync({VolumeWatch("r1", clock.Now())}, clock.Now());
  for (int i = 0; i < 200 && cycles.load() == 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  watcher.Stop();
  EXPECT_EQ(cycles.load(), 1);
  EXPECT_EQ(polls.load(), 3);
  EXPECT_EQ(watcher.size(), 0u);
}

// ---------------------------------------------------------------------------------------------
// what a cycle leaves to follow

openstack::VolumeFacts Vol(const std::string& id, const std::string& status) {
  openstack::VolumeFacts v;
  v.id = id;
  v.status = status;
  return v;
}

openstack::ServerFacts Srv(const std::string& id, const std::string& status,
                           const std::string& address = "") {
  openstack::ServerFacts s;
  s.id = id;
  s.status = status;
  s.address = address;
  return s;
}

openstack::SnapshotFacts Snap(const std::string& id, const std::string& status) {
  openstack::SnapshotFacts s;
  s.id = id;
  s.status = status;
  return s;
}

lb::Member Member(const std::string& name) {
  lb::Member m;
  m.name = name;
  return m;
}

class TransitionWatchesTest : public ::testing::Test {
 protected:
  TransitionWatchesTest() {
    cluster_.name = "pg";
    cluster_.cloud = "cloud-a";
    cluster_.postgres.port = 5433;
    observed_.primary_host = "10.0.0.1";
    observed_.primary_port = 5432;
  }
  ObservedReplica& Replica(const std::string& name) {
    ObservedReplica& r = observed_.replicas.emplace_back();
    r.name = name;
    return r;
  }
  ReplicaView& View(const std::string& name, Phase phase, const std::string& address = "") {
    ReplicaView& v = plan_.replicas.emplace_back();
    v.name = name;
    v.phase = phase;
    v.phase_since = kT0;
    v.address = address;
    return v;
  }
  std::map<std::string, TransitionWatch> Watches() {
    std::map<std::string, TransitionWatch> out;
    for (TransitionWatch& w : TransitionWatches(cluster_, observed_, plan_)) {
      out[w.replica.empty() ? w.id : w.replica] = w;
    }
    return out;
  }
  config::Cluster cluster_;
  Observed observed_;
  Plan plan_;
};

TEST_F(TransitionWatchesTest, EachSlowPhaseWaitsOnItsOwnResource) {
  Replica("cloning").volume = Vol("vol-1", "creating");
  View("cloning", Phase::kVolumeCreating);

  ObservedReplica& building = Replica("building");
  building.volume = Vol("vol-2", "in-use");
  building.server = Srv("srv-2", "BUILD");
  View("building", Phase::kServerBuilding);

  ObservedReplica& booting = Replica("booting");
  booting.server = Srv("srv-3", "ACTIVE", "10.0.0.3");
  View("booting", Phase::kPostgresStarting, "10.0.0.3");

  Replica("catching").server = Srv("srv-4", "ACTIVE");
  View("catching", Phase::kCatchingUp, "10.0.0.4");

  Replica("admitted").lb = Member("admitted");
  View("admitted", Phase::kAdmitting, "10.0.0.5");

  ObservedReplica& going = Replica("going");
  going.volume = Vol("vol-6", "deleting");
  View("going", Phase::kDeleting);

  observed_.snapshots.push_back(Snap("snap-1", "creating"));
  observed_.snapshots.push_back(Snap("snap-0", "available"));

  auto w = Watches();
  ASSERT_EQ(w.size(), 7u);
  EXPECT_EQ(w["cloning"].kind, WatchKind::kVolume);
  EXPECT_EQ(w["cloning"].id, "vol-1");
  EXPECT_EQ(w["cloning"].from, "creating");
  EXPECT_EQ(w["cloning"].budget, "cloud-a");
  EXPECT_EQ(w["cloning"].since, kT0);
  EXPECT_EQ(w["building"].kind, WatchKind::kServer);
  EXPECT_EQ(w["building"].from, "BUILD");
  EXPECT_EQ(w["booting"].kind, WatchKind::kPostgres);
  EXPECT_EQ(w["booting"].host, "10.0.0.3");
  EXPECT_EQ(w["booting"].port, 5433);
  EXPECT_EQ(w["booting"].budget, "");  // PostgreSQL is not the cloud's budget
  EXPECT_EQ(w["catching"].kind, WatchKind::kCatchUp);
  EXPECT_EQ(w["catching"].primary_host, "10.0.0.1");
  EXPECT_EQ(w["admitted"].kind, WatchKind::kBalancer);
  EXPECT_EQ(w["going"].kind, WatchKind::kVolume);
  EXPECT_EQ(w["going"].from, "deleting");
  EXPECT_EQ(w["snap-1"].kind, WatchKind::kSnapshot);
  EXPECT_EQ(w.count("snap-0"), 0u);
}

TEST_F(TransitionWatchesTest, NothingForWhatAnActionOrTheNextCycleHandles) {
  // An action still runs for it: its completion is what the next step waits for.
  Replica("busy").volume = Vol("vol-1", "creating");
  View("busy", Phase::kVolumeCreating).busy = true;
  // Settled resources: nothing moves by itself.
  Replica("ready").volume = Vol("vol-2", "available");
  View("ready", Phase::kServerBuilding);
  ObservedReplica& serving = Replica("serving");
  serving.server = Srv("srv-3", "ACTIVE");
  View("serving", Phase::kServing, "10.0.0.3");
  // Caught up but not yet in the balancer: the admit is submitted by that same cycle.
  Replica("to-admit").server = Srv("srv-4", "ACTIVE");
  View("to-admit", Phase::kAdmitting, "10.0.0.4");
  // Planned this cycle, not observed yet.
  View("new", Phase::kVolumeCreating);
  // The donor is never ours.
  Replica("donor").server = Srv("srv-d", "BUILD");
  View("donor", Phase::kServerBuilding).foreign = true;
  EXPECT_TRUE(Watches().empty());
}

TEST_F(TransitionWatchesTest, CatchingUpWithoutAKnownPrimaryIsLeftToTheCycle) {
  observed_.primary_host.clear();
  Replica("catching").server = Srv("srv-4", "ACTIVE");
  View("catching", Phase::kCatchingUp, "10.0.0.4");
  EXPECT_TRUE(Watches().empty());
}

}  // namespace
}  // namespace ra::autoscaler
