#include "autoscaler/reconcile.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

namespace ra::autoscaler {
namespace {

using namespace std::chrono_literals;
using lb::AdminState;

// 2026-11-21T06:00:00Z; nothing depends on the date, only on differences.
const TimePoint kT0 = TimePoint(std::chrono::seconds(1795240800));

openstack::SnapshotFacts Snapshot(std::string id, std::string status, TimePoint created) {
  openstack::SnapshotFacts snapshot;
  snapshot.id = std::move(id);
  snapshot.status = std::move(status);
  snapshot.volume_id = "vol-donor";
  snapshot.created = created;
  return snapshot;
}

/// One replica as the sources show it, built step by step.
class R {
 public:
  explicit R(std::string name) { replica_.name = std::move(name); }

  R& Volume(std::string status, TimePoint created, std::string zone = "az1",
            std::string snapshot = "snap-new") {
    openstack::VolumeFacts volume;
    volume.id = "vol-" + replica_.name;
    volume.name = replica_.name;
    volume.status = std::move(status);
    volume.availability_zone = std::move(zone);
    volume.snapshot_id = std::move(snapshot);
    volume.created = created;
    replica_.volume = volume;
    return *this;
  }
  R& Server(std::string status, TimePoint created, std::string zone = "az1",
            std::string fault = "") {
    openstack::ServerFacts server;
    server.id = "srv-" + replica_.name;
    server.name = replica_.name;
    server.status = std::move(status);
    server.fault = std::move(fault);
    server.address = "10.0.0." + std::to_string(replica_.name.size());
    server.availability_zone = std::move(zone);
    server.created = created;
    replica_.server = server;
    if (!replica_.volume) Volume("in-use", created, server.availability_zone);
    return *this;
  }
  /// In HAProxy: `up` means UP with a passed check (serving when also ready).
  R& Lb(AdminState admin, int64_t sessions, bool up = true) {
    lb::Member lb;
    lb.name = replica_.name;
    lb.address = replica_.server ? replica_.server->address : "10.9.9.9";
    lb.port = 5432;
    lb.admin = admin;
    lb.health = up ? lb::Health::kUp : lb::Health::kDown;
    lb.serving = up && admin == AdminState::kReady;
    lb.detail = up ? "UP, check L7OK" : "DOWN, check L4CON";
    lb.sessions = sessions;
    replica_.lb = lb;
    return *this;
  }
  /// Reachable, streaming timeline 1 of system "sys-1", no client session, behind by these.
  R& Probe(int64_t lag_bytes, double lag_seconds) {
    ProbeResult probe;
    probe.reachable = true;
    probe.in_recovery = true;
    probe.lag_bytes = lag_bytes;
    probe.lag_seconds = lag_seconds;
    probe.system_identifier = "sys-1";
    probe.receiver_status = "streaming";
    probe.receiver_timeline = 1;
    probe.receiver_silence_seconds = 1.0;
    probe.replay_lsn = 1000;
    probe.client_sessions = 0;
    replica_.probe = probe;
    return *this;
  }
  /// The WAL receiver as pg_stat_wal_receiver shows it ("" when none runs).
  R& Receiver(std::string status, std::optional<int64_t> timeline = 1) {
    replica_.probe->receiver_status = std::move(status);
    replica_.probe->receiver_timeline = timeline;
    return *this;
  }
  R& Replay(int64_t lsn) {
    replica_.probe->replay_lsn = lsn;
    return *this;
  }
  R& SystemId(std::string id) {
    replica_.probe->system_identifier = std::move(id);
    return *this;
  }
  /// Client sessions on the replica itself (std::nullopt: not read).
  R& PgSessions(std::optional<int64_t> sessions) {
    replica_.probe->client_sessions = sessions;
    return *this;
  }
  R& LagUnknown() {
    ProbeResult probe;
    probe.reachable = true;
    probe.in_recovery = true;
    probe.error = "primary LSN unknown";
    replica_.probe = probe;
    return *this;
  }
  R& Unreachable() {
    ProbeResult probe;
    probe.error = "no response";
    replica_.probe = probe;
    return *this;
  }
  /// ACTIVE, ready and UP in HAProxy, caught up.
  R& Serving(int64_t sessions = 0, TimePoint created = kT0 - 1h, std::string zone = "az1") {
    Server("ACTIVE", created, std::move(zone));
    Lb(AdminState::kReady, sessions);
    return Probe(0, 0);
  }

  operator ObservedReplica() const { return replica_; }

 private:
  ObservedReplica replica_;
};

class ReconcileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_.name = "c1";
    cluster_.donor.server = "donor-1";
    cluster_.replica.flavor = "m1";
    input_.cluster = &cluster_;
    input_.now = kT0;
    input_.observed.zones = {"az1", "az2", "az3"};
    input_.observed.snapshots = {Snapshot("snap-new", "available", kT0 - 2h)};
    input_.observed.donor_volume_id = "vol-donor";
    input_.fresh_names = {"c1-replica-aaa", "c1-replica-bbb", "c1-replica-ccc", "c1-replica-ddd"};
  }

  Plan Run() { return Reconcile(input_, memory_); }

  /// Runs again `later`, with the same observation.
  Plan RunAt(TimePoint now) {
    input_.now = now;
    return Run();
  }

  void Observe(std::vector<ObservedReplica> replicas) {
    input_.observed.replicas = std::move(replicas);
  }

  config::Cluster cluster_;
  ClusterMemory memory_;
  ReconcileInput input_;
};

std::vector<std::string> Kinds(const Plan& plan, const std::string& replica) {
  std::vector<std::string> kinds;
  for (const Action& action : plan.actions) {
    if (action.replica == replica) kinds.emplace_back(ToString(action.kind));
  }
  return kinds;
}

std::vector<std::string> AllKinds(const Plan& plan) {
  std::vector<std::string> kinds;
  for (const Action& action : plan.actions) {
    std::string text(ToString(action.kind));
    if (!action.replica.empty()) text += " " + action.replica;
    if (!action.snapshot_id.empty()) text += " " + action.snapshot_id;
    kinds.push_back(std::move(text));
  }
  return kinds;
}

const Action* Find(const Plan& plan, ActionKind kind, const std::string& replica = "") {
  for (const Action& action : plan.actions) {
    if (action.kind == kind && (replica.empty() || action.replica == replica)) return &action;
  }
  return nullptr;
}

const ReplicaView* View(const Plan& plan, const std::string& name) {
  for (const ReplicaView& view : plan.replicas) {
    if (view.name == name) return &view;
  }
  return nullptr;
}

bool Blocks(const Plan& plan, ActionKind kind, const std::string& needle) {
  return std::any_of(plan.blocked.begin(), plan.blocked.end(), [&](const Blocked& b) {
    return b.kind == kind && b.reason.find(needle) != std::string::npos;
  });
}

// ---------------------------------------------------------------------------------------------
// names, backoff

TEST(ReconcileNames, PhasesAndActionsHaveStableNames) {
  EXPECT_EQ(ToString(Phase::kVolumeCreating), "volume_creating");
  EXPECT_EQ(ToString(Phase::kServerBuilding), "server_building");
  EXPECT_EQ(ToString(Phase::kPostgresStarting), "postgres_starting");
  EXPECT_EQ(ToString(Phase::kCatchingUp), "catching_up");
  EXPECT_EQ(ToString(Phase::kAdmitting), "admitting");
  EXPECT_EQ(ToString(Phase::kServing), "serving");
  EXPECT_EQ(ToString(Phase::kLagging), "lagging");
  EXPECT_EQ(ToString(Phase::kDraining), "draining");
  EXPECT_EQ(ToString(Phase::kDrained), "drained");
  EXPECT_EQ(ToString(Phase::kDeleting), "deleting");
  EXPECT_EQ(ToString(Phase::kFailed), "failed");
  EXPECT_EQ(ToString(ActionKind::kCreateVolume), "create_volume");
  EXPECT_EQ(ToString(ActionKind::kRemoveFromLb), "remove_from_lb");
  EXPECT_EQ(ToString(ActionKind::kDeleteSnapshot), "delete_snapshot");
  EXPECT_EQ(ToString(ActionKind::kEnsureDns), "ensure_dns");
}

TEST(ReconcileNames, ActiveMeansUpServingOrLagging) {
  EXPECT_TRUE(IsActive(Phase::kVolumeCreating));
  EXPECT_TRUE(IsActive(Phase::kAdmitting));
  EXPECT_TRUE(IsActive(Phase::kServing));
  EXPECT_TRUE(IsActive(Phase::kLagging));
  EXPECT_FALSE(IsActive(Phase::kDraining));
  EXPECT_FALSE(IsActive(Phase::kDrained));
  EXPECT_FALSE(IsActive(Phase::kDeleting));
  EXPECT_FALSE(IsActive(Phase::kFailed));
}

TEST(ReconcileBackoff, DoublesFromThirtySecondsUpToTenMinutes) {
  EXPECT_EQ(BackoffFor(1, ErrorKind::kTransient), Duration(30s));
  EXPECT_EQ(BackoffFor(2, ErrorKind::kTransient), Duration(60s));
  EXPECT_EQ(BackoffFor(3, ErrorKind::kInternal), Duration(120s));
  EXPECT_EQ(BackoffFor(5, ErrorKind::kTransient), Duration(480s));
  EXPECT_EQ(BackoffFor(6, ErrorKind::kTransient), Duration(10min));
  EXPECT_EQ(BackoffFor(60, ErrorKind::kTransient), Duration(10min));
}

