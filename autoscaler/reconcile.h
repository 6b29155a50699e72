#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/result.h"
#include "lb/load_balancer.h"
#include "openstack/cloud_provider.h"
#include "policies/engine.h"

/// The control loop's brain: plain structs for what was observed, one pure function that derives
/// each replica's phase and plans the next actions. No I/O, no clock reads, no randomness: the
/// loop passes `now` and fresh replica ids in. See DESIGN.md, "Principles".
namespace ra::autoscaler {

// ---------------------------------------------------------------------------------------------
// phases

/// Where a replica stands. Up: kVolumeCreating -> kServerBuilding -> kPostgresStarting ->
/// kCatchingUp -> kAdmitting -> kServing (kLagging while a serving replica's lag is above the
/// threshold: it is in maint). Down: kDraining -> kDrained -> kDeleting (removed from HAProxy,
/// DNS record deleted, server deleted, volume deleted). kFailed: cleaned up like kDeleting.
enum class Phase {
  kVolumeCreating,    ///< the data volume is being cloned from the golden snapshot
  kServerBuilding,    ///< the volume is available and the server is to be created or is BUILD
  kPostgresStarting,  ///< the server is ACTIVE; PostgreSQL does not answer PQping yet
  kCatchingUp,        ///< PostgreSQL answers; replay lag is above the threshold
  kAdmitting,         ///< caught up; being added to HAProxy (or in HAProxy, not yet UP/ready)
  kServing,           ///< ready and UP in HAProxy, lag within the threshold
  kLagging,           ///< was serving; lag above the threshold, so it is (to be) in maint
  kDraining,          ///< leaving: drain in HAProxy, sessions still open
  kDrained,           ///< leaving: no session left, or the drain timeout passed; to leave HAProxy
  kDeleting,          ///< leaving: out of HAProxy; DNS record, server, volume being deleted
  kFailed,            ///< broken (ERROR, volume error, phase timeout); being cleaned up
};

std::string_view ToString(Phase phase);  ///< "volume_creating", "serving", ...

/// Counted towards the cluster's current replicas (everything up, serving or lagging).
bool IsActive(Phase phase);

// ---------------------------------------------------------------------------------------------
// what was observed

/// One PostgreSQL probe of a replica (see ReplicaProbe): facts only; DerivePhases judges them
/// against the primary's (PrimaryFacts) and the thresholds.
struct ProbeResult {
  bool reachable = false;  ///< PQping said PQPING_OK
  bool in_recovery = false;
  std::optional<int64_t> lag_bytes{};   ///< primary's current LSN - replica's replay LSN, >= 0
  std::optional<double> lag_seconds{};  ///< now() - pg_last_xact_replay_timestamp(), or 0 when
                                        ///< everything received is replayed (see ReplicaProbe)
  std::string error{};                  ///< why it is not reachable or the lag is unknown
  std::optional<int64_t> replay_lsn{};  ///< pg_last_wal_replay_lsn()
  std::string system_identifier{};      ///< pg_control_system(); "" when not read
  /// pg_stat_wal_receiver: its status ("streaming", "waiting", ...; "" when no WAL receiver
  /// runs), the timeline it receives, seconds since its last message from the upstream, and
  /// the upstream as host:port.
  std::string receiver_status{};
  std::optional<int64_t> receiver_timeline{};
  std::optional<double> receiver_silence_seconds{};
  std::string upstream{};
  /// Client sessions on the replica itself (pg_stat_activity's client backends, the probe's own
  /// and the service's other connections excluded); unknown when not read.
  std::optional<int64_t> client_sessions{};
};

/// The primary as the cycle read it, before the replicas were probed.
struct PrimaryFacts {
  int64_t lsn = 0;                  ///< pg_current_wal_lsn()
  int64_t flush_lsn = 0;            ///< pg_current_wal_flush_lsn(): what a standby can have
  int64_t timeline = 0;             ///< the timeline it writes (from pg_walfile_name)
  std::string system_identifier{};  ///< pg_control_system()
};

/// A replica in one of the cluster's balancers, when it has several (config `load_balancer:` as a
/// list): what that balancer alone says of it.
struct BalancerView {
  std::string balancer{};              ///< the balancer's configured name
  bool reachable = false;              ///< it answered this cycle; if not, `member` is unknown
  std::optional<lb::Member> member{};  ///< absent: not a member there (or not reachable)
};

/// One replica as every source showed it this cycle. Each part may be missing.
struct ObservedReplica {
  std::string name{};
  std::optional<openstack::ServerFacts> server{};
  std::optional<openstack::VolumeFacts> volume{};
  /// The backend's member of that name; with several balancers, their views merged
  /// (lb::MultiLoadBalancer::Merge: serving when it serves in the quorum, sessions summed).
  std::optional<lb::Member> lb{};
  /// With several balancers: one entry per configured balancer, in their order. Empty with one.
  std::vector<BalancerView> balancers{};
  std::optional<ProbeResult> probe{};  ///< absent when not probed (no ACTIVE server, address)
};

/// Everything the loop saw of one cluster in one cycle. A source that could not be read is an
/// error here, and Reconcile plans nothing that depends on it.
struct Observed {
  std::vector<ObservedReplica> replicas{};  ///< the service's own (tagged) replicas only
  std::optional<Error> cloud_error{};       ///< ListReplicas failed
  std::optional<Error> lb_error{};          ///< ListMembers failed (every balancer's)
  /// With several balancers: those that did not answer this cycle (lb_error is set only when
  /// none did). Nothing is admitted into them, and no replica they may route to is deleted.
  std::vector<std::string> lb_unreachable{};
  /// Names that are not ours: members of the backend (the donor, hand-made ones) and listed
  /// servers that are the donor or stand at the primary's or donor's address. Never touched.
  std::vector<std::string> foreign_lb_servers{};
  std::vector<openstack::SnapshotFacts> snapshots{};  ///< golden snapshots, oldest first
  std::optional<Error> snapshots_error{};
  std::string donor_volume_id{};     ///< resolved donor data volume; "" when unknown
  std::vector<std::string> zones{};  ///< configured zones, or the cloud's when none configured
  std::string primary_host{};        ///< current primary (static or Patroni); "" when unknown
  int primary_port = 5432;
  std::optional<PrimaryFacts> primary{};  ///< read before the probes; absent when not read
  /// The primary's flush LSN read again after the probes, when a replica replayed past the
  /// first reading: a replica beyond this holds WAL the primary does not have (diverged).
  std::optional<int64_t> primary_flush_after{};
};

// ---------------------------------------------------------------------------------------------
// what the loop remembers (in memory only: lost on restart, and everything still works)

/// Why a replica failed; docs/metrics.md's provisioning failure `reason` label.
enum class FailureReason {
  kQuota,        ///< the cloud refused for quota
  kCapacity,     ///< no valid host / insufficient capacity
  kVolumeError,  ///< the data volume went to error
  kServerError,  ///< the server went to ERROR for another reason
  kTimeout,      ///< longer in a phase than its budget
  kCatchUp,      ///< did not catch up on WAL within catch_up
  kLagging,      ///< lagging or not following the primary, its lag not falling, for `lagging`
  kDiverged,     ///< holds WAL the primary does not have, or is another cluster's copy
  kOther,
};

std::string_view ToString(FailureReason reason);  ///< "quota", "capacity", "volume_error", ...

/// The error kind a zone's backoff starts from for `reason`: quota and capacity back off long.
ErrorKind BackoffKind(FailureReason reason);

/// What the loop knows about a replica beyond what the world shows.
struct ReplicaMemory {
  Phase phase = Phase::kVolumeCreating;  ///< last derived phase
  TimePoint phase_since{};               ///< when it entered `phase` (or was first seen in it)
  TimePoint first_seen{};
  bool leaving = false;  ///< chosen to go: only taken down (re-admitted if needed after all)
  /// The operator asked for it to be replaced (Control::ReplaceReplica): leaving, and never
  /// re-admitted, whatever the count needs.
  bool replace = false;
  std::optional<TimePoint> drain_started{};
  /// Non-empty once failed: why, in one sentence. Set only by RecordFailure.
  std::string failure{};
  /// Its kind once failed (docs/metrics.md's failure `reason`).
  FailureReason failure_reason = FailureReason::kOther;
  std::string zone{};
  std::optional<TimePoint> serving_since{};
  /// Set by the loop when a kEnsureDns failed: the next plan asks for the record again (it is
  /// otherwise planned only when the replica starts serving).
  bool dns_retry = false;
  /// The snapshot a kCreateVolume of ours cloned it from: kept while the volume is not listed.
  std::string snapshot_id{};
  /// Since when its PostgreSQL has not answered while in maint (cleared by any answer): the
  /// postgres_start budget of a maint replica counts from here, not from when it started
  /// lagging, which has no budget.
  std::optional<TimePoint> unanswered_since{};
  /// Since when its WAL receiver has not been streaming from the primary's timeline (cleared
  /// when it is, and while the primary is unknown): beyond postgres.max_lag_time it is lag.
  std::optional<TimePoint> not_following_since{};
  /// While catching up or lagging: the lowest lag in bytes seen, and when it was reached. The
  /// `lagging` budget counts from the last new low.
  std::optional<int64_t> lag_low{};
  TimePoint lag_low_at{};
  /// Time to serve (autoscaler/time_to_serve.h): this process (this term) has seen it not
  /// serving, so the cycle that sees it serving is the first to.
  bool seen_not_serving = false;
};

/// Replicas that failed one after another for the same PostgreSQL reason (catch_up, lagging,
/// diverged): each replacement then needs a golden snapshot taken after the last failure, and
/// from the second failure on none is asked for automatically (creation is blocked until one
/// appears: on schedule, or POST /v1/clusters/{name}/snapshot).
struct FailureStreak {
  FailureReason reason = FailureReason::kOther;
  int count = 0;      ///< 1: the first failure; 2 and more: its replacements failed too
  TimePoint since{};  ///< the last counted failure
  std::string message{};
};

/// Failures of one availability zone and flavor: new replicas skip it until `until`.
struct ZoneBackoff {
  int failures = 0;  ///< consecutive
  TimePoint until{};
  std::string reason{};
};

struct ClusterMemory {
  std::map<std::string, ReplicaMemory> replicas{};  ///< by replica name
  std::map<std::string, ZoneBackoff> backoff{};     ///< by "zone/flavor"
  policies::History policy_history{};
  /// The last SnapshotVolume we issued, while no snapshot is listed that was not listed then
  /// (snapshot_ids_at_request): a request is pending until its snapshot shows.
  std::optional<TimePoint> snapshot_requested_at{};
  std::set<std::string> snapshot_ids_at_request{};
  bool snapshot_on_demand = false;        ///< the API asked for one now
  std::optional<FailureStreak> streak{};  ///< see FailureStreak
};

/// The backoff after `failures` consecutive failures of a zone: 30 s, doubled each time, at most
/// 10 minutes; quota and capacity errors (kQuota, kCapacity) start at 2 minutes.
Duration BackoffFor(int failures, ErrorKind kind);

/// Records the failure of provisioning in `zone` with `flavor` at `now` into `memory.backoff`.
void RecordZoneFailure(ClusterMemory& memory, const std::string& zone, const std::string& flavor,
                       const Error& error, TimePoint now);

/// A success clears the zone's backoff.
void RecordZoneSuccess(ClusterMemory& memory, const std::string& zone, const std::string& flavor);

/// The one place a replica's failure is recorded: marks `replica` failed (its memory is created
/// when there is none) and backs its zone and `flavor` off, so the plan made from this memory
/// cleans it up and places its replacement elsewhere. A replica already failed is left as it
/// was (its first failure is the one that counts).
void RecordFailure(ClusterMemory& memory, const std::string& replica, const std::string& zone,
                   const std::string& flavor, FailureReason reason, const std::string& message,
                   TimePoint now);

// ---------------------------------------------------------------------------------------------
// the plan

enum class ActionKind {
  kCreateVolume,    ///< CloudProvider::CreateReplicaVolume(replica, zone, snapshot_id)
  kCreateServer,    ///< CloudProvider::CreateReplicaServer(replica, volume_id, zone)
  kAdmit,           ///< LoadBalancer::EnsureMember(replica, address): add, or re-admit from maint
  kMaint,           ///< LoadBalancer::Maint(replica): lag above the threshold
  kDrain,           ///< LoadBalancer::Drain(replica): chosen to leave
  kRemoveFromLb,    ///< LoadBalancer::Remove(replica, force ? kEvenWithSessions : kWhenIdle)
  kEnsureDns,       ///< an A record for the replica's address (when DNS is configured)
  kDeleteDns,       ///< its A record removed
  kDeleteReplica,   ///< one step of CloudProvider::DeleteReplica (server, then volume)
  kTakeSnapshot,    ///< CloudProvider::SnapshotVolume(donor volume)
  kDeleteSnapshot,  ///< CloudProvider::DeleteSnapshot(snapshot_id)
};

std::string_view ToString(ActionKind kind);  ///< "create_volume", ...

struct Action {
  ActionKind kind = ActionKind::kCreateVolume;
  std::string replica{};      ///< empty for snapshot actions
  std::string zone{};         ///< kCreateVolume/kCreateServer: "" lets the cloud choose
  std::string snapshot_id{};  ///< kCreateVolume, kDeleteSnapshot
  std::string volume_id{};    ///< kCreateServer, kTakeSnapshot
  std::string address{};      ///< kAdmit, kEnsureDns
  bool force = false;         ///< kRemoveFromLb: the drain timeout passed
  int64_t sessions = 0;       ///< kRemoveFromLb with force: sessions cut short
  std::string reason{};       ///< one sentence: why this action, with the figures
};

/// Something Reconcile would do but may not now, and why ("no usable snapshot: the newest is
/// 30h old, max_age 24h", "zone az1 backed off until 10:05 after quota exceeded").
struct Blocked {
  ActionKind kind = ActionKind::kCreateVolume;
  std::string replica{};
  std::string reason{};
};

/// Each replica's phase as Reconcile derived it, for status, metrics and the next cycle.
struct ReplicaView {
  std::string name{};
  Phase phase = Phase::kVolumeCreating;
  TimePoint phase_since{};
  std::string zone{};
  std::string address{};
  std::optional<int64_t> lag_bytes{};
  std::optional<double> lag_seconds{};
  int64_t sessions = 0;
  TimePoint created{};   ///< the server's (or volume's) creation time
  std::string detail{};  ///< e.g. "server BUILD", "PQping: no response", "3 sessions left"
  bool leaving = false;  ///< chosen to go (kDraining, kDrained, kDeleting)
  bool busy = false;     ///< an action of the actuator is still running for it
  bool foreign = false;  ///< the donor, or a name HAProxy holds for someone else: never touched
  /// With several balancers: each one's view of it (empty with one balancer).
  std::vector<BalancerView> balancers{};
  /// Serves in some of the balancers but not in all of them.
  bool partial = false;
};

/// A replica that failed in this cycle (it was not failed before): for the journal and the
/// provisioning_failures_total metric. Its zone's backoff is already in the memory
/// (RecordFailure), so the same cycle's plan places its replacement elsewhere.
struct FailureEvent {
  std::string replica{};
  std::string zone{};  ///< "" when the cloud chose and did not say
  FailureReason reason = FailureReason::kOther;
  std::string message{};  ///< one sentence with the figures
};

struct Plan {
  std::vector<Action> actions{};
  std::vector<Blocked> blocked{};
  std::vector<ReplicaView> replicas{};   ///< every replica, by name, as left by this plan
  std::vector<FailureEvent> failures{};  ///< replicas that failed in this cycle
  int desired = 0;
  /// The FailureStreak's reason ("catch_up", "lagging", "diverged") while it blocks creation
  /// (two failures in a row or more); "" otherwise.
  std::string creation_blocked{};
  /// Replicas counted as current (IsActive, neither foreign) when the plan was made: before this
  /// plan's victims left and its new replicas were requested.
  int active = 0;
  /// One sentence for the cycle's log line: "desired 3, active 1 (1 serving): create 2 in
  /// az2, az3 from snapshot SNAPSHOT_ID; blocked: ..." (": nothing to do" when nothing is).
  std::string reason{};
};

// ---------------------------------------------------------------------------------------------
// step 1: the cluster as it is

/// The admission gate applied to one probe.
struct Gate {
  bool reachable = false;
  /// Holds WAL the primary does not have (replayed beyond its flush position), is not in
  /// recovery any more, or is a copy of another cluster: fails at once, to be rebuilt.
  bool diverged = false;
  bool caught_up = false;    ///< both lags known and within the thresholds
  bool lag_problem = false;  ///< a known lag above a threshold
  std::string why{};         ///< "lag 40 MiB > 16 MiB", "PQping: no response", ...
};

/// One replica as DerivePhases found it (and PlanActions leaves it).
struct ReplicaState {
  std::string name{};
  const ObservedReplica* obs = nullptr;  ///< null: remembered (e.g. being created), not listed
  ReplicaMemory* mem = nullptr;          ///< its entry in the ClusterMemory given to DerivePhases
  bool first_sight = false;  ///< no memory of it: a restart, or made by someone before us
  Phase previous = Phase::kVolumeCreating;  ///< the phase remembered from the last cycle
  bool busy = false;
  bool foreign = false;

