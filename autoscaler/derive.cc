#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <limits>

#include "autoscaler/planner_internal.h"
#include "autoscaler/reconcile.h"
#include "core/duration.h"
#include "openstack/errors.h"

// Step 1 of a cycle: every replica's phase from what the cloud, the load balancer and PostgreSQL
// showed, and what the loop remembers.
namespace ra::autoscaler {

namespace planner {

std::atomic<int64_t> derive_calls{0};

/// How long `item` has been in `phase` (now, when it just entered it).
TimePoint PhaseStart(const ReplicaState& item, Phase phase, TimePoint now) {
  if (!item.first_sight && item.previous == phase) return item.mem->phase_since;
  return now;
}

void DeriveLeaving(ReplicaState& item, const ClusterView& view) {
  ReplicaMemory& mem = *item.mem;
  const config::PhaseTimeouts& t = view.cluster->timeouts;
  if (!view.lb_known || !view.cloud_known) {
    const bool known_leaving_phase =
        !item.first_sight && (mem.phase == Phase::kDraining || mem.phase == Phase::kDrained ||
                              mem.phase == Phase::kDeleting);
    item.phase = known_leaving_phase ? mem.phase : Phase::kDraining;
    item.detail = view.lb_known ? "leaving; the cloud could not be read"
                                : "leaving; HAProxy could not be read";
    return;
  }
  if (item.in_lb) {
    const lb::Member& lb = *item.obs->lb;
    if (!mem.drain_started) mem.drain_started = view.now;
    const Duration drained_for = Elapsed(*mem.drain_started, view.now);
    item.drain_timed_out = drained_for >= t.drain;
    // HAProxy's count is its current worker's only: after a reload, sessions an older worker
    // still carries show only on the replica itself. Its PostgreSQL, when it answers, must say
    // zero too; one that answers without saying holds the drain until the timeout.
    const auto& probe = item.obs->probe;
    int64_t sessions = lb.sessions;
    std::string unknown;
    if (probe && probe->reachable) {
      if (probe->client_sessions) {
        sessions = std::max(sessions, *probe->client_sessions);
      } else {
        unknown = probe->error.empty() ? std::string("not read") : probe->error;
      }
    }
    item.sessions = sessions;
    if (lb.admin == lb::AdminState::kReady) {
      item.phase = Phase::kDraining;
      item.detail = fmt::format("leaving; {} sessions, to be drained", sessions);
    } else if ((sessions > 0 || !unknown.empty()) && !item.drain_timed_out) {
      item.phase = Phase::kDraining;
      item.detail =
          !unknown.empty()
              ? fmt::format("sessions on the replica unknown ({}), {} of drain budget", unknown,
                            HumanDuration(t.drain - drained_for))
              : fmt::format(
                    "{} session{} left, {} of drain budget (HAProxy {}, on the "
                    "replica {})",
                    sessions, sessions == 1 ? "" : "s", HumanDuration(t.drain - drained_for),
                    lb.sessions,
                    probe && probe->client_sessions ? std::to_string(*probe->client_sessions)
                                                    : std::string("not probed"));
    } else {
      item.phase = Phase::kDrained;
      item.detail = sessions > 0 || !unknown.empty()
                        ? fmt::format("drain timeout {} passed with {} sessions open",
                                      HumanDuration(t.drain), sessions)
                        : "drained: no session left";
    }
    return;
  }
  item.phase = Phase::kDeleting;
  std::vector<std::string> left;
  if (item.obs->server) left.push_back("server " + item.obs->server->status);
  if (item.obs->volume) left.push_back("volume " + item.obs->volume->status);
  item.detail = left.empty() ? "deleting" : fmt::format("deleting: {}", fmt::join(left, ", "));
  const TimePoint since = PhaseStart(item, Phase::kDeleting, view.now);
  const Duration took = Elapsed(since, view.now);
  if (took > t.delete_) {
    item.detail += fmt::format(" (for {}, longer than delete_ {})", HumanDuration(took),
                               HumanDuration(t.delete_));
  }
}

void MarkLeaving(ReplicaState& item) {
  item.mem->leaving = true;
  item.mem->serving_since.reset();
}

}  // namespace planner

namespace {

using namespace std::chrono_literals;
using namespace planner;

bool TooLong(TimePoint now, TimePoint since, Duration budget) {
  return Elapsed(since, now) > budget;
}

std::string Age(TimePoint now, TimePoint since) { return HumanDuration(Elapsed(since, now)); }

std::string Lsn(int64_t lsn) {
  return fmt::format("{:X}/{:X}", static_cast<uint64_t>(lsn) >> 32, lsn & 0xffffffff);
}

/// Why a replica is no copy of the primary at all, or "" when nothing says so.
std::string DivergedWhy(const ProbeResult& probe, const Observed& observed) {
  if (!observed.primary) return "";
  const PrimaryFacts& primary = *observed.primary;
  if (!probe.system_identifier.empty() && !primary.system_identifier.empty() &&
      probe.system_identifier != primary.system_identifier) {
    return fmt::format("system identifier {} is not the primary's {}: a copy of another cluster",
                       probe.system_identifier, primary.system_identifier);
  }
  if (!probe.in_recovery && !probe.system_identifier.empty()) {
    return "not in recovery: promoted, it no longer follows the primary";
  }
  if (probe.replay_lsn && observed.primary_flush_after &&
      *probe.replay_lsn > *observed.primary_flush_after) {
    return fmt::format(
        "replayed to {}, beyond the primary's flush position {} on timeline {}: "
        "it holds WAL the primary does not have",
        Lsn(*probe.replay_lsn), Lsn(*observed.primary_flush_after), primary.timeline);
  }
  return "";
}

/// "" when the WAL receiver streams the primary's timeline and heard from it lately; otherwise
/// what it does instead.
std::string NotFollowingWhy(const ProbeResult& probe, const Observed& observed,
                            const config::PostgresProbe& pg) {
  if (probe.receiver_status.empty()) return "no WAL receiver running";
  if (probe.receiver_status != "streaming") {
    return fmt::format("WAL receiver {}", probe.receiver_status);
  }
  const double max_silence = Seconds(pg.max_receiver_silence);
  if (!probe.receiver_silence_seconds) return "WAL receiver never heard from its upstream";
  if (*probe.receiver_silence_seconds > max_silence) {
    return fmt::format("WAL receiver silent for {} (max_receiver_silence {})",
                       HumanSeconds(*probe.receiver_silence_seconds),
                       HumanDuration(pg.max_receiver_silence));
  }
  if (probe.receiver_timeline && *probe.receiver_timeline != observed.primary->timeline) {
    return fmt::format("WAL receiver on timeline {}, the primary writes {}",
                       *probe.receiver_timeline, observed.primary->timeline);
  }
  return "";
}

/// The gate: what a probe says about admitting (or keeping) a replica. Updates the replica's
/// not_following_since, the one fact a single probe cannot tell: for how long.
Gate Assess(const std::optional<ProbeResult>& probe, const Observed& observed,
            const config::PostgresProbe& pg, ReplicaMemory& mem, TimePoint now) {
  Gate gate;
  if (!probe) {
    gate.why = "not probed";
    return gate;
  }
  if (!probe->reachable) {
    gate.why = "PQping: " + (probe->error.empty() ? std::string("no answer") : probe->error);
    return gate;
  }
  gate.reachable = true;
  if (std::string why = DivergedWhy(*probe, observed); !why.empty()) {
    gate.diverged = true;
    gate.why = std::move(why);
    return gate;
  }
  // Whether it follows can only be told against a primary: while none is known (a failover
  // under way) nothing is timed, and the replica serves what it has.
  std::string not_following;
  if (observed.primary) {
    not_following = NotFollowingWhy(*probe, observed, pg);
    if (not_following.empty()) {
      mem.not_following_since.reset();
    } else if (!mem.not_following_since) {
      mem.not_following_since = now;
    }
  } else {
    mem.not_following_since.reset();
  }
  if (!not_following.empty()) {
    const Duration for_how_long = Elapsed(*mem.not_following_since, now);
    if (for_how_long > pg.max_lag_time) {
      gate.lag_problem = true;
      gate.why = fmt::format("{} for {} (> max_lag_time {})", not_following,
                             HumanDuration(for_how_long), HumanDuration(pg.max_lag_time));
    } else {
      gate.why = fmt::format("{} for {}", not_following, HumanDuration(for_how_long));
    }
    return gate;
  }
  if (!probe->lag_bytes || !probe->lag_seconds) {
    // Missing data never ejects, and never admits either.
    gate.why = "lag unknown" + (probe->error.empty() ? std::string() : ": " + probe->error);
    return gate;
  }
  const double max_seconds = Seconds(pg.max_lag_time);
  std::vector<std::string> over;
  if (*probe->lag_bytes > pg.max_lag_bytes) {
    over.push_back(
        fmt::format("lag {} > {}", HumanBytes(*probe->lag_bytes), HumanBytes(pg.max_lag_bytes)));
  }
  if (!(*probe->lag_seconds <= max_seconds)) {
    over.push_back(fmt::format("lag {} > {}", HumanSeconds(*probe->lag_seconds),
                               HumanDuration(pg.max_lag_time)));
  }
  if (!over.empty()) {
    gate.lag_problem = true;
    gate.why = fmt::format("{}", fmt::join(over, ", "));
    return gate;
  }
  gate.caught_up = true;
  gate.why = fmt::format("lag {} <= {}, {} <= {}", HumanBytes(*probe->lag_bytes),
                         HumanBytes(pg.max_lag_bytes), HumanSeconds(*probe->lag_seconds),
                         HumanDuration(pg.max_lag_time));
  return gate;
}

/// Classifies Nova's fault for the failure metric and the zone's backoff.
FailureReason ServerFailureReason(const openstack::ServerFacts& server) {
  switch (openstack::ServerFaultKind(server.fault)) {
    case ErrorKind::kCapacity:
      return FailureReason::kCapacity;
    case ErrorKind::kQuota:
      return FailureReason::kQuota;
    default:
      return FailureReason::kServerError;
  }
}

/// What deriving one replica reads and writes.
struct Ctx {
  ClusterView& view;
  ClusterMemory& memory;
  const config::Cluster& cluster;
  TimePoint now;
};

void Fail(ReplicaState& item, Ctx& ctx, FailureReason reason, std::string message) {
  RecordFailure(ctx.memory, item.name, item.zone, ctx.cluster.replica.flavor, reason, message,
                ctx.now);
  item.phase = Phase::kFailed;
  item.detail = message;
  ctx.view.failures.push_back(FailureEvent{
      .replica = item.name, .zone = item.zone, .reason = reason, .message = std::move(message)});
}

/// A replica chosen to go: where it stands on its way out.

/// A replica with no server: only a volume (being cloned, or waiting for its server), or only a
/// name in the load balancer.
void DeriveWithoutServer(ReplicaState& item, Ctx& ctx) {
  const ObservedReplica& obs = *item.obs;
  const config::PhaseTimeouts& t = ctx.cluster.timeouts;
  const auto& volume = obs.volume;
  const TimePoint now = ctx.now;
  if (!volume) {
    // Only HAProxy lists it: nothing is behind the name any more, so its sessions are dead
    // and there is nothing to drain for.
    MarkLeaving(item);
    item.mem->drain_started = now - t.drain;
    DeriveLeaving(item, ctx.view);
    item.detail = "in HAProxy, but neither server nor volume exists: " + item.detail;
    return;
  }
  item.no_server = true;
  item.unhealthy = true;
  if (volume->status == "creating" || volume->status == "downloading") {
    item.phase = Phase::kVolumeCreating;
    const TimePoint since = volume->created.value_or(item.mem->first_seen);
    if (TooLong(now, since, t.volume_create)) {
      Fail(item, ctx, FailureReason::kTimeout,
           fmt::format("volume still {} after {} (volume_create is {})", volume->status,
                       Age(now, since), HumanDuration(t.volume_create)));
      return;
    }
    item.detail = fmt::format("volume {} for {}", volume->status, Age(now, since));
    return;
  }
  if (volume->status == "deleting") {
    // Someone (we, before a restart) is tearing it down: finish.
    MarkLeaving(item);
    DeriveLeaving(item, ctx.view);
    return;
  }
  item.phase = Phase::kServerBuilding;
  const TimePoint since = PhaseStart(item, Phase::kServerBuilding, now);
  if (TooLong(now, since, t.server_build)) {
    Fail(item, ctx, FailureReason::kTimeout,
         fmt::format("volume {} without a server for {} (server_build is {})", volume->status,
                     Age(now, since), HumanDuration(t.server_build)));
    return;
  }
  item.detail = volume->status == "available" ? "volume available, server to be created"
                                              : fmt::format("volume {}, no server", volume->status);
  return;
}

/// A replica the service put in maint (lag ejection): back once caught up; one whose
/// PostgreSQL stops answering gets the budget of a starting one.
void DeriveInMaint(ReplicaState& item, Ctx& ctx) {
  const config::PhaseTimeouts& t = ctx.cluster.timeouts;
  const auto& server = item.obs->server;
  const TimePoint now = ctx.now;
  const bool server_active = server->status == "ACTIVE";
  const Gate& gate = item.gate;
  if (gate.caught_up && server_active) {
    item.phase = Phase::kAdmitting;
    item.detail = "caught up again (" + gate.why + "): to be re-admitted";
    return;
  }
  item.phase = Phase::kLagging;
  item.unhealthy = true;
  item.detail = "in maint: " + (server_active ? gate.why : "server " + server->status);
  if (!gate.reachable) {
    // Lagging has no budget (a write burst on the primary would fail every replica at
    // once), but one whose PostgreSQL does not answer at all would count as capacity
    // forever: it gets the budget of a starting one.
    // From the first probe that got no answer: a replica that lagged for an hour and then
    // missed one probe (a timeout under the same write burst) still gets the whole budget.
    if (!item.mem->unanswered_since) item.mem->unanswered_since = now;
    const TimePoint since = *item.mem->unanswered_since;
    if (TooLong(now, since, t.postgres_start)) {
      Fail(item, ctx, FailureReason::kTimeout,
           fmt::format("in maint and PostgreSQL not answering for {} ({}; postgres_start is "
                       "{})",
                       Age(now, since), server_active ? gate.why : "server " + server->status,
                       HumanDuration(t.postgres_start)));
    }
  }
}

/// A replica on its way up (or serving) that the load balancer lists.
void DeriveInLb(ReplicaState& item, Ctx& ctx) {
  const ObservedReplica& obs = *item.obs;
  const config::PhaseTimeouts& t = ctx.cluster.timeouts;
  const auto& server = obs.server;
  const TimePoint now = ctx.now;
  const bool server_active = server->status == "ACTIVE";
  const Gate& gate = item.gate;
  const lb::Member& lb = *obs.lb;
  item.sessions = lb.sessions;
  if (lb.serving) {
    if (gate.lag_problem) {
      item.phase = Phase::kLagging;
      item.unhealthy = true;
      item.detail = gate.why + ": to maint";
    } else {
      item.phase = Phase::kServing;
      item.unhealthy = !gate.reachable || !server_active;
      item.detail = !server_active   ? "server " + server->status
                    : gate.caught_up ? fmt::format("{} sessions", lb.sessions)
                                     : gate.why;
    }
    return;
  }
  if (item.first_sight && lb.admin == lb::AdminState::kDraining) {
    // After a restart: only a scale-in (or a failed admission) leaves a server in drain. Going
    // is the safe reading; a healthy one is re-admitted first if the count needs it. Maint is
    // not read that way: it is how a lagging replica is ejected, and a probe that fails just
    // as the service restarts must not cost a replica.
    MarkLeaving(item);
    item.mem->drain_started = now;
    DeriveLeaving(item, ctx.view);
    return;
  }
  if (lb.admin == lb::AdminState::kMaint) return DeriveInMaint(item, ctx);
  if (gate.lag_problem && lb.admin == lb::AdminState::kReady) {
    item.phase = Phase::kLagging;
    item.unhealthy = true;
    item.detail = gate.why + ": to maint";
    return;
  }
  item.phase = Phase::kAdmitting;
  item.unhealthy = !gate.reachable || !server_active || lb.health == lb::Health::kDown;
  if (!gate.reachable) {
    // A replica whose PostgreSQL died stays listed (HAProxy marks it DOWN) and would count as
    // capacity forever: it gets the budget of a starting one.
    const TimePoint since = PhaseStart(item, Phase::kAdmitting, now);
    if (TooLong(now, since, t.postgres_start)) {
      Fail(item, ctx, FailureReason::kTimeout,
           fmt::format("in HAProxy but PostgreSQL not answering for {} ({}; postgres_start is "
                       "{})",
                       Age(now, since), server_active ? gate.why : "server " + server->status,
                       HumanDuration(t.postgres_start)));
      return;
    }
  }
  item.detail =
      obs.balancers.empty()
          ? fmt::format("in HAProxy ({}, {}), not serving yet", lb::ToString(lb.admin),
                        lb.detail.empty() ? std::string("no status") : lb.detail)
          : fmt::format("not serving in {} of {} load balancers yet ({})",
                        ctx.cluster.balancer_quorum, obs.balancers.size(), BalancersText(obs));
  return;
}

/// A replica on its way up that the load balancer does not list (or could not be read).
void DeriveOutsideLb(ReplicaState& item, Ctx& ctx) {
  const ObservedReplica& obs = *item.obs;
  const config::PhaseTimeouts& t = ctx.cluster.timeouts;
  const auto& server = obs.server;
  const TimePoint now = ctx.now;
  const bool server_active = server->status == "ACTIVE";
  const Gate& gate = item.gate;
  if (!ctx.view.lb_known && !item.first_sight &&
      (item.previous == Phase::kServing || item.previous == Phase::kLagging ||
       item.previous == Phase::kAdmitting)) {
    item.phase = item.previous;
    item.detail = "HAProxy could not be read; phase as last seen";
    return;
  }

  item.unhealthy = true;
  if (!server_active || item.address.empty() || !gate.reachable) {
    item.phase = Phase::kPostgresStarting;
    const TimePoint since = PhaseStart(item, Phase::kPostgresStarting, now);
    const std::string why = !server_active         ? "server " + server->status
                            : item.address.empty() ? std::string("no address yet")
                                                   : gate.why;
    if (TooLong(now, since, t.postgres_start)) {
      Fail(item, ctx, FailureReason::kTimeout,
           fmt::format("PostgreSQL not answering after {} ({}; postgres_start is {})",
                       Age(now, since), why, HumanDuration(t.postgres_start)));
      return;
    }
    item.detail = why;
    return;
  }
  if (gate.caught_up) {
    item.phase = Phase::kAdmitting;
    item.unhealthy = false;
    item.detail = "caught up (" + gate.why + "): to be admitted";
    return;
  }
  item.phase = Phase::kCatchingUp;
  const TimePoint since = PhaseStart(item, Phase::kCatchingUp, now);
  if (TooLong(now, since, t.catch_up)) {
    Fail(item, ctx, FailureReason::kCatchUp,
         fmt::format("not caught up after {} ({}; catch_up is {})", Age(now, since), gate.why,
                     HumanDuration(t.catch_up)));
    return;
  }
  item.detail = gate.why;
}

/// A replica that lags (in maint), or catches up without following the primary, has
/// timeouts.lagging from its lag's last new low: one that keeps catching up is waited for,
/// one whose lag stopped falling (its WAL receiver stopped, the WAL it needs is gone, it
/// follows an old primary) fails and is replaced.
void ApplyLagBudget(ReplicaState& item, Ctx& ctx) {
  ReplicaMemory& mem = *item.mem;
  const Duration budget = ctx.cluster.timeouts.lagging;
  const auto& probe = item.obs->probe;
  const int64_t lag =
      probe && probe->lag_bytes ? *probe->lag_bytes : std::numeric_limits<int64_t>::max();
  if (!mem.lag_low || item.previous != item.phase) {
    mem.lag_low = lag;
    mem.lag_low_at = ctx.now;
  } else if (lag < *mem.lag_low) {
    mem.lag_low = lag;
    mem.lag_low_at = ctx.now;
  }
  // Catching up is timed by catch_up as long as it follows the primary; this budget is for one
  // that does not.
  if (item.phase == Phase::kCatchingUp && !mem.not_following_since) return;
  const Duration stalled = Elapsed(mem.lag_low_at, ctx.now);
  if (stalled <= budget) {
    item.detail += fmt::format(" ({} of the lagging budget left)", HumanDuration(budget - stalled));
    return;
  }
  Fail(item, ctx, FailureReason::kLagging,
       fmt::format("{} and its lag has not fallen for {} (timeouts.lagging is {}): {}",
                   item.phase == Phase::kLagging ? "ejected for lag" : "catching up",
                   HumanDuration(stalled), HumanDuration(budget), item.gate.why));
}

/// The phase of a replica on its way up (or serving), from what the cloud, HAProxy and
/// PostgreSQL showed. May fail it, or (on first sight) find it leaving.
void DeriveUp(ReplicaState& item, Ctx& ctx) {
  const ObservedReplica& obs = *item.obs;
  const config::PhaseTimeouts& t = ctx.cluster.timeouts;
  const auto& server = obs.server;
  const auto& volume = obs.volume;
  const TimePoint now = ctx.now;

  if (server && server->status == "ERROR") {
    Fail(item, ctx, ServerFailureReason(*server),
         server->fault.empty() ? "server ERROR (Nova gave no fault)"
                               : "server ERROR: " + server->fault);
    return;
  }
  if (volume && StartsWith(volume->status, "error")) {
    Fail(item, ctx, FailureReason::kVolumeError, "volume " + volume->status);
    return;
  }
  if (!server) return DeriveWithoutServer(item, ctx);
  if (server->status == "BUILD") {
    item.phase = Phase::kServerBuilding;
    item.unhealthy = true;
    const TimePoint since = server->created.value_or(item.mem->first_seen);
    if (TooLong(now, since, t.server_build)) {
      Fail(item, ctx, FailureReason::kTimeout,
           fmt::format("server still BUILD after {} (server_build is {})", Age(now, since),
                       HumanDuration(t.server_build)));
      return;
    }
    item.detail = fmt::format("server BUILD for {}", Age(now, since));
    return;
  }

  if (item.gate.diverged) {
    Fail(item, ctx, FailureReason::kDiverged, "diverged: " + item.gate.why);
    return;
  }
  if (item.in_lb) {
    DeriveInLb(item, ctx);
  } else {
    DeriveOutsideLb(item, ctx);
  }
  if (item.phase == Phase::kLagging || item.phase == Phase::kCatchingUp) {
    ApplyLagBudget(item, ctx);
  }
}

void Derive(ReplicaState& item, Ctx& ctx) {
  if (item.obs == nullptr) {
    // Requested by us, its action still running, not listed yet.
    item.phase = item.previous;
    item.zone = item.mem->zone;
    item.created = item.mem->first_seen;
    item.detail = "being created";
    return;
  }
  const ObservedReplica& obs = *item.obs;
  ReplicaMemory& mem = *item.mem;
  item.in_lb = ctx.view.lb_known && obs.lb.has_value();
  item.sessions = item.in_lb ? obs.lb->sessions : 0;
  if (obs.probe && obs.probe->client_sessions) {
    item.sessions = std::max(item.sessions, *obs.probe->client_sessions);
  }
  if (obs.server && !obs.server->availability_zone.empty()) {
    item.zone = obs.server->availability_zone;
  } else if (obs.volume && !obs.volume->availability_zone.empty()) {
    item.zone = obs.volume->availability_zone;
  } else {
    item.zone = mem.zone;
  }
  if (!item.zone.empty()) mem.zone = item.zone;
  item.address = obs.server && !obs.server->address.empty() ? obs.server->address
                 : obs.lb                                   ? obs.lb->address
                                                            : std::string();
  if (obs.server && obs.server->created) {
    item.created = *obs.server->created;
  } else if (obs.volume && obs.volume->created) {
    item.created = *obs.volume->created;
  } else {
    item.created = mem.first_seen;
  }
  item.gate = Assess(obs.probe, *ctx.view.observed, ctx.cluster.postgres, mem, ctx.now);
  if (item.gate.reachable) mem.unanswered_since.reset();

  if (item.foreign) {
    // Shown, never judged: no failure, no leaving mark, no timer.
    item.phase = obs.lb && obs.lb->serving ? Phase::kServing : Phase::kAdmitting;
    item.detail = "not managed by this service (the donor, or not ours)";
    return;
  }

  if (!mem.failure.empty()) {
    item.phase = Phase::kFailed;
    item.detail = mem.failure;
    return;
  }
  if (mem.leaving) {
    DeriveLeaving(item, ctx.view);
    return;
  }
  if (!ctx.view.cloud_known) {
    // Without the cloud nothing can be told or timed: hold what was remembered.
    if (item.first_sight) {
      item.phase = obs.lb && obs.lb->serving ? Phase::kServing : Phase::kAdmitting;
    } else {
      item.phase = item.previous;
    }
    item.detail = "the cloud could not be read; phase as last seen";
    return;
  }
  DeriveUp(item, ctx);
  if (item.phase != Phase::kLagging && item.phase != Phase::kCatchingUp) mem.lag_low.reset();
}

}  // namespace

ClusterView DerivePhases(const Observed& observed, ClusterMemory& memory,
                         const DeriveInput& input) {
  ++planner::derive_calls;
  ClusterView view;
  view.cluster = input.cluster;
  view.observed = &observed;
  view.now = input.now;
  view.cloud_known = !observed.cloud_error.has_value();
  view.lb_known = !observed.lb_error.has_value();
  if (input.cluster == nullptr) return view;
  const config::Cluster& cluster = *input.cluster;
  Ctx ctx{.view = view, .memory = memory, .cluster = cluster, .now = input.now};

  std::set<std::string> foreign(observed.foreign_lb_servers.begin(),
                                observed.foreign_lb_servers.end());
  if (!cluster.donor.server.empty()) foreign.insert(cluster.donor.server);

  // Everything observed, plus what we asked for that is not listed yet.
  auto& items = view.replicas;
  for (const ObservedReplica& obs : observed.replicas) {
    if (obs.name.empty() || items.count(obs.name) > 0) continue;
    ReplicaState& item = items[obs.name];
    item.name = obs.name;
    item.obs = &obs;
  }
  for (auto it = memory.replicas.begin(); it != memory.replicas.end();) {
    if (items.count(it->first) == 0) {
      if (input.busy.count(it->first) > 0 || !view.cloud_known || !view.lb_known) {
        ReplicaState& item = items[it->first];
        item.name = it->first;
        ++it;
        continue;
      }
      it = memory.replicas.erase(it);  // gone: forget it
      continue;
    }
    ++it;
  }
  for (auto& [name, item] : items) {
    item.first_sight = !memory.replicas.contains(name);
    ReplicaMemory& mem = memory.replicas[name];
    if (item.first_sight) {
      mem.first_seen = input.now;
      mem.phase_since = input.now;
    }
    item.mem = &mem;
    item.previous = mem.phase;
    item.busy = input.busy.count(name) > 0;
    item.foreign = foreign.count(name) > 0;
    if (item.obs == nullptr && !item.busy) {
      // Remembered, not listed, and a source could not be read: hold it as it was.
      item.phase = item.previous;
      item.detail = "not listed this cycle";
      continue;
    }
    Derive(item, ctx);
  }
  for (const auto& [name, item] : items) {
    view.active += !item.foreign && IsActive(item.phase) ? 1 : 0;
    // A replacement made after the streak's last failure that serves ends the streak.
    if (memory.streak && !item.foreign && item.phase == Phase::kServing && item.mem != nullptr &&
        item.mem->first_seen > memory.streak->since) {
      memory.streak.reset();
    }
  }
  return view;
}

}  // namespace ra::autoscaler