TEST(ReconcileBackoff, QuotaStartsAtTwoMinutes) {
  EXPECT_EQ(BackoffFor(1, ErrorKind::kQuota), Duration(2min));
  EXPECT_EQ(BackoffFor(2, ErrorKind::kQuota), Duration(4min));
  EXPECT_EQ(BackoffFor(4, ErrorKind::kQuota), Duration(10min));
}

TEST(ReconcileBackoff, RecordsConsecutiveFailuresAndClearsOnSuccess) {
  ClusterMemory memory;
  RecordZoneFailure(memory, "az1", "m1", Error{ErrorKind::kQuota, "Quota exceeded for cores"}, kT0);
  RecordZoneFailure(memory, "az1", "m1", Error{ErrorKind::kQuota, "Quota exceeded for cores"},
                    kT0 + 3min);
  ASSERT_EQ(memory.backoff.count("az1/m1"), 1u);
  EXPECT_EQ(memory.backoff["az1/m1"].failures, 2);
  EXPECT_EQ(memory.backoff["az1/m1"].until, kT0 + 3min + 4min);
  EXPECT_NE(memory.backoff["az1/m1"].reason.find("Quota exceeded"), std::string::npos);
  RecordZoneFailure(memory, "az2", "m1", Error{ErrorKind::kTransient, "503"}, kT0);
  RecordZoneSuccess(memory, "az1", "m1");
  EXPECT_EQ(memory.backoff.count("az1/m1"), 0u);
  EXPECT_EQ(memory.backoff.count("az2/m1"), 1u);
}

// ---------------------------------------------------------------------------------------------
// phases, one replica at a time

struct PhaseCase {
  std::string what;
  ObservedReplica replica;
  int desired = 1;
  std::optional<Phase> remembered{};  // memory of the previous cycle (none: first sight)
  Phase phase;
  std::vector<std::string> actions;
  std::string detail_has{};
};

class PhaseTable : public ReconcileTest, public ::testing::WithParamInterface<PhaseCase> {};

TEST_P(PhaseTable, DerivesThePhaseAndPlans) {
  const PhaseCase& c = GetParam();
  Observe({c.replica});
  input_.desired = c.desired;
  if (c.remembered) {
    ReplicaMemory& mem = memory_.replicas[c.replica.name];
    mem.phase = *c.remembered;
    mem.phase_since = kT0 - 1min;
    mem.first_seen = kT0 - 1h;
  }
  const Plan plan = Run();
  const ReplicaView* view = View(plan, c.replica.name);
  ASSERT_NE(view, nullptr);
  EXPECT_EQ(ToString(view->phase), ToString(c.phase)) << view->detail;
  EXPECT_EQ(Kinds(plan, c.replica.name), c.actions) << plan.reason;
  EXPECT_NE(view->detail.find(c.detail_has), std::string::npos) << view->detail;
  EXPECT_EQ(memory_.replicas[c.replica.name].phase, c.phase);
}

std::string CaseName(const ::testing::TestParamInfo<PhaseCase>& info) {
  std::string name;
  for (char ch : info.param.what) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(
    Reconcile, PhaseTable,
    ::testing::Values(
        PhaseCase{"volume_creating",
                  R("r").Volume("creating", kT0 - 3min),
                  1,
                  {},
                  Phase::kVolumeCreating,
                  {},
                  "volume creating for 3m"},
        PhaseCase{"volume_creating_too_long_fails_from_its_created_time",
                  R("r").Volume("creating", kT0 - 16min),
                  1,
                  {},
                  Phase::kFailed,
                  {"delete_replica"},
                  "volume still creating after 16m (volume_create is 15m)"},
        PhaseCase{"volume_available_gets_its_server",
                  R("r").Volume("available", kT0 - 5min, "az2"),
                  1,
                  {},
                  Phase::kServerBuilding,
                  {"create_server"},
                  "server to be created"},
        PhaseCase{"volume_error_fails",
                  R("r").Volume("error", kT0 - 5min),
                  1,
                  {},
                  Phase::kFailed,
                  {"delete_replica"},
                  "volume error"},
        PhaseCase{"server_build",
                  R("r").Server("BUILD", kT0 - 3min),
                  1,
                  {},
                  Phase::kServerBuilding,
                  {},
                  "server BUILD for 3m"},
        PhaseCase{"server_build_too_long_after_restart",
                  R("r").Server("BUILD", kT0 - 11min),
                  1,
                  {},
                  Phase::kFailed,
                  {"delete_replica"},
                  "server_build is 10m"},
        PhaseCase{"server_error_with_fault",
                  R("r").Server("ERROR", kT0 - 2min, "az1", "No valid host was found."),
                  1,
                  {},
                  Phase::kFailed,
                  {"delete_replica"},
                  "server ERROR: No valid host was found."},
        PhaseCase{"postgres_not_answering",
                  R("r").Server("ACTIVE", kT0 - 2min).Unreachable(),
                  1,
                  {},
                  Phase::kPostgresStarting,
                  {},
                  "PQping: no response"},
        PhaseCase{"catching_up_lag_above",
                  R("r").Server("ACTIVE", kT0 - 9min).Probe(40 << 20, 2),
                  1,
                  {},
                  Phase::kCatchingUp,
                  {},
                  "lag 40 MiB > 16 MiB"},
        PhaseCase{"lag_unknown_is_not_admitted",
                  R("r").Server("ACTIVE", kT0 - 9min).LagUnknown(),
                  1,
                  {},
                  Phase::kCatchingUp,
                  {},
                  "lag unknown: primary LSN unknown"},
        PhaseCase{"caught_up_is_admitted",
                  R("r").Server("ACTIVE", kT0 - 9min).Probe(1024, 0.5),
                  1,
                  {},
                  Phase::kAdmitting,
                  {"admit"},
                  "caught up"},
        PhaseCase{
            "serving", R("r").Serving(7), 1, Phase::kServing, Phase::kServing, {}, "7 sessions"},
        PhaseCase{"serving_lag_bytes_above_goes_to_maint",
                  R("r").Serving(7).Probe(int64_t{40} << 20, 1),
                  1,
                  Phase::kServing,
                  Phase::kLagging,
                  {"maint"},
                  "lag 40 MiB > 16 MiB"},
        PhaseCase{"serving_lag_seconds_above_goes_to_maint",
                  R("r").Serving(7).Probe(0, 45),
                  1,
                  Phase::kServing,
                  Phase::kLagging,
                  {"maint"},
                  "lag 45s > 30s"},
        PhaseCase{"serving_lag_unknown_stays",
                  R("r").Serving(7).LagUnknown(),
                  1,
                  Phase::kServing,
                  Phase::kServing,
                  {},
                  "lag unknown"},
        PhaseCase{"maint_caught_up_again_is_readmitted",
                  R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 2).Probe(0, 0),
                  1,
                  Phase::kLagging,
                  Phase::kAdmitting,
                  {"admit"},
                  "re-admitted"},
        PhaseCase{"maint_still_lagging_waits",
                  R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 2).Probe(50 << 20, 3),
                  1,
                  Phase::kLagging,
                  Phase::kLagging,
                  {},
                  "in maint"},
        PhaseCase{"restart_drain_with_sessions_is_leaving",
                  R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kDraining, 3).Probe(0, 0),
                  0,
                  {},
                  Phase::kDraining,
                  {},
                  "3 sessions left, 5m of drain budget"},
        PhaseCase{"restart_maint_caught_up_not_needed_is_a_victim",
                  R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Probe(0, 0),
                  0,
                  {},
                  Phase::kDrained,
                  {"remove_from_lb"},
                  "no session left"},
        // Maint is how a lagging replica is ejected: after a restart a caught-up one is
        // re-admitted when needed, and one whose probe fails right then is not taken as leaving.
        PhaseCase{"restart_maint_caught_up_and_needed_is_readmitted",
                  R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Probe(0, 0),
                  1,
                  {},
                  Phase::kAdmitting,
                  {"admit"},
                  "re-admitted"},
        PhaseCase{"restart_maint_unreachable_is_lagging_not_leaving",
                  R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Unreachable(),
                  1,
                  {},
                  Phase::kLagging,
                  {},
                  "in maint"},
        PhaseCase{"restart_maint_with_lag_is_lagging",
                  R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Probe(50 << 20, 3),
                  1,
                  {},
                  Phase::kLagging,
                  {},
                  "lag 50 MiB > 16 MiB"},
        PhaseCase{"in_haproxy_not_up_yet",
                  R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kReady, 0, false).Probe(0, 0),
                  1,
                  Phase::kAdmitting,
                  Phase::kAdmitting,
                  {},
                  "check L4CON"}),
    CaseName);

TEST_F(ReconcileTest, PostgresStartTimeoutCountsFromThePhaseStart) {
  Observe({R("r").Server("ACTIVE", kT0 - 1h).Unreachable()});
  input_.desired = 1;
  Run();
  EXPECT_EQ(memory_.replicas["r"].phase, Phase::kPostgresStarting);
  Plan plan = RunAt(kT0 + 4min);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kPostgresStarting);
  EXPECT_TRUE(plan.failures.empty());
  plan = RunAt(kT0 + 5min + 1s);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kFailed);
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(ToString(plan.failures[0].reason), "timeout");
  EXPECT_EQ(plan.failures[0].zone, "az1");
  EXPECT_NE(plan.failures[0].message.find("postgres_start is 5m"), std::string::npos);
  // Reported once; the replica stays failed until it is gone.
  plan = RunAt(kT0 + 6min);
  EXPECT_TRUE(plan.failures.empty());
  EXPECT_EQ(View(plan, "r")->phase, Phase::kFailed);
  EXPECT_EQ(Kinds(plan, "r"), std::vector<std::string>{"delete_replica"});
}