  Phase phase = Phase::kVolumeCreating;
  std::string detail{};
  Gate gate{};
  bool in_lb = false;      ///< the load balancer was read and lists it
  bool unhealthy = false;  ///< for victims: goes first
  bool no_server = false;  ///< a volume only: the cheapest victim
  std::string zone{};
  std::string address{};
  int64_t sessions = 0;
  TimePoint created{};
  bool drain_timed_out = false;
};

/// What DerivePhases needs besides the observation and the memory.
struct DeriveInput {
  const config::Cluster* cluster = nullptr;
  /// Replicas whose action is still running in the actuator: derived, but nothing is planned.
  std::set<std::string> busy{};
  TimePoint now{};
};

/// The cluster as it is this cycle: every replica's phase, and the count the policies read.
/// Holds pointers into the Observed and the ClusterMemory it was derived from: both must outlive
/// it, and the memory's replica entries must not be erased while it is used.
struct ClusterView {
  const config::Cluster* cluster = nullptr;
  const Observed* observed = nullptr;
  TimePoint now{};
  std::map<std::string, ReplicaState> replicas{};  ///< by name, foreign ones included
  /// Replicas counted as current (IsActive, not foreign): the policies' current count.
  int active = 0;
  bool cloud_known = true;               ///< the cloud's replica list was read
  bool lb_known = true;                  ///< the load balancer was read
  std::vector<FailureEvent> failures{};  ///< replicas that failed in this derivation
};

/// Step 1, pure: each replica's phase from what was observed and what is remembered. Updates
/// `memory` only where the world forces it: failures (RecordFailure, so the zone is backed off
/// before anything is planned), leaving marks found after a restart, forgotten replicas the
/// cloud no longer shows. Phases are written to the memory by PlanActions.
ClusterView DerivePhases(const Observed& observed, ClusterMemory& memory, const DeriveInput& input);

// ---------------------------------------------------------------------------------------------
// step 2: the plan

/// How new replicas choose a zone (config placement). See autoscaler/placement.h.
struct PlacementFacts {
  bool prefer_latency = false;  ///< prefer zones near the primary; otherwise spread evenly
  Duration max_latency = std::chrono::milliseconds(20);
  std::map<std::string, double> latency_seconds{};  ///< per zone: median round trip measured
};

/// What PlanActions needs besides the view: the decision and the facts the loop gathered.
struct PlanInput {
  int desired = 0;             ///< the policies' (or the override's) desired count
  bool paused = false;         ///< automatic scaling paused: keep the count, still heal and finish
  bool snapshot_busy = false;  ///< a snapshot action is still running
  /// Names for new replicas, already unique (the loop makes them from random ids); PlanActions
  /// uses them in order and never makes names itself.
  std::vector<std::string> fresh_names{};
  /// Why nothing may be created now, when something forbids it (the primary is unknown, the
  /// template's ids could not be resolved): creations are then Blocked with this reason and
  /// nothing new is started. Empty: creating is possible.
  std::string cannot_create{};
  PlacementFacts placement{};
};

/// Step 2, pure: the actions that bring the cluster from `view` towards `input.desired`.
/// Updates `view` (victims leave, re-admitted ones come back, new replicas appear) and `memory`
/// (phases and their start times, leaving marks, drain starts, new replicas, snapshot request).
Plan PlanActions(ClusterView& view, const PlanInput& input, ClusterMemory& memory);

/// How often each step has run in this process, for tests that check a cycle runs each once.
struct StepCounts {
  int64_t derive = 0;
  int64_t plan = 0;
};
StepCounts PlannerStepCounts();

// ---------------------------------------------------------------------------------------------
// both steps at once (tests and tools)

/// What Reconcile needs: the inputs of both steps together.
struct ReconcileInput {
  const config::Cluster* cluster = nullptr;
  int desired = 0;
  bool paused = false;
  Observed observed{};
  std::set<std::string> busy{};
  bool snapshot_busy = false;
  std::vector<std::string> fresh_names{};
  std::string cannot_create{};
  PlacementFacts placement{};
  TimePoint now{};
};

/// DerivePhases then PlanActions; what the loop does in one cycle, minus the I/O. Pure: reads
/// `input`, updates `memory` (phases and their start times, leaving/failed marks, drain start) and
/// returns the plan. Rules, each tested in tests/unit/reconcile_test.cc:
///  - phases from what was observed (server status, volume status, probe, HAProxy state); a
///    replica longer in a phase than its timeout (config::PhaseTimeouts) fails; a server in
///    ERROR or a volume in error fails; failed replicas leave HAProxy and are deleted;
///  - a replica is admitted (kAdmit) only when PQping succeeded and both lags are within
///    postgres.max_lag_bytes / max_lag_time; a serving one above them goes to maint and is
///    re-admitted once within them;
///  - active < desired: re-admit leaving-but-healthy replicas first, then finish half-made ones,
///    then create new ones spread over zones (fewest active first, zones in backoff skipped,
///    blocked with the reason when every zone is), from the newest available snapshot not older
///    than snapshots.max_age (blocked with the reason otherwise);
///  - active > desired (never while paused, never on a cloud or HAProxy read error): victims
///    are failed or unhealthy first, then fewest sessions, then most lag, never a foreign one;
///    a victim in HAProxy is drained, otherwise deleted at once;
///  - a draining replica leaves HAProxy when its sessions reach 0, or with force (and the
///    session count) when drain timeout passed; then DNS, then the server and volume;
///  - a volume without a server that is not needed is deleted (orphans);
///  - snapshots: one taken when the newest is older than snapshots.interval (or on demand) and
///    none is being created; available ones beyond `keep` newest, and error ones, deleted;
///  - nothing at all is planned for a replica in `busy`.
/// Decisions worth knowing (each tested):
///  - restart: with no memory of a replica, one in HAProxy in drain is taken as leaving, its
///    drain timer starting now; one in maint is lagging (re-admitted once caught up: maint is
///    how lag ejects, and a probe failing as the service restarts must not cost a replica), and
///    fails after postgres_start if its PostgreSQL never answers; a caught-up one that is not in
///    HAProxy is kAdmitting (active: admitted, or a cheap victim);
///  - a replica's actions come in the order they must run; traffic leaves first: a replica still
///    in HAProxy gets only HAProxy actions (kMaint/kDrain before kRemoveFromLb, as Remove refuses
///    a ready server), and kDeleteDns/kDeleteReplica come in a later cycle, once HAProxy no
///    longer lists it;
///  - paused: no victims, no new replicas, no re-admission of leaving ones; replicas under way
///    finish, failed ones are cleaned up but not replaced (each shown as Blocked);
///  - cloud_error: no replica action at all and no snapshot deletion (phases are held as
///    remembered, timeouts are not applied); lb_error: no HAProxy action, no victim, no
///    re-admission, no deletion of a replica that has a server; volumes and servers of new
///    replicas may still be created;
///  - victims, in order: a volume without a server, then unhealthy ones (not serving yet,
///    lagging, PQping failing, server not ACTIVE, DOWN in HAProxy), then fewest sessions, most
///    replay bytes behind, newest; a replica in HAProxy whose PostgreSQL has not answered for
///    postgres_start fails, so it does not count as capacity forever;
///  - kEnsureDns when a replica is first seen serving (after a restart too); kAdmit is not
///    repeated for one that is ready in HAProxy and waits for its health check;
///  - a negative desired count is read as 0;
///  - the Controller records phases' durations and failures from `memory` and Plan::failures;
///    a kCreateVolume adds the new replica to `memory` (phase kVolumeCreating), and a remembered
///    replica the cloud does not show is forgotten unless it is `busy`.
Plan Reconcile(const ReconcileInput& input, ClusterMemory& memory);

}  // namespace ra::autoscaler
