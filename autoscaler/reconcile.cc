#include "autoscaler/reconcile.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "core/duration.h"

namespace ra::autoscaler {

using namespace std::chrono_literals;

std::string_view ToString(Phase phase) {
  switch (phase) {
    case Phase::kVolumeCreating:
      return "volume_creating";
    case Phase::kServerBuilding:
      return "server_building";
    case Phase::kPostgresStarting:
      return "postgres_starting";
    case Phase::kCatchingUp:
      return "catching_up";
    case Phase::kAdmitting:
      return "admitting";
    case Phase::kServing:
      return "serving";
    case Phase::kLagging:
      return "lagging";
    case Phase::kDraining:
      return "draining";
    case Phase::kDrained:
      return "drained";
    case Phase::kDeleting:
      return "deleting";
    case Phase::kFailed:
      return "failed";
  }
  return "unknown";
}

bool IsActive(Phase phase) {
  switch (phase) {
    case Phase::kVolumeCreating:
    case Phase::kServerBuilding:
    case Phase::kPostgresStarting:
    case Phase::kCatchingUp:
    case Phase::kAdmitting:
    case Phase::kServing:
    case Phase::kLagging:
      return true;
    case Phase::kDraining:
    case Phase::kDrained:
    case Phase::kDeleting:
    case Phase::kFailed:
      return false;
  }
  return false;
}

std::string_view ToString(ActionKind kind) {
  switch (kind) {
    case ActionKind::kCreateVolume:
      return "create_volume";
    case ActionKind::kCreateServer:
      return "create_server";
    case ActionKind::kAdmit:
      return "admit";
    case ActionKind::kMaint:
      return "maint";
    case ActionKind::kDrain:
      return "drain";
    case ActionKind::kRemoveFromLb:
      return "remove_from_lb";
    case ActionKind::kEnsureDns:
      return "ensure_dns";
    case ActionKind::kDeleteDns:
      return "delete_dns";
    case ActionKind::kDeleteReplica:
      return "delete_replica";
    case ActionKind::kTakeSnapshot:
      return "take_snapshot";
    case ActionKind::kDeleteSnapshot:
      return "delete_snapshot";
  }
  return "unknown";
}

Duration BackoffFor(int failures, ErrorKind kind) {
  const Duration cap = 10min;
  // Quota and capacity do not come back within seconds: start where a transient error would be
  // after a few failures.
  Duration backoff = kind == ErrorKind::kQuota ? Duration(2min) : Duration(30s);
  for (int i = 1; i < failures && backoff < cap; ++i) backoff *= 2;
  return std::min(backoff, cap);
}

namespace {

std::string ZoneKey(const std::string& zone, const std::string& flavor) {
  return zone + "/" + flavor;
}

}  // namespace

void RecordZoneFailure(ClusterMemory& memory, const std::string& zone, const std::string& flavor,
                       const Error& error, TimePoint now) {
  ZoneBackoff& backoff = memory.backoff[ZoneKey(zone, flavor)];
  backoff.failures += 1;
  backoff.until = now + BackoffFor(backoff.failures, error.kind);
  backoff.reason = error.ToString();
}

void RecordZoneSuccess(ClusterMemory& memory, const std::string& zone, const std::string& flavor) {
  memory.backoff.erase(ZoneKey(zone, flavor));
}

namespace {

constexpr int64_t kKiB = int64_t{1} << 10;
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

// "40 MiB", "1.5 GiB", "512 B": figures people read in log lines.
std::string HumanBytes(int64_t bytes) {
  const auto scaled = [bytes](int64_t unit, std::string_view name) {
    if (bytes % unit == 0) return fmt::format("{} {}", bytes / unit, name);
    return fmt::format("{:.1f} {}", static_cast<double>(bytes) / static_cast<double>(unit), name);
  };
  if (bytes >= kGiB) return scaled(kGiB, "GiB");
  if (bytes >= kMiB) return scaled(kMiB, "MiB");
  if (bytes >= kKiB) return scaled(kKiB, "KiB");
  return fmt::format("{} B", bytes);
}

// Whole minutes past an hour, whole seconds below: "30h12m", "4m10s".
std::string HumanDuration(Duration d) {
  if (d < Duration::zero()) d = Duration::zero();
  if (d >= 1h) return FormatDuration(std::chrono::duration_cast<std::chrono::minutes>(d));
  if (d >= 1s) return FormatDuration(std::chrono::duration_cast<std::chrono::seconds>(d));
  return FormatDuration(d);
}

std::string HumanSeconds(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return fmt::format("{}s", seconds);
  if (seconds < 10) return fmt::format("{:.1f}s", seconds);
  if (seconds > 1e9) return fmt::format("{:.0f}s", seconds);
  return HumanDuration(Duration(static_cast<int64_t>(seconds * 1000)));
}

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

// `to - from`, bounded to a century either way: a timestamp from the cloud may sit at the
// clock's limits, and subtracting it from now must not overflow.
Duration Elapsed(TimePoint from, TimePoint to) {
  constexpr auto kFar = std::chrono::hours(24 * 365 * 100);
  if (from < to - kFar) return kFar;
  if (from > to + kFar) return -Duration(kFar);
  return std::chrono::duration_cast<Duration>(to - from);
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool Contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

/// The admission gate applied to one probe.
struct Gate {
  bool reachable = false;
  bool caught_up = false;    // both lags known and within the thresholds
  bool lag_problem = false;  // a known lag above a threshold
  std::string why{};         // "lag 40 MiB > 16 MiB", "PQping: no response", ...
};

Gate Assess(const std::optional<ProbeResult>& probe, const config::PostgresProbe& pg) {
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

/// Classifies Nova's fault for the failure metric.
std::string ServerFailureReason(const openstack::ServerFacts& server) {
  const std::string& fault = server.fault;
  if (Contains(fault, "No valid host") || Contains(fault, "nsufficient") ||
      Contains(fault, "capacity")) {
    return "capacity";
  }
  if (Contains(fault, "uota")) return "quota";
  return "server_error";
}

/// One replica while it is being planned.
struct Item {
  std::string name{};
  const ObservedReplica* obs = nullptr;  // null: remembered and busy, not observed yet
  ReplicaMemory* mem = nullptr;
  bool first_sight = false;  // no memory of it: a restart, or made by someone before us
  Phase previous = Phase::kVolumeCreating;
  bool busy = false;
  bool foreign = false;

  Phase phase = Phase::kVolumeCreating;
  std::string detail{};
  Gate gate{};
  bool in_lb = false;      // HAProxy was read and lists it
  bool unhealthy = false;  // for victims: goes first
  bool no_server = false;  // a volume only: the cheapest victim
  std::string zone{};
  std::string address{};
  int64_t sessions = 0;
  TimePoint created{};
  bool drain_timed_out = false;
};

struct Context {
  const ReconcileInput& input;
  const config::Cluster& cluster;
  ClusterMemory& memory;
  TimePoint now;
  bool cloud_known = true;
  bool lb_known = true;
  Plan& plan;
};

/// How long `item` has been in `phase` (now, when it just entered it).
TimePoint PhaseStart(const Item& item, Phase phase, TimePoint now) {
  if (!item.first_sight && item.previous == phase) return item.mem->phase_since;
  return now;
}

void Fail(Item& item, Context& ctx, std::string reason, std::string message) {
  item.mem->failure = message;
  item.mem->failure_reason = reason;
  item.phase = Phase::kFailed;
  item.detail = message;
  ctx.plan.failures.push_back(FailureEvent{.replica = item.name,
                                           .zone = item.zone,
                                           .reason = std::move(reason),
                                           .message = std::move(message)});
}

/// A replica chosen to go: where it stands on its way out.
void DeriveLeaving(Item& item, Context& ctx) {
  ReplicaMemory& mem = *item.mem;
  const config::PhaseTimeouts& t = ctx.cluster.timeouts;
  if (!ctx.lb_known || !ctx.cloud_known) {
    const bool known_leaving_phase =
        !item.first_sight && (mem.phase == Phase::kDraining || mem.phase == Phase::kDrained ||
                              mem.phase == Phase::kDeleting);
    item.phase = known_leaving_phase ? mem.phase : Phase::kDraining;
    item.detail = ctx.lb_known ? "leaving; the cloud could not be read"
                               : "leaving; HAProxy could not be read";
    return;
  }
  if (item.in_lb) {
    const lb::Member& lb = *item.obs->lb;
    if (!mem.drain_started) mem.drain_started = ctx.now;
    const Duration drained_for = Elapsed(*mem.drain_started, ctx.now);
    item.drain_timed_out = drained_for >= t.drain;
    if (lb.admin == lb::AdminState::kReady) {
      item.phase = Phase::kDraining;
      item.detail = fmt::format("leaving; {} sessions, to be drained", lb.sessions);
    } else if (lb.sessions > 0 && !item.drain_timed_out) {
      item.phase = Phase::kDraining;
      item.detail = fmt::format("{} session{} left, {} of drain budget", lb.sessions,
                                lb.sessions == 1 ? "" : "s", HumanDuration(t.drain - drained_for));
    } else {
      item.phase = Phase::kDrained;
      item.detail = lb.sessions > 0 ? fmt::format("drain timeout {} passed with {} sessions open",
                                                  HumanDuration(t.drain), lb.sessions)
                                    : "drained: no session left";
    }
    return;
  }
  item.phase = Phase::kDeleting;
  std::vector<std::string> left;
  if (item.obs->server) left.push_back("server " + item.obs->server->status);
  if (item.obs->volume) left.push_back("volume " + item.obs->volume->status);
  item.detail = left.empty() ? "deleting" : fmt::format("deleting: {}", fmt::join(left, ", "));
  const TimePoint since = PhaseStart(item, Phase::kDeleting, ctx.now);
  const Duration took = Elapsed(since, ctx.now);
  if (took > t.delete_) {
    item.detail += fmt::format(" (for {}, longer than delete_ {})", HumanDuration(took),
                               HumanDuration(t.delete_));
  }
}

void MarkLeaving(Item& item) {
  item.mem->leaving = true;
  item.mem->serving_since.reset();
}

/// The phase of a replica on its way up (or serving), from what the cloud, HAProxy and
/// PostgreSQL showed. May fail it, or (on first sight) find it leaving.
void DeriveUp(Item& item, Context& ctx) {
  const ObservedReplica& obs = *item.obs;
  const config::PhaseTimeouts& t = ctx.cluster.timeouts;
  const auto& server = obs.server;
  const auto& volume = obs.volume;
  const TimePoint now = ctx.now;
  const auto too_long = [now](TimePoint since, Duration budget) {
    return Elapsed(since, now) > budget;
  };
  const auto age = [now](TimePoint since) { return HumanDuration(Elapsed(since, now)); };

  if (server && server->status == "ERROR") {
    Fail(item, ctx, ServerFailureReason(*server),
         server->fault.empty() ? "server ERROR (Nova gave no fault)"
                               : "server ERROR: " + server->fault);
    return;
  }
  if (volume && StartsWith(volume->status, "error")) {
    Fail(item, ctx, "volume_error", "volume " + volume->status);
    return;
  }

  if (!server) {
    if (!volume) {
      // Only HAProxy lists it: nothing is behind the name any more, so its sessions are dead
      // and there is nothing to drain for.
      MarkLeaving(item);
      item.mem->drain_started = now - t.drain;
      DeriveLeaving(item, ctx);
      item.detail = "in HAProxy, but neither server nor volume exists: " + item.detail;
      return;
    }
    item.no_server = true;
    item.unhealthy = true;
    if (volume->status == "creating" || volume->status == "downloading") {
      item.phase = Phase::kVolumeCreating;
      const TimePoint since = volume->created.value_or(item.mem->first_seen);
      if (too_long(since, t.volume_create)) {
        Fail(item, ctx, "timeout",
             fmt::format("volume still {} after {} (volume_create is {})", volume->status,
                         age(since), HumanDuration(t.volume_create)));
        return;
      }
      item.detail = fmt::format("volume {} for {}", volume->status, age(since));
      return;
    }
    if (volume->status == "deleting") {
      // Someone (we, before a restart) is tearing it down: finish.
      MarkLeaving(item);
      DeriveLeaving(item, ctx);
      return;
    }
    item.phase = Phase::kServerBuilding;
    const TimePoint since = PhaseStart(item, Phase::kServerBuilding, now);
    if (too_long(since, t.server_build)) {
      Fail(item, ctx, "timeout",
           fmt::format("volume {} without a server for {} (server_build is {})", volume->status,
                       age(since), HumanDuration(t.server_build)));
      return;
    }
    item.detail = volume->status == "available"
                      ? "volume available, server to be created"
                      : fmt::format("volume {}, no server", volume->status);
    return;
  }

  if (server->status == "BUILD") {
    item.phase = Phase::kServerBuilding;
    item.unhealthy = true;
    const TimePoint since = server->created.value_or(item.mem->first_seen);
    if (too_long(since, t.server_build)) {
      Fail(item, ctx, "timeout",
           fmt::format("server still BUILD after {} (server_build is {})", age(since),
                       HumanDuration(t.server_build)));
      return;
    }
    item.detail = fmt::format("server BUILD for {}", age(since));
    return;
  }

  const bool server_active = server->status == "ACTIVE";
  const Gate& gate = item.gate;
  if (item.in_lb) {
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
      DeriveLeaving(item, ctx);
      return;
    }
    if (lb.admin == lb::AdminState::kMaint) {
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
        if (too_long(since, t.postgres_start)) {
          Fail(item, ctx, "timeout",
               fmt::format("in maint and PostgreSQL not answering for {} ({}; postgres_start is "
                           "{})",
                           age(since), server_active ? gate.why : "server " + server->status,
                           HumanDuration(t.postgres_start)));
        }
      }
      return;
    }
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
      if (too_long(since, t.postgres_start)) {
        Fail(item, ctx, "timeout",
             fmt::format("in HAProxy but PostgreSQL not answering for {} ({}; postgres_start is "
                         "{})",
                         age(since), server_active ? gate.why : "server " + server->status,
                         HumanDuration(t.postgres_start)));
        return;
      }
    }
    item.detail =
        fmt::format("in HAProxy ({}, {}), not serving yet", lb::ToString(lb.admin), lb.detail);
    return;
  }