TEST_F(ReconcileTest, MaintReplicaWhosePostgresNeverAnswersFailsAfterPostgresStart) {
  Observe({R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Unreachable()});
  input_.desired = 1;
  Plan plan = Run();
  EXPECT_EQ(View(plan, "r")->phase, Phase::kLagging);
  input_.now = kT0 + 4min;
  plan = Run();
  EXPECT_EQ(View(plan, "r")->phase, Phase::kLagging) << View(plan, "r")->detail;
  input_.now = kT0 + 6min;  // postgres_start is 5m
  plan = Run();
  EXPECT_EQ(View(plan, "r")->phase, Phase::kFailed);
  EXPECT_NE(memory_.replicas["r"].failure.find("not answering"), std::string::npos);
}

TEST_F(ReconcileTest, MaintBudgetCountsFromWhenPostgresStoppedAnsweringNotFromTheLagging) {
  // Ejected for lag and lagging for longer than postgres_start (a long write burst, with a
  // lagging budget longer still), then one probe fails: the replica still has postgres_start
  // from that moment.
  cluster_.timeouts.lagging = 2h;
  Observe({R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Probe(50 << 20, 30)});
  input_.desired = 1;
  Run();
  Plan plan = RunAt(kT0 + 20min);
  ASSERT_EQ(View(plan, "r")->phase, Phase::kLagging);
  Observe({R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Unreachable()});
  plan = RunAt(kT0 + 20min + 30s);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kLagging) << View(plan, "r")->detail;
  EXPECT_TRUE(plan.failures.empty());
  // Answering again resets the budget.
  Observe({R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Probe(50 << 20, 30)});
  RunAt(kT0 + 24min);
  Observe({R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Unreachable()});
  plan = RunAt(kT0 + 28min);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kLagging) << View(plan, "r")->detail;
  plan = RunAt(kT0 + 32min);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kLagging) << View(plan, "r")->detail;
  plan = RunAt(kT0 + 33min + 1s);  // 5m and a second of silence
  EXPECT_EQ(View(plan, "r")->phase, Phase::kFailed);
}

TEST_F(ReconcileTest, CatchUpTimeoutFails) {
  Observe({R("r").Server("ACTIVE", kT0 - 1h).Probe(int64_t{1} << 30, 600)});
  input_.desired = 1;
  Run();
  Plan plan = RunAt(kT0 + 29min);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kCatchingUp);
  EXPECT_NE(View(plan, "r")->detail.find("lag 1 GiB > 16 MiB"), std::string::npos);
  plan = RunAt(kT0 + 31min);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kFailed);
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(ToString(plan.failures[0].reason), "catch_up");
}

TEST_F(ReconcileTest, ServerErrorReasonCarriesNovasFaultAndCapacity) {
  Observe({R("r").Server("ERROR", kT0 - 2min, "az2", "No valid host was found.")});
  input_.desired = 1;
  const Plan plan = Run();
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(ToString(plan.failures[0].reason), "capacity");
  EXPECT_EQ(plan.failures[0].zone, "az2");
  EXPECT_EQ(memory_.replicas["r"].failure, "server ERROR: No valid host was found.");
  EXPECT_EQ(ToString(memory_.replicas["r"].failure_reason), "capacity");
}

TEST_F(ReconcileTest, AFailureBacksItsZoneOffBeforeTheSamePlanPlacesTheReplacement) {
  // Derive records the failure (RecordFailure) before planning: one pass places the replacement
  // away from the zone that just failed, with no second planning pass by the loop.
  Observe({R("r").Server("ERROR", kT0 - 2min, "az1", "No valid host was found.")});
  input_.desired = 1;
  const Plan plan = Run();
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(memory_.backoff["az1/m1"].failures, 1);
  EXPECT_GT(memory_.backoff["az1/m1"].until, kT0 + 1min) << "capacity backs off like a quota";
  const Action* create = Find(plan, ActionKind::kCreateVolume);
  ASSERT_NE(create, nullptr) << plan.reason;
  EXPECT_EQ(create->zone, "az2");
  // The same failure seen again next cycle is not counted twice.
  RunAt(kT0 + 10s);
  EXPECT_EQ(memory_.backoff["az1/m1"].failures, 1);
}

TEST_F(ReconcileTest, WhatForbidsCreatingBlocksNewVolumesAndServersWithItsReason) {
  Observe({R("waiting").Volume("available", kT0 - 1min, "az1")});
  input_.desired = 3;
  input_.cannot_create = "the current primary is unknown";
  const Plan plan = Run();
  EXPECT_EQ(Find(plan, ActionKind::kCreateVolume), nullptr);
  EXPECT_EQ(Find(plan, ActionKind::kCreateServer), nullptr);
  EXPECT_TRUE(Blocks(plan, ActionKind::kCreateVolume, "the current primary is unknown"));
  EXPECT_TRUE(Blocks(plan, ActionKind::kCreateServer, "the current primary is unknown"));
  EXPECT_EQ(View(plan, "c1-replica-aaa"), nullptr) << "nothing new is remembered or shown";
  EXPECT_FALSE(memory_.replicas.contains("c1-replica-aaa"));
}

TEST_F(ReconcileTest, PlacementPrefersZonesNearThePrimaryWhenAsked) {
  input_.desired = 3;
  input_.placement.prefer_latency = true;
  input_.placement.max_latency = 20ms;
  input_.placement.latency_seconds = {{"az1", 0.045}, {"az2", 0.002}, {"az3", 0.004}};
  const Plan plan = Run();
  ASSERT_EQ(plan.actions.size(), 3u) << plan.reason;
  EXPECT_EQ(plan.actions[0].zone, "az2");
  EXPECT_EQ(plan.actions[1].zone, "az3");
  EXPECT_EQ(plan.actions[2].zone, "az2") << "the far az1 only when nothing else can take it";
}

TEST_F(ReconcileTest, FailedReplicaInHaproxyLeavesItBeforeAnythingIsDeleted) {
  cluster_.dns = config::Dns{.zone = "db.example.", .ttl = 60, .record_template = "{name}"};
  Observe({R("r").Server("ERROR", kT0 - 1h, "az1", "host died").Lb(AdminState::kReady, 4)});
  input_.desired = 0;
  Plan plan = Run();
  EXPECT_EQ(Kinds(plan, "r"), (std::vector<std::string>{"maint", "remove_from_lb"}));
  const Action* remove = Find(plan, ActionKind::kRemoveFromLb, "r");
  ASSERT_NE(remove, nullptr);
  EXPECT_TRUE(remove->force);
  EXPECT_EQ(remove->sessions, 4);

  // Next cycle HAProxy no longer lists it: DNS, then the server and volume.
  Observe({R("r").Server("ERROR", kT0 - 1h, "az1", "host died")});
  plan = RunAt(kT0 + 30s);
  EXPECT_EQ(Kinds(plan, "r"), (std::vector<std::string>{"delete_dns", "delete_replica"}));
  EXPECT_EQ(View(plan, "r")->phase, Phase::kFailed);
  // Every cycle until it is gone.
  plan = RunAt(kT0 + 60s);
  EXPECT_EQ(Kinds(plan, "r"), (std::vector<std::string>{"delete_dns", "delete_replica"}));
  Observe({});
  plan = RunAt(kT0 + 90s);
  EXPECT_TRUE(plan.actions.empty());
  EXPECT_EQ(memory_.replicas.count("r"), 0u);
}

TEST_F(ReconcileTest, FailedReplicaIsReplacedOutsideItsBackedOffZone) {
  Observe({R("bad").Server("ERROR", kT0 - 2min, "az1", "Quota exceeded"),
           R("ok").Serving(1, kT0 - 1h, "az2")});
  memory_.backoff["az1/m1"] = ZoneBackoff{.failures = 1, .until = kT0 + 2min, .reason = "quota"};
  input_.desired = 2;
  const Plan plan = Run();
  EXPECT_EQ(plan.active, 1);
  const Action* create = Find(plan, ActionKind::kCreateVolume);
  ASSERT_NE(create, nullptr);
  EXPECT_EQ(create->zone, "az3");
  EXPECT_EQ(create->replica, "c1-replica-aaa");
  EXPECT_EQ(Kinds(plan, "bad"), std::vector<std::string>{"delete_replica"});
}

// ---------------------------------------------------------------------------------------------
// scale out

TEST_F(ReconcileTest, CreatesNewReplicasSpreadOverZonesFromTheNewestUsableSnapshot) {
  input_.observed.snapshots = {Snapshot("snap-old", "available", kT0 - 5h),
                               Snapshot("snap-new", "available", kT0 - 2h)};
  Observe({R("a").Serving(3, kT0 - 1h, "az1"), R("b").Serving(3, kT0 - 1h, "az1"),
           R("c").Serving(3, kT0 - 1h, "az2")});
  input_.desired = 5;
  const Plan plan = Run();
  EXPECT_EQ(plan.active, 3);
  ASSERT_EQ(AllKinds(plan), (std::vector<std::string>{"create_volume c1-replica-aaa snap-new",
                                                      "create_volume c1-replica-bbb snap-new"}));
  EXPECT_EQ(plan.actions[0].zone, "az3");
  EXPECT_EQ(plan.actions[1].zone, "az2");  // az2 and az3 both have 1: configuration order
  EXPECT_EQ(memory_.replicas["c1-replica-aaa"].phase, Phase::kVolumeCreating);
  EXPECT_EQ(memory_.replicas["c1-replica-aaa"].zone, "az3");
  ASSERT_NE(View(plan, "c1-replica-bbb"), nullptr);
  EXPECT_EQ(View(plan, "c1-replica-bbb")->phase, Phase::kVolumeCreating);
  EXPECT_EQ(plan.replicas.size(), 5u);
  EXPECT_TRUE(std::is_sorted(plan.replicas.begin(), plan.replicas.end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
  EXPECT_EQ(plan.reason,
            "desired 5, active 3 (3 serving): create 2 in az3, az2 from snapshot snap-new");
}

TEST_F(ReconcileTest, RequestedReplicasCountWhileTheirActionRuns) {
  input_.desired = 2;
  Plan plan = Run();
  ASSERT_EQ(plan.actions.size(), 2u);
  // The actuator still runs both: nothing listed yet, nothing asked twice.
  input_.busy = {"c1-replica-aaa", "c1-replica-bbb"};
  input_.fresh_names = {"c1-replica-xxx", "c1-replica-yyy"};
  plan = RunAt(kT0 + 30s);
  EXPECT_TRUE(plan.actions.empty()) << plan.reason;
  EXPECT_EQ(plan.active, 2);
  EXPECT_EQ(View(plan, "c1-replica-aaa")->detail, "being created");
  // The creation failed: not busy, not listed: forgotten, and made again under a new name.
  input_.busy = {"c1-replica-bbb"};
  plan = RunAt(kT0 + 60s);
  EXPECT_EQ(memory_.replicas.count("c1-replica-aaa"), 0u);
  EXPECT_EQ(AllKinds(plan), std::vector<std::string>{"create_volume c1-replica-xxx snap-new"});
}

TEST_F(ReconcileTest, ZonesInBackoffAreSkippedUntilTheirTime) {
  memory_.backoff["az1/m1"] = ZoneBackoff{.failures = 2, .until = kT0 + 1min, .reason = "quota"};
  memory_.backoff["az2/m1"] = ZoneBackoff{.failures = 1, .until = kT0 - 1s, .reason = "expired"};
  memory_.backoff["az3/other-flavor"] = ZoneBackoff{.failures = 1, .until = kT0 + 1h};
  input_.desired = 3;
  const Plan plan = Run();
  ASSERT_EQ(plan.actions.size(), 3u);
  EXPECT_EQ(plan.actions[0].zone, "az2");
  EXPECT_EQ(plan.actions[1].zone, "az3");
  EXPECT_EQ(plan.actions[2].zone, "az2");
}

TEST_F(ReconcileTest, EveryZoneBackedOffBlocksWithTheReasons) {
  for (const char* zone : {"az1", "az2", "az3"}) {
    RecordZoneFailure(memory_, zone, "m1", Error{ErrorKind::kQuota, "Quota exceeded for instances"},
                      kT0 - 10s);
  }
  input_.desired = 1;
  const Plan plan = Run();
  EXPECT_TRUE(plan.actions.empty());
  EXPECT_TRUE(Blocks(plan, ActionKind::kCreateVolume, "every zone is backed off: zone az1"));
  EXPECT_TRUE(Blocks(plan, ActionKind::kCreateVolume, "Quota exceeded for instances"));
}

TEST_F(ReconcileTest, NoZonesLetsTheCloudChoose) {
  input_.observed.zones.clear();
  input_.desired = 2;
  const Plan plan = Run();
  ASSERT_EQ(plan.actions.size(), 2u);
  EXPECT_EQ(plan.actions[0].zone, "");
  EXPECT_EQ(plan.actions[1].zone, "");
  RecordZoneFailure(memory_, "", "m1", Error{ErrorKind::kQuota, "no capacity"}, kT0);
  memory_.replicas.clear();
  EXPECT_TRUE(Run().actions.empty());
}

TEST_F(ReconcileTest, VolumeWithoutServerInBackedOffZoneWaits) {
  Observe({R("r").Volume("available", kT0 - 1min, "az1")});
  memory_.backoff["az1/m1"] = ZoneBackoff{.failures = 1, .until = kT0 + 2min, .reason = "quota"};
  input_.desired = 1;
  const Plan plan = Run();
  EXPECT_TRUE(Kinds(plan, "r").empty());
  EXPECT_TRUE(Blocks(plan, ActionKind::kCreateServer, "zone az1 backed off until"));
}

TEST_F(ReconcileTest, CreateServerCarriesTheVolumeAndZone) {
  Observe({R("r").Volume("available", kT0 - 1min, "az2")});
  input_.desired = 1;
  const Plan plan = Run();
  const Action* create = Find(plan, ActionKind::kCreateServer, "r");
  ASSERT_NE(create, nullptr);
  EXPECT_EQ(create->volume_id, "vol-r");
  EXPECT_EQ(create->zone, "az2");
  EXPECT_EQ(plan.active, 1);
}

TEST_F(ReconcileTest, AdmitCarriesTheAddressAndTheGate) {
  Observe({R("r").Server("ACTIVE", kT0 - 5min).Probe(2 << 20, 1.5)});
  input_.desired = 1;
  const Plan plan = Run();
  const Action* admit = Find(plan, ActionKind::kAdmit, "r");
  ASSERT_NE(admit, nullptr);
  EXPECT_EQ(admit->address, "10.0.0.1");
  EXPECT_EQ(admit->reason, "caught up: lag 2 MiB <= 16 MiB, 1.5s <= 30s");
}

TEST_F(ReconcileTest, UnreachableReplicaIsNotAdmittedEvenWithKnownLag) {
  ObservedReplica r = R("r").Server("ACTIVE", kT0 - 5min).Probe(0, 0);
  r.probe->reachable = false;
  Observe({r});
  input_.desired = 1;
  EXPECT_EQ(Find(Run(), ActionKind::kAdmit, "r"), nullptr);
}

TEST_F(ReconcileTest, ServingReplicaGetsItsDnsRecordOnce) {
  cluster_.dns = config::Dns{.zone = "db.example."};
  Observe({R("r").Serving(0)});
  input_.desired = 1;
  EXPECT_EQ(Kinds(Run(), "r"), std::vector<std::string>{"ensure_dns"});
  EXPECT_TRUE(RunAt(kT0 + 30s).actions.empty());
}

TEST_F(ReconcileTest, HealthyLeavingReplicasComeBackBeforeNewOnes) {
  Observe({R("going").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kDraining, 2).Probe(0, 0),
           R("sick").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kDraining, 5).Unreachable()});
  memory_.replicas["going"] = ReplicaMemory{.phase = Phase::kDraining,
                                            .phase_since = kT0 - 1min,
                                            .first_seen = kT0 - 1h,
                                            .leaving = true,
                                            .drain_started = kT0 - 1min};
  memory_.replicas["sick"] = memory_.replicas["going"];
  input_.desired = 2;
  const Plan plan = Run();
  EXPECT_EQ(Kinds(plan, "going"), std::vector<std::string>{"admit"});
  EXPECT_FALSE(memory_.replicas["going"].leaving);
  EXPECT_FALSE(memory_.replicas["going"].drain_started.has_value());
  EXPECT_TRUE(memory_.replicas["sick"].leaving);
  EXPECT_TRUE(Kinds(plan, "sick").empty());
  // One came back, one new replica for the rest.
  EXPECT_EQ(Kinds(plan, "c1-replica-aaa"), std::vector<std::string>{"create_volume"});
}

// ---------------------------------------------------------------------------------------------
// snapshots

TEST_F(ReconcileTest, TooOldSnapshotBlocksCreationAndAsksForANewOne) {
  input_.observed.snapshots = {Snapshot("snap-old", "available", kT0 - 30h - 12min)};
  input_.desired = 1;
  Plan plan = Run();
  EXPECT_EQ(Find(plan, ActionKind::kCreateVolume), nullptr);
  ASSERT_EQ(plan.blocked.size(), 1u);
  EXPECT_EQ(plan.blocked[0].reason,
            "no usable golden snapshot: newest available is 30h12m old, snapshots.max_age is 24h "
            "(1 replica wanted)");
  const Action* take = Find(plan, ActionKind::kTakeSnapshot);
  ASSERT_NE(take, nullptr);
  EXPECT_EQ(take->volume_id, "vol-donor");
  EXPECT_EQ(memory_.snapshot_requested_at, kT0);
  // Not asked twice while the first may still show up.
  plan = RunAt(kT0 + 1min);
  EXPECT_EQ(Find(plan, ActionKind::kTakeSnapshot), nullptr);
  EXPECT_TRUE(Blocks(plan, ActionKind::kTakeSnapshot, "requested 1m ago"));
  // Once listed as creating, nothing more.
  input_.observed.snapshots.push_back(Snapshot("snap-next", "creating", kT0 + 10s));
  plan = RunAt(kT0 + 2min);
  EXPECT_EQ(Find(plan, ActionKind::kTakeSnapshot), nullptr);
  EXPECT_FALSE(Blocks(plan, ActionKind::kTakeSnapshot, ""));
}

TEST_F(ReconcileTest, NoSnapshotYet) {
  input_.observed.snapshots.clear();
  input_.desired = 1;
  const Plan plan = Run();
  EXPECT_TRUE(Blocks(plan, ActionKind::kCreateVolume, "no golden snapshot yet"));
  EXPECT_NE(Find(plan, ActionKind::kTakeSnapshot), nullptr);
}