  if (!ctx.lb_known && !item.first_sight &&
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
    if (too_long(since, t.postgres_start)) {
      Fail(item, ctx, "timeout",
           fmt::format("PostgreSQL not answering after {} ({}; postgres_start is {})", age(since),
                       why, HumanDuration(t.postgres_start)));
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
  if (too_long(since, t.catch_up)) {
    Fail(item, ctx, "catch_up",
         fmt::format("not caught up after {} ({}; catch_up is {})", age(since), gate.why,
                     HumanDuration(t.catch_up)));
    return;
  }
  item.detail = gate.why;
}

void Derive(Item& item, Context& ctx) {
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
  item.in_lb = ctx.lb_known && obs.lb.has_value();
  item.sessions = item.in_lb ? obs.lb->sessions : 0;
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
  item.gate = Assess(obs.probe, ctx.cluster.postgres);
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
    DeriveLeaving(item, ctx);
    return;
  }
  if (!ctx.cloud_known) {
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
}

/// For victims: failed or unhealthy first (a volume without a server before anything), then
/// fewest sessions, then most lag, then the newest.
bool VictimBefore(const Item* a, const Item* b) {
  const auto rank = [](const Item* i) { return i->no_server ? 0 : i->unhealthy ? 1 : 2; };
  if (rank(a) != rank(b)) return rank(a) < rank(b);
  if (a->sessions != b->sessions) return a->sessions < b->sessions;
  const auto lag = [](const Item* i) {
    const auto& probe = i->obs != nullptr ? i->obs->probe : std::nullopt;
    return probe && probe->lag_bytes ? *probe->lag_bytes : std::numeric_limits<int64_t>::max();
  };
  if (lag(a) != lag(b)) return lag(a) > lag(b);
  if (a->created != b->created) return a->created > b->created;
  return a->name < b->name;
}

void Add(Plan& plan, Action action) { plan.actions.push_back(std::move(action)); }

void Block(Plan& plan, ActionKind kind, std::string replica, std::string reason) {
  plan.blocked.push_back(
      Blocked{.kind = kind, .replica = std::move(replica), .reason = std::move(reason)});
}

std::string BackoffText(const std::string& zone, const ZoneBackoff& backoff) {
  return fmt::format("zone {} backed off until {} after {}",
                     zone.empty() ? "(cloud's choice)" : zone, FormatTime(backoff.until),
                     backoff.reason.empty() ? "failures" : backoff.reason);
}

const ZoneBackoff* ActiveBackoff(const Context& ctx, const std::string& zone) {
  auto it = ctx.memory.backoff.find(ZoneKey(zone, ctx.cluster.replica.flavor));
  if (it == ctx.memory.backoff.end() || it->second.until <= ctx.now) return nullptr;
  return &it->second;
}

/// Actions of one replica that is not busy and not foreign, in the order they must run.
void PlanReplica(Item& item, Context& ctx) {
  Plan& plan = ctx.plan;
  const bool dns = ctx.cluster.dns.has_value();
  const ObservedReplica* obs = item.obs;
  if (obs == nullptr || !ctx.cloud_known) return;
  const bool has_server = obs->server.has_value();
  const bool has_anything = has_server || obs->volume.has_value();

  // Only once HAProxy shows it gone: traffic leaves before the server does.
  const auto take_down = [&](const std::string& why) {
    if (item.in_lb || (!ctx.lb_known && has_server)) return;
    if (dns && has_server) {
      Add(plan, Action{.kind = ActionKind::kDeleteDns,
                       .replica = item.name,
                       .address = item.address,
                       .reason = why});
    }
    if (has_anything) {
      Add(plan, Action{.kind = ActionKind::kDeleteReplica, .replica = item.name, .reason = why});
    }
  };

  if (item.phase == Phase::kFailed) {
    if (ctx.lb_known && item.in_lb) {
      const lb::Member& lb = *obs->lb;
      if (lb.admin == lb::AdminState::kReady) {
        Add(plan, Action{.kind = ActionKind::kMaint,
                         .replica = item.name,
                         .reason = "failed (" + item.mem->failure + "): out of rotation first"});
      }
      Add(plan, Action{.kind = ActionKind::kRemoveFromLb,
                       .replica = item.name,
                       .force = true,
                       .sessions = lb.sessions,
                       .reason = "failed: " + item.mem->failure});
      return;
    }
    take_down("failed: " + item.mem->failure);
    return;
  }

  if (item.mem->leaving) {
    if (!ctx.lb_known) return;
    if (item.in_lb) {
      const lb::Member& lb = *obs->lb;
      if (lb.admin == lb::AdminState::kReady) {
        Add(plan, Action{.kind = ActionKind::kDrain,
                         .replica = item.name,
                         .reason = fmt::format("leaving: drain ({} sessions open)", lb.sessions)});
      } else if (item.phase == Phase::kDrained) {
        const bool force = lb.sessions > 0;
        Add(plan, Action{.kind = ActionKind::kRemoveFromLb,
                         .replica = item.name,
                         .force = force,
                         .sessions = force ? lb.sessions : 0,
                         .reason = force ? fmt::format("drain timeout {} passed, {} sessions cut",
                                                       HumanDuration(ctx.cluster.timeouts.drain),
                                                       lb.sessions)
                                         : std::string("drained: no session left")});
      }
      return;
    }
    take_down("leaving: out of HAProxy");
    return;
  }

  switch (item.phase) {
    case Phase::kServerBuilding:
      if (!has_server && obs->volume && obs->volume->status == "available") {
        if (const ZoneBackoff* backoff = ActiveBackoff(ctx, item.zone)) {
          Block(plan, ActionKind::kCreateServer, item.name, BackoffText(item.zone, *backoff));
          return;
        }
        Add(plan, Action{.kind = ActionKind::kCreateServer,
                         .replica = item.name,
                         .zone = item.zone,
                         .volume_id = obs->volume->id,
                         .reason = "volume available: boot the server"});
      }
      return;
    case Phase::kAdmitting:
      if (!ctx.lb_known || !item.gate.caught_up || item.address.empty()) return;
      if (!has_server || obs->server->status != "ACTIVE") return;
      // Ready but not UP yet: HAProxy's checks decide now; asking again would change nothing.
      if (item.in_lb && obs->lb->admin == lb::AdminState::kReady) return;
      Add(plan, Action{.kind = ActionKind::kAdmit,
                       .replica = item.name,
                       .address = item.address,
                       .reason = "caught up: " + item.gate.why});
      return;
    case Phase::kLagging:
      if (ctx.lb_known && item.in_lb && obs->lb->admin == lb::AdminState::kReady) {
        Add(plan,
            Action{.kind = ActionKind::kMaint, .replica = item.name, .reason = item.gate.why});
      }
      return;
    case Phase::kServing:
      if (dns && !item.address.empty() &&
          (item.first_sight || item.previous != Phase::kServing || item.mem->dns_retry)) {
        item.mem->dns_retry = false;
        Add(plan, Action{.kind = ActionKind::kEnsureDns,
                         .replica = item.name,
                         .address = item.address,
                         .reason = "serving: publish its A record"});
      }
      return;
    default:
      return;
  }
}

struct SnapshotChoice {
  const openstack::SnapshotFacts* usable = nullptr;
  std::string why_none{};  // when usable is null
};

std::vector<const openstack::SnapshotFacts*> SortedSnapshots(const Observed& observed) {
  std::vector<const openstack::SnapshotFacts*> sorted;
  for (const auto& snapshot : observed.snapshots) sorted.push_back(&snapshot);
  // Oldest first; one without a creation time counts as the oldest (its age is unknown).
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
    return a->created.value_or(TimePoint::min()) < b->created.value_or(TimePoint::min());
  });
  return sorted;
}

SnapshotChoice ChooseSnapshot(const Context& ctx,
                              const std::vector<const openstack::SnapshotFacts*>& sorted) {
  SnapshotChoice choice;
  if (ctx.input.observed.snapshots_error) {
    choice.why_none =
        "golden snapshots could not be listed: " + ctx.input.observed.snapshots_error->ToString();
    return choice;
  }
  const openstack::SnapshotFacts* newest = nullptr;
  for (const auto* snapshot : sorted) {
    if (snapshot->status == "available") newest = snapshot;
  }
  if (newest == nullptr) {
    choice.why_none = "no golden snapshot yet";
    return choice;
  }
  const Duration max_age = ctx.cluster.snapshots.max_age;
  if (!newest->created) {
    choice.why_none = fmt::format(
        "no usable golden snapshot: the newest available ({}) has no creation time", newest->id);
    return choice;
  }
  const Duration age = Elapsed(*newest->created, ctx.now);
  if (age > max_age) {
    choice.why_none = fmt::format(
        "no usable golden snapshot: newest available is {} old, snapshots.max_age is {}",
        HumanDuration(age), HumanDuration(max_age));
    return choice;
  }
  choice.usable = newest;
  return choice;
}

/// Picks the zone for one new replica: the fewest active replicas first (configuration order on
/// ties), zones in backoff skipped. Empty optional when every zone is backed off.
std::optional<std::string> PickZone(const Context& ctx, const std::map<std::string, int>& counts,
                                    std::string& why_blocked) {
  std::vector<std::string> zones = ctx.input.observed.zones;
  if (zones.empty()) zones.push_back("");
  std::optional<std::string> best;
  int best_count = 0;
  std::vector<std::string> skipped;
  for (const auto& zone : zones) {
    if (const ZoneBackoff* backoff = ActiveBackoff(ctx, zone)) {
      skipped.push_back(BackoffText(zone, *backoff));
      continue;
    }
    auto it = counts.find(zone);
    const int count = it == counts.end() ? 0 : it->second;
    if (!best || count < best_count) {
      best = zone;
      best_count = count;
    }
  }
  if (!best) why_blocked = fmt::format("every zone is backed off: {}", fmt::join(skipped, "; "));
  return best;
}

std::string SnapshotLabel(const openstack::SnapshotFacts& snapshot) {
  return snapshot.name.empty() ? snapshot.id : snapshot.name;
}

void PlanSnapshots(Context& ctx, bool need_for_replicas) {
  const Observed& observed = ctx.input.observed;
  Plan& plan = ctx.plan;
  if (observed.snapshots_error || ctx.input.snapshot_busy) return;
  const auto sorted = SortedSnapshots(observed);
  const config::Snapshots& cfg = ctx.cluster.snapshots;

  bool creating = false;
  const openstack::SnapshotFacts* newest = nullptr;
  for (const auto* snapshot : sorted) {
    if (snapshot->status == "creating") creating = true;
    if (snapshot->status == "available") newest = snapshot;
  }

  std::string want;
  if (ctx.memory.snapshot_on_demand) {
    want = "asked for through the API";
  } else if (newest == nullptr) {
    want = "no golden snapshot yet";
  } else if (!newest->created) {
    want = "the newest snapshot has no creation time";
  } else if (Elapsed(*newest->created, ctx.now) > cfg.interval) {
    want =
        fmt::format("the newest snapshot is {} old (snapshots.interval is {})",
                    HumanDuration(Elapsed(*newest->created, ctx.now)), HumanDuration(cfg.interval));
  } else if (need_for_replicas) {
    want = "new replicas need a usable snapshot";
  }
  if (!want.empty() && !creating) {
    const auto& requested = ctx.memory.snapshot_requested_at;
    if (observed.donor_volume_id.empty()) {
      Block(plan, ActionKind::kTakeSnapshot, "",
            want + ", but the donor's data volume is not known");
    } else if (requested && Elapsed(*requested, ctx.now) < ctx.cluster.timeouts.snapshot_create) {
      Block(plan, ActionKind::kTakeSnapshot, "",
            fmt::format("{}, but one was requested {} ago and is not listed yet (snapshot_create "
                        "is {})",
                        want, HumanDuration(Elapsed(*requested, ctx.now)),
                        HumanDuration(ctx.cluster.timeouts.snapshot_create)));
    } else {
      Add(plan, Action{.kind = ActionKind::kTakeSnapshot,
                       .volume_id = observed.donor_volume_id,
                       .reason = want});
      ctx.memory.snapshot_requested_at = ctx.now;
      ctx.memory.snapshot_on_demand = false;
    }
  }

  // Deleting needs the cloud: a snapshot that a volume is still being cloned from stays.
  if (!ctx.cloud_known) return;
  std::set<std::string> in_use;
  for (const auto& replica : observed.replicas) {
    if (replica.volume && !replica.volume->snapshot_id.empty() &&
        (replica.volume->status == "creating" || replica.volume->status == "downloading")) {
      in_use.insert(replica.volume->snapshot_id);
    }
  }
  // A volume requested from a snapshot (its action queued or running) is not listed yet.
  std::set<std::string> listed_volumes;
  for (const auto& replica : observed.replicas) {
    if (replica.volume) listed_volumes.insert(replica.name);
  }
  for (const auto& [name, mem] : ctx.memory.replicas) {
    if (!mem.snapshot_id.empty() && listed_volumes.count(name) == 0) in_use.insert(mem.snapshot_id);
  }
  const SnapshotChoice usable = ChooseSnapshot(ctx, sorted);
  const int keep = std::max(cfg.keep, 1);
  int kept = 0;
  for (auto it = sorted.rbegin(); it != sorted.rend(); ++it) {
    const openstack::SnapshotFacts& snapshot = **it;
    if (snapshot.status == "error") {
      if (in_use.count(snapshot.id) == 0) {
        Add(plan,
            Action{.kind = ActionKind::kDeleteSnapshot,
                   .snapshot_id = snapshot.id,
                   .reason = fmt::format("snapshot {} is in error", SnapshotLabel(snapshot))});
      }
      continue;
    }
    if (snapshot.status != "available") continue;
    if (kept < keep) {
      ++kept;
      continue;
    }
    if (&snapshot == usable.usable || in_use.count(snapshot.id) > 0) continue;
    Add(plan, Action{.kind = ActionKind::kDeleteSnapshot,
                     .snapshot_id = snapshot.id,
                     .reason = fmt::format("snapshot {} is older than the {} newest kept",
                                           SnapshotLabel(snapshot), keep)});
  }
}

std::string Summary(const Plan& plan, int serving) {
  std::string out =
      fmt::format("desired {}, active {} ({} serving)", plan.desired, plan.active, serving);
  std::vector<std::string> parts;
  std::vector<std::string> create_zones;
  std::string create_snapshot;
  for (const Action& action : plan.actions) {
    if (action.kind == ActionKind::kCreateVolume) {
      create_zones.push_back(action.zone.empty() ? "the cloud's zone" : action.zone);
      create_snapshot = action.snapshot_id;
    }
  }
  if (!create_zones.empty()) {
    parts.push_back(fmt::format("create {} in {} from snapshot {}", create_zones.size(),
                                fmt::join(create_zones, ", "), create_snapshot));
  }
  for (const Action& action : plan.actions) {
    if (action.kind == ActionKind::kCreateVolume) continue;
    std::string part(ToString(action.kind));
    if (!action.replica.empty()) part += " " + action.replica;
    if (!action.snapshot_id.empty()) part += " " + action.snapshot_id;
    if (action.kind == ActionKind::kRemoveFromLb && action.force) {
      part += fmt::format(" (forced, {} sessions)", action.sessions);
    }
    parts.push_back(std::move(part));
  }
  if (parts.empty()) {
    out += ": nothing to do";
  } else {
    out += ": " + fmt::format("{}", fmt::join(parts, ", "));
  }
  if (!plan.blocked.empty()) {
    out += fmt::format("; blocked: {}", plan.blocked.front().reason);
    if (plan.blocked.size() > 1) out += fmt::format(" (and {} more)", plan.blocked.size() - 1);
  }
  return out;
}

}  // namespace