TEST_F(ReconcileTest, SnapshotWithoutDonorVolumeIsBlocked) {
  input_.observed.snapshots.clear();
  input_.observed.donor_volume_id.clear();
  const Plan plan = Run();
  EXPECT_EQ(Find(plan, ActionKind::kTakeSnapshot), nullptr);
  EXPECT_TRUE(Blocks(plan, ActionKind::kTakeSnapshot, "donor's data volume is not known"));
}

TEST_F(ReconcileTest, SnapshotOnScheduleAndOnDemand) {
  input_.observed.snapshots = {Snapshot("snap-a", "available", kT0 - 5h)};
  EXPECT_EQ(Find(Run(), ActionKind::kTakeSnapshot), nullptr);
  Plan plan = RunAt(kT0 + 1h + 1s);  // 6h old now
  const Action* take = Find(plan, ActionKind::kTakeSnapshot);
  ASSERT_NE(take, nullptr);
  EXPECT_NE(take->reason.find("snapshots.interval is 6h"), std::string::npos);

  ClusterMemory fresh;
  memory_ = fresh;
  memory_.snapshot_on_demand = true;
  plan = RunAt(kT0);
  take = Find(plan, ActionKind::kTakeSnapshot);
  ASSERT_NE(take, nullptr);
  EXPECT_EQ(take->reason, "asked for through the API");
  EXPECT_FALSE(memory_.snapshot_on_demand);
}

TEST_F(ReconcileTest, NoSnapshotActionWhileOneRuns) {
  input_.observed.snapshots = {Snapshot("snap-err", "error", kT0 - 7h)};
  input_.snapshot_busy = true;
  memory_.snapshot_on_demand = true;
  const Plan plan = Run();
  EXPECT_TRUE(plan.actions.empty()) << plan.reason;
  EXPECT_TRUE(memory_.snapshot_on_demand);
}

TEST_F(ReconcileTest, PrunesBeyondKeepAndErrorsButNotWhatVolumesAreClonedFrom) {
  input_.observed.snapshots = {
      Snapshot("s1", "available", kT0 - 5h),  Snapshot("s2", "available", kT0 - 4h),
      Snapshot("s3", "available", kT0 - 3h),  Snapshot("s-err", "error", kT0 - 150min),
      Snapshot("s4", "available", kT0 - 2h),  Snapshot("s5", "available", kT0 - 1h),
      Snapshot("s-del", "deleting", kT0 - 9h)};
  Observe({R("r").Volume("creating", kT0 - 1min, "az1", "s1")});
  input_.desired = 1;
  const Plan plan = Run();
  EXPECT_EQ(AllKinds(plan),
            (std::vector<std::string>{"delete_snapshot s-err", "delete_snapshot s2"}));
}

TEST_F(ReconcileTest, SnapshotOfAVolumeStillBeingRequestedIsNotPruned) {
  // A kCreateVolume from snap-old is queued or running (busy, no volume listed yet) when a newer
  // snapshot appears: deleting snap-old now would fail the create and back its zone off.
  cluster_.snapshots.keep = 1;
  input_.observed.snapshots = {Snapshot("snap-old", "available", kT0 - 3h)};
  input_.desired = 1;
  Plan plan = Run();
  const Action* create = Find(plan, ActionKind::kCreateVolume);
  ASSERT_NE(create, nullptr);
  ASSERT_EQ(create->snapshot_id, "snap-old");
  const std::string name = create->replica;
  input_.busy = {name};
  input_.observed.snapshots.push_back(Snapshot("snap-new", "available", kT0 - 1min));
  plan = RunAt(kT0 + 30s);
  EXPECT_EQ(Find(plan, ActionKind::kDeleteSnapshot), nullptr) << plan.reason;
  // Once its volume is listed (and no longer being cloned), the old one goes.
  input_.busy.clear();
  Observe({R(name).Volume("available", kT0, "az1", "snap-old")});
  plan = RunAt(kT0 + 60s);
  const Action* prune = Find(plan, ActionKind::kDeleteSnapshot);
  ASSERT_NE(prune, nullptr);
  EXPECT_EQ(prune->snapshot_id, "snap-old");
}

TEST_F(ReconcileTest, NewestUsableSnapshotIsNeverPrunedEvenWithKeepZero) {
  cluster_.snapshots.keep = 0;
  input_.observed.snapshots = {Snapshot("s1", "available", kT0 - 3h),
                               Snapshot("s2", "available", kT0 - 2h)};
  EXPECT_EQ(AllKinds(Run()), std::vector<std::string>{"delete_snapshot s1"});
}

// ---------------------------------------------------------------------------------------------
// scale in

TEST_F(ReconcileTest, VictimIsTheOneWithFewestSessions) {
  Observe({R("a").Serving(5), R("b").Serving(0), R("c").Serving(2)});
  input_.desired = 2;
  const Plan plan = Run();
  EXPECT_EQ(AllKinds(plan), std::vector<std::string>{"drain b"});
  EXPECT_TRUE(memory_.replicas["b"].leaving);
  EXPECT_EQ(memory_.replicas["b"].drain_started, kT0);
  EXPECT_EQ(View(plan, "b")->phase, Phase::kDraining);
  EXPECT_EQ(plan.active, 3);
}

TEST_F(ReconcileTest, VictimOrderUnhealthyThenSessionsThenLagThenNewest) {
  struct Case {
    std::string what;
    std::vector<ObservedReplica> replicas;
    std::string victim;
  };
  const std::vector<Case> cases = {
      {"a volume without a server goes first",
       {R("a").Serving(0), R("b").Volume("available", kT0 - 1min), R("c").Serving(0)},
       "b"},
      {"unhealthy before fewer sessions",
       {R("a").Serving(0), R("b").Serving(9).Unreachable(), R("c").Serving(1)},
       "b"},
      {"lagging before fewer sessions",
       {R("a").Serving(0), R("b").Serving(9).Probe(40 << 20, 1), R("c").Serving(1)},
       "b"},
      {"most lag on equal sessions",
       {R("a").Serving(1).Probe(100, 0.1), R("b").Serving(1).Probe(5000, 0.1),
        R("c").Serving(1).Probe(0, 0)},
       "b"},
      {"newest on a tie",
       {R("a").Serving(1, kT0 - 3h), R("b").Serving(1, kT0 - 1h), R("c").Serving(1, kT0 - 2h)},
       "b"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    memory_ = ClusterMemory{};
    for (const auto& r : c.replicas) {
      // Seen before as serving: not a restart.
      memory_.replicas[r.name] =
          ReplicaMemory{.phase = Phase::kServing, .phase_since = kT0 - 1h, .first_seen = kT0 - 1h};
    }
    Observe(c.replicas);
    input_.desired = 2;
    const Plan plan = Run();
    for (const auto& r : c.replicas) {
      EXPECT_EQ(memory_.replicas[r.name].leaving, r.name == c.victim) << r.name;
    }
  }
}

TEST_F(ReconcileTest, CaughtUpReplicaOutsideHaproxyIsACheapVictimDeletedAtOnce) {
  cluster_.dns = config::Dns{.zone = "db.example."};
  Observe({R("a").Serving(4), R("fresh").Server("ACTIVE", kT0 - 5min).Probe(0, 0)});
  input_.desired = 1;
  const Plan plan = Run();
  EXPECT_EQ(AllKinds(plan),
            (std::vector<std::string>{"ensure_dns a", "delete_dns fresh", "delete_replica fresh"}));
  EXPECT_EQ(View(plan, "fresh")->phase, Phase::kDeleting);
}

TEST_F(ReconcileTest, DrainThenRemoveWhenIdleOrForcedAfterTheTimeout) {
  cluster_.dns = config::Dns{.zone = "db.example."};
  Observe({R("a").Serving(3), R("b").Serving(5)});
  input_.desired = 1;
  Plan plan = Run();
  ASSERT_EQ(AllKinds(plan), (std::vector<std::string>{"drain a", "ensure_dns b"}));

  Observe({R("a").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kDraining, 3).Probe(0, 0),
           R("b").Serving(5)});
  plan = RunAt(kT0 + 50s);
  EXPECT_TRUE(plan.actions.empty()) << plan.reason;
  EXPECT_EQ(View(plan, "a")->detail,
            "3 sessions left, 4m10s of drain budget (HAProxy 3, on the replica 0)");
  EXPECT_EQ(View(plan, "a")->phase, Phase::kDraining);
  EXPECT_EQ(View(plan, "a")->sessions, 3);

  // The timeout passed with sessions open: removed anyway, the count recorded.
  plan = RunAt(kT0 + 5min);
  EXPECT_EQ(View(plan, "a")->phase, Phase::kDrained);
  const Action* remove = Find(plan, ActionKind::kRemoveFromLb, "a");
  ASSERT_NE(remove, nullptr);
  EXPECT_TRUE(remove->force);
  EXPECT_EQ(remove->sessions, 3);

  Observe({R("a").Server("ACTIVE", kT0 - 1h).Probe(0, 0), R("b").Serving(5)});
  plan = RunAt(kT0 + 5min + 30s);
  EXPECT_EQ(AllKinds(plan), (std::vector<std::string>{"delete_dns a", "delete_replica a"}));
  EXPECT_EQ(View(plan, "a")->phase, Phase::kDeleting);
  EXPECT_EQ(plan.active, 1);
}

TEST_F(ReconcileTest, DrainedToZeroSessionsIsRemovedWhenIdle) {
  Observe({R("a").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kDraining, 0).Probe(0, 0)});
  memory_.replicas["a"] = ReplicaMemory{.phase = Phase::kDraining,
                                        .phase_since = kT0 - 1min,
                                        .first_seen = kT0 - 1h,
                                        .leaving = true,
                                        .drain_started = kT0 - 1min};
  input_.desired = 0;
  const Plan plan = Run();
  const Action* remove = Find(plan, ActionKind::kRemoveFromLb, "a");
  ASSERT_NE(remove, nullptr);
  EXPECT_FALSE(remove->force);
  EXPECT_EQ(remove->sessions, 0);
}

TEST_F(ReconcileTest, DeleteTimeoutIsReportedNotActedOn) {
  Observe({R("a").Server("ACTIVE", kT0 - 1h)});
  memory_.replicas["a"] = ReplicaMemory{.phase = Phase::kDeleting,
                                        .phase_since = kT0 - 12min,
                                        .first_seen = kT0 - 1h,
                                        .leaving = true};
  const Plan plan = Run();
  EXPECT_EQ(Kinds(plan, "a"), std::vector<std::string>{"delete_replica"});
  EXPECT_NE(View(plan, "a")->detail.find("for 12m, longer than delete_ 10m"), std::string::npos);
}

TEST_F(ReconcileTest, DonorAndForeignServersAreNeverTouchedNorCounted) {
  Observe({R("donor-1").Serving(0), R("hand-made").Serving(0),
           R("hand-made-2").Server("ERROR", kT0 - 1h), R("ours").Serving(6)});
  input_.observed.foreign_lb_servers = {"hand-made", "hand-made-2"};
  input_.desired = 0;
  const Plan plan = Run();
  EXPECT_EQ(plan.active, 1);
  EXPECT_EQ(AllKinds(plan), std::vector<std::string>{"drain ours"});
  EXPECT_TRUE(View(plan, "donor-1")->foreign);
  EXPECT_TRUE(View(plan, "hand-made")->foreign);
  EXPECT_TRUE(plan.failures.empty());
  EXPECT_FALSE(memory_.replicas["donor-1"].leaving);
}

// ---------------------------------------------------------------------------------------------
// restart, busy, paused, read errors

TEST_F(ReconcileTest, RestartAdoptsEveryHalfMadeReplica) {
  Observe({R("vol-only").Volume("available", kT0 - 20min, "az2"),
           R("building").Server("BUILD", kT0 - 11min),
           R("draining").Server("ACTIVE", kT0 - 2h).Lb(AdminState::kDraining, 2).Probe(0, 0),
           R("serving").Serving(4)});
  input_.desired = 2;
  const Plan plan = Run();
  // Active: vol-only (to be booted), serving. Building is failed (BUILD too long), draining left.
  EXPECT_EQ(plan.active, 2);
  EXPECT_EQ(View(plan, "building")->phase, Phase::kFailed);
  EXPECT_EQ(View(plan, "draining")->phase, Phase::kDraining);
  EXPECT_EQ(memory_.replicas["draining"].drain_started, kT0);
  // The draining one is healthy, but the count is met: it keeps going.
  EXPECT_EQ(AllKinds(plan),
            (std::vector<std::string>{"delete_replica building", "create_server vol-only"}));
}

TEST_F(ReconcileTest, RestartWithOrphanVolumeAboveDesiredDeletesIt) {
  Observe({R("vol-only").Volume("available", kT0 - 20min, "az2"), R("serving").Serving(0)});
  input_.desired = 1;
  const Plan plan = Run();
  EXPECT_EQ(AllKinds(plan), std::vector<std::string>{"delete_replica vol-only"});
}

TEST_F(ReconcileTest, BusyReplicasGetNothingButStillCount) {
  Observe({R("a").Volume("available", kT0 - 1min), R("b").Serving(0)});
  input_.busy = {"a"};
  input_.desired = 1;
  const Plan plan = Run();
  // a counts (active 2 > desired 1) but is busy, so b is the victim.
  EXPECT_EQ(AllKinds(plan), std::vector<std::string>{"drain b"});
  EXPECT_TRUE(View(plan, "a")->busy);
}

TEST_F(ReconcileTest, PausedNeitherGrowsNorShrinksButCleansUp) {
  Observe({R("a").Serving(0), R("b").Serving(0), R("bad").Server("ERROR", kT0 - 1h)});
  input_.paused = true;
  input_.desired = 1;
  Plan plan = Run();
  EXPECT_EQ(AllKinds(plan), std::vector<std::string>{"delete_replica bad"});
  EXPECT_TRUE(Blocks(plan, ActionKind::kDrain, "paused"));
  input_.desired = 4;
  plan = RunAt(kT0 + 30s);
  EXPECT_EQ(AllKinds(plan), std::vector<std::string>{"delete_replica bad"});
  EXPECT_TRUE(Blocks(plan, ActionKind::kCreateVolume, "paused"));
}

TEST_F(ReconcileTest, CloudReadErrorPlansNoReplicaAction) {
  Observe({R("a").Serving(0), R("b").Serving(0)});
  input_.desired = 2;
  Run();
  // The cloud cannot be read: only HAProxy's part is known.
  ObservedReplica a = R("a").Serving(0), b = R("b").Serving(0);
  a.server.reset();
  a.volume.reset();
  b.server.reset();
  b.volume.reset();
  Observe({a, b});
  input_.observed.cloud_error = Error{ErrorKind::kTransient, "nova 503"};
  input_.desired = 0;
  Plan plan = RunAt(kT0 + 30s);
  EXPECT_TRUE(plan.actions.empty()) << plan.reason;
  EXPECT_TRUE(Blocks(plan, ActionKind::kDrain, "the cloud could not be read"));
  EXPECT_EQ(View(plan, "a")->phase, Phase::kServing);
  EXPECT_FALSE(memory_.replicas["a"].leaving);
  input_.desired = 5;
  plan = RunAt(kT0 + 60s);
  EXPECT_TRUE(plan.actions.empty()) << plan.reason;
  EXPECT_TRUE(Blocks(plan, ActionKind::kCreateVolume, "nova 503"));
}

TEST_F(ReconcileTest, LbReadErrorPlansNoVictimAndNoHaproxyAction) {
  Observe({R("a").Serving(0), R("b").Serving(0).Probe(40 << 20, 1)});
  input_.desired = 2;
  Run();
  Observe({R("a").Server("ACTIVE", kT0 - 1h).Probe(0, 0),
           R("b").Server("ACTIVE", kT0 - 1h).Probe(40 << 20, 1), R("c").Server("ERROR", kT0 - 1h)});
  input_.observed.lb_error = Error{ErrorKind::kTransient, "dataplane 502"};
  input_.desired = 0;
  const Plan plan = RunAt(kT0 + 30s);
  // Phases as last seen; no drain, no maint, no admit; the failed one may be in HAProxy: kept.
  EXPECT_EQ(View(plan, "a")->phase, Phase::kServing);
  EXPECT_TRUE(plan.actions.empty()) << plan.reason;
  EXPECT_TRUE(Blocks(plan, ActionKind::kDrain, "dataplane 502"));
}

TEST_F(ReconcileTest, ReplicaOnlyInHaproxyIsTakenOutAtOnce) {
  Observe({R("ghost").Lb(AdminState::kReady, 2, false)});
  input_.desired = 0;
  Plan plan = Run();
  EXPECT_EQ(AllKinds(plan), std::vector<std::string>{"drain ghost"});
  EXPECT_NE(View(plan, "ghost")->detail.find("neither server nor volume"), std::string::npos);
  // Its sessions are dead: no drain budget to wait for.
  Observe({R("ghost").Lb(AdminState::kDraining, 2, false)});
  plan = RunAt(kT0 + 30s);
  const Action* remove = Find(plan, ActionKind::kRemoveFromLb, "ghost");
  ASSERT_NE(remove, nullptr);
  EXPECT_TRUE(remove->force);
  EXPECT_EQ(Kinds(plan, "ghost"), std::vector<std::string>{"remove_from_lb"});
}

TEST_F(ReconcileTest, DeadPostgresInHaproxyFailsAfterThePostgresStartBudget) {
  Observe({R("r").Server("ACTIVE", kT0 - 2h).Lb(AdminState::kReady, 0, false).Unreachable(),
           R("ok").Serving(1)});
  input_.desired = 2;
  Plan plan = Run();
  EXPECT_EQ(View(plan, "r")->phase, Phase::kAdmitting);
  plan = RunAt(kT0 + 4min);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kAdmitting);
  EXPECT_EQ(plan.active, 2);
  plan = RunAt(kT0 + 5min + 1s);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kFailed);
  EXPECT_EQ(plan.active, 1);
  EXPECT_EQ(Kinds(plan, "r"), (std::vector<std::string>{"maint", "remove_from_lb"}));
  EXPECT_NE(Find(plan, ActionKind::kCreateVolume), nullptr);  // replaced
}

TEST_F(ReconcileTest, NegativeDesiredCountsAsZero) {
  Observe({R("a").Serving(0)});
  input_.desired = -3;
  const Plan plan = Run();
  EXPECT_EQ(plan.desired, 0);
  EXPECT_EQ(AllKinds(plan), std::vector<std::string>{"drain a"});
}