Plan Reconcile(const ReconcileInput& input, ClusterMemory& memory) {
  Plan plan;
  plan.desired = std::max(input.desired, 0);
  const int desired = plan.desired;
  if (input.cluster == nullptr) {
    plan.reason = "no cluster configuration given: nothing planned";
    return plan;
  }
  const config::Cluster& cluster = *input.cluster;
  Context ctx{.input = input,
              .cluster = cluster,
              .memory = memory,
              .now = input.now,
              .cloud_known = !input.observed.cloud_error.has_value(),
              .lb_known = !input.observed.lb_error.has_value(),
              .plan = plan};

  std::set<std::string> foreign(input.observed.foreign_lb_servers.begin(),
                                input.observed.foreign_lb_servers.end());
  if (!cluster.donor.server.empty()) foreign.insert(cluster.donor.server);

  // Everything observed, plus what we asked for that is not listed yet.
  std::map<std::string, Item> items;
  for (const ObservedReplica& obs : input.observed.replicas) {
    if (obs.name.empty() || items.count(obs.name) > 0) continue;
    Item& item = items[obs.name];
    item.name = obs.name;
    item.obs = &obs;
  }
  for (auto it = memory.replicas.begin(); it != memory.replicas.end();) {
    if (items.count(it->first) == 0) {
      if (input.busy.count(it->first) > 0 || !ctx.cloud_known || !ctx.lb_known) {
        Item& item = items[it->first];
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
    auto found = memory.replicas.find(name);
    item.first_sight = found == memory.replicas.end();
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

  const auto active_items = [&]() {
    std::vector<Item*> out;
    for (auto& [name, item] : items) {
      if (!item.foreign && IsActive(item.phase)) out.push_back(&item);
    }
    return out;
  };
  int active = static_cast<int>(active_items().size());
  plan.active = active;

  const bool reads_ok = ctx.cloud_known && ctx.lb_known;
  const std::string read_problem =
      !ctx.cloud_known ? "the cloud could not be read: " + input.observed.cloud_error->ToString()
      : !ctx.lb_known  ? "HAProxy could not be read: " + input.observed.lb_error->ToString()
                       : std::string();

  // Scale in.
  if (active > desired) {
    const int excess = active - desired;
    if (input.paused) {
      Block(plan, ActionKind::kDrain, "",
            fmt::format("automatic scaling is paused: {} replica{} above desired {} kept", excess,
                        excess == 1 ? "" : "s", desired));
    } else if (!reads_ok) {
      Block(plan, ActionKind::kDrain, "",
            fmt::format("{} replica{} above desired, but {}", excess, excess == 1 ? "" : "s",
                        read_problem));
    } else {
      std::vector<Item*> candidates;
      for (Item* item : active_items()) {
        if (!item->busy && item->obs != nullptr) candidates.push_back(item);
      }
      std::sort(candidates.begin(), candidates.end(), VictimBefore);
      int chosen = 0;
      for (Item* victim : candidates) {
        if (chosen == excess) break;
        ++chosen;
        const std::string was = victim->detail;
        MarkLeaving(*victim);
        victim->mem->drain_started = input.now;
        DeriveLeaving(*victim, ctx);
        victim->detail =
            fmt::format("chosen to leave (desired {}; {}): {}", desired, was, victim->detail);
      }
      if (chosen < excess) {
        Block(plan, ActionKind::kDrain, "",
              fmt::format("{} replica{} above desired, but the others are busy", excess - chosen,
                          excess - chosen == 1 ? "" : "s"));
      }
      active -= chosen;
    }
  }

  // Scale out: healthy leaving ones come back first (their kAdmit is planned here).
  std::set<std::string> readmitted;
  if (active < desired && !input.paused && reads_ok) {
    std::vector<Item*> leaving;
    for (auto& [name, item] : items) {
      if (item.foreign || item.busy || item.obs == nullptr || !item.mem->leaving ||
          !item.mem->failure.empty() || !item.in_lb || !item.gate.caught_up ||
          item.address.empty() || !item.obs->server || item.obs->server->status != "ACTIVE") {
        continue;
      }
      leaving.push_back(&item);
    }
    // The ones with most sessions are the most useful to keep.
    std::stable_sort(leaving.begin(), leaving.end(),
                     [](const Item* a, const Item* b) { return a->sessions > b->sessions; });
    for (Item* item : leaving) {
      if (active >= desired) break;
      item->mem->leaving = false;
      item->mem->drain_started.reset();
      readmitted.insert(item->name);
      item->phase = Phase::kAdmitting;
      item->detail = "kept after all: re-admitted (" + item->gate.why + ")";
      Add(plan, Action{.kind = ActionKind::kAdmit,
                       .replica = item->name,
                       .address = item->address,
                       .reason = fmt::format("desired {}, active {}: re-admit a leaving replica "
                                             "that is healthy ({})",
                                             desired, active, item->gate.why)});
      ++active;
    }
  }

  for (auto& [name, item] : items) {
    if (item.busy || item.foreign || readmitted.count(name) > 0) continue;
    PlanReplica(item, ctx);
  }

  // New replicas.
  bool need_snapshot = false;
  if (active < desired) {
    const int missing = desired - active;
    if (input.paused) {
      Block(plan, ActionKind::kCreateVolume, "",
            fmt::format("automatic scaling is paused: {} replica{} below desired {} not created",
                        missing, missing == 1 ? "" : "s", desired));
    } else if (!ctx.cloud_known) {
      Block(plan, ActionKind::kCreateVolume, "",
            fmt::format("{} replica{} missing, but {}", missing, missing == 1 ? "" : "s",
                        read_problem));
    } else {
      const auto sorted = SortedSnapshots(input.observed);
      const SnapshotChoice choice = ChooseSnapshot(ctx, sorted);
      if (choice.usable == nullptr) {
        need_snapshot = !input.observed.snapshots_error.has_value();
        Block(plan, ActionKind::kCreateVolume, "",
              fmt::format("{} ({} replica{} wanted)", choice.why_none, missing,
                          missing == 1 ? "" : "s"));
      } else {
        std::map<std::string, int> per_zone;
        for (Item* item : active_items()) per_zone[item->zone] += 1;
        size_t next_name = 0;
        for (int i = 0; i < missing; ++i) {
          if (next_name >= input.fresh_names.size()) {
            Block(plan, ActionKind::kCreateVolume, "",
                  fmt::format("{} more replica{} wanted, but no fresh name was given", missing - i,
                              missing - i == 1 ? "" : "s"));
            break;
          }
          std::string why_blocked;
          const std::optional<std::string> zone = PickZone(ctx, per_zone, why_blocked);
          if (!zone) {
            Block(plan, ActionKind::kCreateVolume, "", why_blocked);
            break;
          }
          const std::string& name = input.fresh_names[next_name++];
          if (items.count(name) > 0 || memory.replicas.count(name) > 0) {
            --i;  // a name already in use is skipped, never reused
            continue;
          }
          per_zone[*zone] += 1;
          const auto& snapshot = *choice.usable;
          Add(plan,
              Action{.kind = ActionKind::kCreateVolume,
                     .replica = name,
                     .zone = *zone,
                     .snapshot_id = snapshot.id,
                     .reason = fmt::format(
                         "desired {}, active {}: new replica in {} from snapshot {} ({} old)",
                         desired, active + i, zone->empty() ? "the cloud's zone" : *zone,
                         SnapshotLabel(snapshot),
                         HumanDuration(Elapsed(snapshot.created.value_or(input.now), input.now)))});
          ReplicaMemory& mem = memory.replicas[name];
          mem = ReplicaMemory{};
          mem.phase = Phase::kVolumeCreating;
          mem.phase_since = input.now;
          mem.first_seen = input.now;
          mem.zone = *zone;
          mem.snapshot_id = snapshot.id;
          Item& item = items[name];
          item.name = name;
          item.mem = &mem;
          item.phase = Phase::kVolumeCreating;
          item.previous = Phase::kVolumeCreating;
          item.zone = *zone;
          item.created = input.now;
          item.detail = "volume requested from snapshot " + SnapshotLabel(snapshot);
        }
      }
    }
  }

  PlanSnapshots(ctx, need_snapshot);

  // Memory and views.
  int serving = 0;
  for (auto& [name, item] : items) {
    ReplicaMemory& mem = *item.mem;
    if (item.first_sight || mem.phase != item.phase) mem.phase_since = input.now;
    mem.phase = item.phase;
    if (item.phase == Phase::kServing) {
      if (!mem.serving_since) mem.serving_since = input.now;
    } else if (item.phase != Phase::kLagging) {
      mem.serving_since.reset();
    }
    if (item.phase == Phase::kServing && !item.foreign) ++serving;
    ReplicaView view;
    view.name = name;
    view.phase = item.phase;
    view.phase_since = mem.phase_since;
    view.zone = item.zone;
    view.address = item.address;
    if (item.obs != nullptr && item.obs->probe) {
      view.lag_bytes = item.obs->probe->lag_bytes;
      view.lag_seconds = item.obs->probe->lag_seconds;
    }
    view.sessions = item.sessions;
    view.created = item.created;
    view.detail = item.detail;
    view.leaving = mem.leaving;
    view.busy = item.busy;
    view.foreign = item.foreign;
    plan.replicas.push_back(std::move(view));
  }
  plan.reason = Summary(plan, serving);
  return plan;
}

}  // namespace ra::autoscaler