TEST_F(ReconcileTest, ReplicasBeingCreatedCountInTheirZone) {
  input_.desired = 1;
  Run();  // c1-replica-aaa in az1
  input_.busy = {"c1-replica-aaa"};
  input_.desired = 2;
  input_.fresh_names = {"c1-replica-zzz"};
  const Plan plan = RunAt(kT0 + 10s);
  ASSERT_EQ(AllKinds(plan), std::vector<std::string>{"create_volume c1-replica-zzz snap-new"});
  EXPECT_EQ(plan.actions[0].zone, "az2");
  EXPECT_EQ(View(plan, "c1-replica-aaa")->zone, "az1");
}

TEST_F(ReconcileTest, TimestampsAtTheClocksLimitsDoNotOverflow) {
  input_.observed.snapshots = {Snapshot("ancient", "available", TimePoint::min()),
                               Snapshot("future", "error", TimePoint::max())};
  Observe({R("a").Volume("creating", TimePoint::min()), R("b").Server("BUILD", TimePoint::max())});
  input_.desired = 2;
  const Plan plan = Run();
  EXPECT_EQ(View(plan, "a")->phase, Phase::kFailed);
  EXPECT_EQ(View(plan, "b")->phase, Phase::kServerBuilding);
  EXPECT_NE(Find(plan, ActionKind::kTakeSnapshot), nullptr);
}

TEST_F(ReconcileTest, LbReadErrorStillBuildsButNeverDeletesWhatMayTakeTraffic) {
  input_.observed.lb_error = Error{ErrorKind::kTimeout, "dataplane timeout"};
  Observe({R("vol").Volume("available", kT0 - 1min, "az1"),
           R("leaving").Server("ACTIVE", kT0 - 1h).Probe(0, 0),
           // Its failure backs its zone off as it is found: in az3, so that az1's volume may still
           // get its server in this plan.
           R("orphan").Volume("error", kT0 - 1h, "az3")});
  memory_.replicas["leaving"] = ReplicaMemory{.phase = Phase::kDraining,
                                              .phase_since = kT0 - 1min,
                                              .first_seen = kT0 - 1h,
                                              .leaving = true};
  input_.desired = 2;
  const Plan plan = Run();
  EXPECT_EQ(AllKinds(plan), (std::vector<std::string>{"delete_replica orphan", "create_server vol",
                                                      "create_volume c1-replica-aaa snap-new"}));
  EXPECT_EQ(View(plan, "leaving")->phase, Phase::kDraining);
}

TEST_F(ReconcileTest, PausedDoesNotReadmitLeavingReplicas) {
  Observe({R("going").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kDraining, 2).Probe(0, 0)});
  memory_.replicas["going"] = ReplicaMemory{.phase = Phase::kDraining,
                                            .phase_since = kT0 - 1min,
                                            .first_seen = kT0 - 1h,
                                            .leaving = true,
                                            .drain_started = kT0 - 1min};
  input_.paused = true;
  input_.desired = 1;
  const Plan plan = Run();
  EXPECT_TRUE(plan.actions.empty()) << plan.reason;
  EXPECT_TRUE(memory_.replicas["going"].leaving);
}

TEST_F(ReconcileTest, MissingClusterDoesNotCrash) {
  input_.cluster = nullptr;
  const Plan plan = Run();
  EXPECT_TRUE(plan.actions.empty());
  EXPECT_FALSE(plan.reason.empty());
}

// ---------------------------------------------------------------------------------------------
// the gate: streaming, identity, timeline, not ahead; the budgets of bad states (issue #12)

class GateTest : public ReconcileTest {
 protected:
  void SetUp() override {
    ReconcileTest::SetUp();
    input_.observed.primary_host = "10.0.0.100";
    input_.observed.primary =
        PrimaryFacts{.lsn = 5000, .flush_lsn = 5000, .timeline = 1, .system_identifier = "sys-1"};
  }
  bool HasAction(const Plan& plan, ActionKind kind, const std::string& replica) {
    return Find(plan, kind, replica) != nullptr;
  }
};

TEST_F(GateTest, AStoppedReceiverOnAQuietPrimaryIsEjectedThenReplaced) {
  // Everything received is replayed and the primary is idle: lag 0, as the old gate read it.
  // The WAL receiver is gone, though: after max_lag_time it is lag, then the lagging budget.
  input_.desired = 1;
  Observe({R("r").Serving(0).Receiver("")});
  Plan plan = Run();
  EXPECT_EQ(View(plan, "r")->phase, Phase::kServing);
  EXPECT_NE(View(plan, "r")->detail.find("no WAL receiver running for 0s"), std::string::npos)
      << View(plan, "r")->detail;
  plan = RunAt(kT0 + 31s);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kLagging) << View(plan, "r")->detail;
  EXPECT_TRUE(HasAction(plan, ActionKind::kMaint, "r")) << plan.reason;
  Observe({R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Probe(0, 0).Receiver("")});
  plan = RunAt(kT0 + 31s + 4min);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kLagging);
  EXPECT_TRUE(plan.failures.empty());
  plan = RunAt(kT0 + 31s + 5min + 1s);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kFailed) << View(plan, "r")->detail;
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(ToString(plan.failures[0].reason), "lagging");
  EXPECT_NE(plan.failures[0].message.find("no WAL receiver running"), std::string::npos)
      << plan.failures[0].message;
  // Replaced: the failed one leaves, and the count is made up from a snapshot taken after the
  // failure (the one there is older, so a new one is asked for first).
  EXPECT_TRUE(HasAction(plan, ActionKind::kRemoveFromLb, "r"));
  EXPECT_TRUE(Find(plan, ActionKind::kTakeSnapshot) != nullptr) << plan.reason;
  EXPECT_TRUE(Blocks(plan, ActionKind::kCreateVolume, "waiting for a golden snapshot taken after"))
      << plan.reason;
}

TEST_F(GateTest, NotStreamingIsNeverAdmitted) {
  input_.desired = 1;
  for (const char* status : {"", "waiting", "starting", "restarting"}) {
    memory_ = ClusterMemory{};
    Observe({R("r").Server("ACTIVE", kT0 - 1min).Probe(0, 0).Receiver(status)});
    const Plan plan = Run();
    EXPECT_EQ(View(plan, "r")->phase, Phase::kCatchingUp) << status;
    EXPECT_FALSE(HasAction(plan, ActionKind::kAdmit, "r")) << status;
  }
  // A receiver that streams an old timeline is not following the primary either.
  memory_ = ClusterMemory{};
  Observe({R("r").Server("ACTIVE", kT0 - 1min).Probe(0, 0).Receiver("streaming", 0)});
  Plan plan = Run();
  EXPECT_FALSE(HasAction(plan, ActionKind::kAdmit, "r"));
  EXPECT_NE(View(plan, "r")->detail.find("timeline 0, the primary writes 1"), std::string::npos)
      << View(plan, "r")->detail;
  // Streaming but silent for longer than max_receiver_silence: a dead stream.
  memory_ = ClusterMemory{};
  R silent = R("r").Server("ACTIVE", kT0 - 1min).Probe(0, 0);
  ObservedReplica obs = silent;
  obs.probe->receiver_silence_seconds = 61;
  Observe({obs});
  plan = Run();
  EXPECT_FALSE(HasAction(plan, ActionKind::kAdmit, "r"));
  EXPECT_NE(View(plan, "r")->detail.find("silent"), std::string::npos) << View(plan, "r")->detail;
  // And the same replica streaming: admitted.
  memory_ = ClusterMemory{};
  Observe({R("r").Server("ACTIVE", kT0 - 1min).Probe(0, 0)});
  plan = Run();
  EXPECT_TRUE(HasAction(plan, ActionKind::kAdmit, "r")) << plan.reason;
}

TEST_F(GateTest, CatchingUpWithoutFollowingFailsAfterTheLaggingBudget) {
  // The WAL it needs is gone from the primary: its receiver never streams, its lag never falls.
  input_.desired = 1;
  Observe({R("r").Server("ACTIVE", kT0 - 1min).Probe(int64_t{1} << 30, 0).Receiver("waiting")});
  Run();
  Plan plan = RunAt(kT0 + 5min);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kCatchingUp);
  plan = RunAt(kT0 + 5min + 1s);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kFailed) << View(plan, "r")->detail;
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(ToString(plan.failures[0].reason), "lagging");
}

TEST_F(GateTest, ALaggingReplicaIsWaitedForWhileItsLagFalls) {
  input_.desired = 1;
  int64_t lag = int64_t{1} << 30;
  TimePoint now = kT0;
  for (int i = 0; i < 8; ++i, now += 4min, lag /= 2) {
    Observe({R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Probe(lag, 40)});
    const Plan plan = RunAt(now);
    ASSERT_EQ(View(plan, "r")->phase, Phase::kLagging) << i << View(plan, "r")->detail;
  }
  // The lag stops falling (the same figure, then more): the budget runs from the last low.
  const TimePoint last_low = now - 4min;
  Observe({R("r").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kMaint, 0).Probe(lag * 4, 40)});
  Plan plan = RunAt(last_low + 5min);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kLagging);
  plan = RunAt(last_low + 5min + 1s);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kFailed) << View(plan, "r")->detail;
  EXPECT_EQ(ToString(plan.failures.at(0).reason), "lagging");
}

TEST_F(GateTest, AReplicaAheadOfThePrimaryIsDivergedAndFailsAtOnce) {
  // After a failover: it replayed the old primary's tail, beyond what the new primary flushed.
  input_.desired = 1;
  input_.observed.primary_flush_after = 5200;
  Observe({R("r").Serving(2).Replay(6000), R("s").Serving(0).Replay(5100)});
  const Plan plan = Run();
  EXPECT_EQ(View(plan, "r")->phase, Phase::kFailed);
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(ToString(plan.failures[0].reason), "diverged");
  EXPECT_NE(plan.failures[0].message.find("beyond the primary's flush position 0/1450"),
            std::string::npos)
      << plan.failures[0].message;
  // Out of rotation at once: maint before it leaves HAProxy.
  EXPECT_EQ(Kinds(plan, "r"), (std::vector<std::string>{"maint", "remove_from_lb"}));
  EXPECT_EQ(View(plan, "s")->phase, Phase::kServing);
}

TEST_F(GateTest, AnotherClustersCopyOrAPromotedReplicaIsDiverged) {
  input_.desired = 2;
  R promoted = R("p").Serving(0);
  ObservedReplica obs = promoted;
  obs.probe->in_recovery = false;
  obs.probe->error = "not in recovery";
  Observe({R("x").Serving(0).SystemId("sys-2"), obs});
  const Plan plan = Run();
  EXPECT_EQ(View(plan, "x")->phase, Phase::kFailed);
  EXPECT_EQ(View(plan, "p")->phase, Phase::kFailed);
  EXPECT_NE(View(plan, "x")->detail.find("another cluster"), std::string::npos);
  EXPECT_NE(View(plan, "p")->detail.find("promoted"), std::string::npos);
}

TEST_F(GateTest, WithoutAKnownPrimaryNothingIsEjectedOrTimed) {
  // A failover under way: no primary to compare with, so replicas serve what they have.
  input_.desired = 1;
  input_.observed.primary.reset();
  input_.observed.primary_host.clear();
  Observe({R("r").Serving(1).Receiver("")});
  for (auto later : {0min, 1min, 10min}) {
    const Plan plan = RunAt(kT0 + later);
    EXPECT_EQ(View(plan, "r")->phase, Phase::kServing) << View(plan, "r")->detail;
    EXPECT_TRUE(plan.actions.empty() || !HasAction(plan, ActionKind::kMaint, "r"));
  }
  // The primary is back and the receiver is not: timed from now, not from before.
  input_.observed.primary =
      PrimaryFacts{.lsn = 5000, .flush_lsn = 5000, .timeline = 2, .system_identifier = "sys-1"};
  Plan plan = RunAt(kT0 + 10min + 20s);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kServing) << View(plan, "r")->detail;
  plan = RunAt(kT0 + 10min + 51s);
  EXPECT_EQ(View(plan, "r")->phase, Phase::kLagging) << View(plan, "r")->detail;
}

TEST_F(GateTest, DrainedMeansNoSessionOnTheReplicaItself) {
  // HAProxy's count is its current worker's: after a reload it reads 0 while an older worker
  // still carries a session to the replica.
  input_.desired = 1;
  Observe({R("a").Serving(0), R("b").Serving(4)});
  Plan plan = Run();
  ASSERT_TRUE(HasAction(plan, ActionKind::kDrain, "a")) << plan.reason;
  Observe({R("a").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kDraining, 0).Probe(0, 0).PgSessions(1),
           R("b").Serving(4)});
  plan = RunAt(kT0 + 10s);
  EXPECT_EQ(View(plan, "a")->phase, Phase::kDraining) << View(plan, "a")->detail;
  EXPECT_FALSE(HasAction(plan, ActionKind::kRemoveFromLb, "a"));
  EXPECT_NE(View(plan, "a")->detail.find("(HAProxy 0, on the replica 1)"), std::string::npos)
      << View(plan, "a")->detail;
  // Sessions it cannot count hold the drain too.
  Observe({R("a")
               .Server("ACTIVE", kT0 - 1h)
               .Lb(AdminState::kDraining, 0)
               .Probe(0, 0)
               .PgSessions(std::nullopt),
           R("b").Serving(4)});
  plan = RunAt(kT0 + 20s);
  EXPECT_EQ(View(plan, "a")->phase, Phase::kDraining) << View(plan, "a")->detail;
  // After the drain timeout it is removed anyway, and the session on the replica is counted.
  Observe({R("a").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kDraining, 0).Probe(0, 0).PgSessions(1),
           R("b").Serving(4)});
  plan = RunAt(kT0 + 5min + 1s);
  const Action* remove = Find(plan, ActionKind::kRemoveFromLb, "a");
  ASSERT_NE(remove, nullptr) << plan.reason;
  EXPECT_TRUE(remove->force);
  EXPECT_EQ(remove->sessions, 1);
  // A replica whose sessions are gone everywhere leaves at once.
  memory_ = ClusterMemory{};
  Observe({R("a").Server("ACTIVE", kT0 - 1h).Lb(AdminState::kDraining, 0).Probe(0, 0).PgSessions(0),
           R("b").Serving(4)});
  plan = Run();
  remove = Find(plan, ActionKind::kRemoveFromLb, "a");
  ASSERT_NE(remove, nullptr) << plan.reason;
  EXPECT_FALSE(remove->force);
}

TEST_F(GateTest, ReplacementsFailingTwiceForTheSameReasonBlockCreation) {
  input_.desired = 1;
  input_.observed.primary_flush_after = 5200;
  // 1: diverged. Its replacement waits for a snapshot taken after the failure, and one is
  // asked for.
  Observe({R("r").Serving(0).Replay(6000)});
  Plan plan = Run();
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_TRUE(Find(plan, ActionKind::kTakeSnapshot) != nullptr) << plan.reason;
  EXPECT_TRUE(plan.creation_blocked.empty());
  // The snapshot is there: the replacement is created from it.
  input_.observed.snapshots.push_back(Snapshot("snap-2", "available", kT0 + 1min));
  Observe({});
  memory_.replicas.erase("r");
  plan = RunAt(kT0 + 2min);
  ASSERT_NE(Find(plan, ActionKind::kCreateVolume), nullptr) << plan.reason;
  EXPECT_EQ(Find(plan, ActionKind::kCreateVolume)->snapshot_id, "snap-2");
  const std::string second = Find(plan, ActionKind::kCreateVolume)->replica;
  // 2: the replacement diverges too. Creation is blocked, with the reason and no snapshot
  // asked for: no churn.
  Observe({R(second).Serving(0, kT0 + 3min).Replay(6000)});
  plan = RunAt(kT0 + 5min);
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(plan.creation_blocked, "diverged");
  EXPECT_TRUE(
      Blocks(plan, ActionKind::kCreateVolume, "creation blocked: 2 replicas in a row failed"))
      << plan.reason;
  EXPECT_EQ(Find(plan, ActionKind::kTakeSnapshot), nullptr) << plan.reason;
  plan = RunAt(kT0 + 30min);
  EXPECT_EQ(Find(plan, ActionKind::kCreateVolume), nullptr);
  EXPECT_EQ(Find(plan, ActionKind::kTakeSnapshot), nullptr) << plan.reason;
  // A snapshot taken later (the schedule, or the operator) allows one more try.
  input_.observed.snapshots.push_back(Snapshot("snap-3", "available", kT0 + 31min));
  Observe({});
  memory_.replicas.erase(second);
  plan = RunAt(kT0 + 32min);
  ASSERT_NE(Find(plan, ActionKind::kCreateVolume), nullptr) << plan.reason;
  EXPECT_EQ(Find(plan, ActionKind::kCreateVolume)->snapshot_id, "snap-3");
  EXPECT_TRUE(plan.creation_blocked.empty());
}

TEST_F(GateTest, ASnapshotRequestStopsBeingPendingOnceItsSnapshotIsListed) {
  // The service asked for snap-new a minute ago and it is listed now: a replacement that needs a
  // fresher one gets its request at once, not after snapshot_create (30m).
  input_.desired = 1;
  memory_.snapshot_requested_at = kT0 - 1min;
  memory_.snapshot_ids_at_request = {"snap-old"};
  memory_.streak = FailureStreak{.reason = FailureReason::kLagging, .count = 1, .since = kT0 - 10s};
  input_.observed.snapshots = {Snapshot("snap-new", "available", kT0 - 50s)};
  Plan plan = Run();
  EXPECT_NE(Find(plan, ActionKind::kTakeSnapshot), nullptr) << plan.reason;
  // While the snapshot asked for is not listed yet, no second one is asked for.
  memory_.snapshot_requested_at = kT0 - 1min;
  memory_.snapshot_ids_at_request = {"snap-new"};
  plan = RunAt(kT0 + 2s);
  EXPECT_EQ(Find(plan, ActionKind::kTakeSnapshot), nullptr) << plan.reason;
  EXPECT_TRUE(Blocks(plan, ActionKind::kTakeSnapshot, "is not listed yet")) << plan.reason;
}

TEST_F(GateTest, ReplicasFailingTogetherCountOnce) {
  // A failover leaves several replicas diverged at once: one failure of the streak, not three.
  input_.desired = 3;
  input_.observed.primary_flush_after = 5200;
  Observe({R("a").Serving(0).Replay(6000), R("b").Serving(0).Replay(6000),
           R("c").Serving(0).Replay(6000)});
  const Plan plan = Run();
  EXPECT_EQ(plan.failures.size(), 3u);
  ASSERT_TRUE(memory_.streak);
  EXPECT_EQ(memory_.streak->count, 1);
  EXPECT_TRUE(plan.creation_blocked.empty());
}

}  // namespace
}  // namespace ra::autoscaler
