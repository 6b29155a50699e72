#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <limits>

#include "autoscaler/placement.h"
#include "autoscaler/planner_internal.h"
#include "autoscaler/reconcile.h"
#include "core/duration.h"

// Step 2 of a cycle: from the cluster as it is (ClusterView) and the count wanted, the actions
// to run, in the order they must run, and what is blocked and why.
namespace ra::autoscaler {

namespace planner {
extern std::atomic<int64_t> derive_calls;
std::atomic<int64_t> plan_calls{0};
}  // namespace planner

namespace {

using namespace planner;

/// What planning reads and writes.
struct Ctx {
  ClusterView& view;
  const PlanInput& input;
  ClusterMemory& memory;
  const config::Cluster& cluster;
  Plan& plan;
  int desired = 0;
  int active = 0;  ///< counted down by victims and up by re-admissions and new replicas
  bool reads_ok = true;
  std::string read_problem{};
};

/// For victims: failed or unhealthy first (a volume without a server before anything), then
/// fewest sessions, then most lag, then the newest.
bool VictimBefore(const ReplicaState* a, const ReplicaState* b) {
  const auto rank = [](const ReplicaState* i) { return i->no_server ? 0 : i->unhealthy ? 1 : 2; };
  if (rank(a) != rank(b)) return rank(a) < rank(b);
  if (a->sessions != b->sessions) return a->sessions < b->sessions;
  const auto lag = [](const ReplicaState* i) {
    const auto& probe = i->obs != nullptr ? i->obs->probe : std::nullopt;
    return probe && probe->lag_bytes ? *probe->lag_bytes : std::numeric_limits<int64_t>::max();
  };
  if (lag(a) != lag(b)) return lag(a) > lag(b);
  if (a->created != b->created) return a->created > b->created;
  return a->name < b->name;
}

std::vector<ReplicaState*> ActiveReplicas(ClusterView& view) {
  std::vector<ReplicaState*> out;
  for (auto& [name, item] : view.replicas) {
    if (!item.foreign && IsActive(item.phase)) out.push_back(&item);
  }
  return out;
}

std::string Plural(int n) { return n == 1 ? "" : "s"; }

// ---------------------------------------------------------------------------------------------
// one replica's actions

/// Only once the load balancer shows it gone: traffic leaves before the server does.
void TakeDown(const ReplicaState& item, Ctx& ctx, const std::string& why) {
  const ObservedReplica& obs = *item.obs;
  const bool has_server = obs.server.has_value();
  if (item.in_lb || (!ctx.view.lb_known && has_server)) return;
  // A balancer that does not answer may still route to it: its server stays until that one
  // shows it gone (the others go on without waiting).
  if (const auto& silent = ctx.view.observed->lb_unreachable; has_server && !silent.empty()) {
    Block(ctx.plan, ActionKind::kDeleteReplica, item.name,
          fmt::format("{}: load balancer {} does not answer and may still route to it", why,
                      JoinNames(silent)));
    return;
  }
  if (ctx.cluster.dns.has_value() && has_server) {
    Add(ctx.plan, Action{.kind = ActionKind::kDeleteDns,
                         .replica = item.name,
                         .address = item.address,
                         .reason = why});
  }
  if (has_server || obs.volume.has_value()) {
    Add(ctx.plan, Action{.kind = ActionKind::kDeleteReplica, .replica = item.name, .reason = why});
  }
}

void PlanFailed(const ReplicaState& item, Ctx& ctx) {
  if (ctx.view.lb_known && item.in_lb) {
    const lb::Member& lb = *item.obs->lb;
    if (lb.admin == lb::AdminState::kReady) {
      Add(ctx.plan, Action{.kind = ActionKind::kMaint,
                           .replica = item.name,
                           .reason = "failed (" + item.mem->failure + "): out of rotation first"});
    }
    Add(ctx.plan, Action{.kind = ActionKind::kRemoveFromLb,
                         .replica = item.name,
                         .force = true,
                         .sessions = lb.sessions,
                         .reason = "failed: " + item.mem->failure});
    return;
  }
  TakeDown(item, ctx, "failed: " + item.mem->failure);
}

void PlanLeaving(const ReplicaState& item, Ctx& ctx) {
  if (!ctx.view.lb_known) return;
  if (!item.in_lb) {
    TakeDown(item, ctx, "leaving: out of HAProxy");
    return;
  }
  const lb::Member& lb = *item.obs->lb;
  if (lb.admin == lb::AdminState::kReady) {
    Add(ctx.plan, Action{.kind = ActionKind::kDrain,
                         .replica = item.name,
                         .reason = fmt::format("leaving: drain ({} sessions open)", lb.sessions)});
  } else if (item.phase == Phase::kDrained) {
    // item.sessions also counts those on the replica itself (an older HAProxy worker's, after
    // a reload): cut short by the timeout, they are counted as such.
    const bool force = item.sessions > 0 || lb.sessions > 0 || item.drain_timed_out;
    const int64_t cut = std::max(item.sessions, lb.sessions);
    Add(ctx.plan,
        Action{.kind = ActionKind::kRemoveFromLb,
               .replica = item.name,
               .force = force,
               .sessions = cut,
               .reason = force ? fmt::format("drain timeout {} passed, {} sessions cut",
                                             HumanDuration(ctx.cluster.timeouts.drain), cut)
                               : std::string("drained: no session left")});
  }
}

void PlanUp(ReplicaState& item, Ctx& ctx) {
  const ObservedReplica& obs = *item.obs;
  const bool has_server = obs.server.has_value();
  const bool ready_in_lb = item.in_lb && obs.lb->admin == lb::AdminState::kReady;
  // With several balancers: those that answered and do not have it admitted yet, and those
  // that did not answer (admission there waits for them; the others go ahead).
  const std::vector<std::string> missing = NotAdmittedIn(obs);
  const std::vector<std::string>& silent = ctx.view.observed->lb_unreachable;
  const auto block_silent = [&] {
    if (silent.empty() || !item.gate.caught_up) return;
    Block(ctx.plan, ActionKind::kAdmit, item.name,
          fmt::format("load balancer {} does not answer: admitted there once it does",
                      JoinNames(silent)));
  };
  switch (item.phase) {
    case Phase::kServerBuilding:
      if (has_server || !obs.volume || obs.volume->status != "available") return;
      if (!ctx.input.cannot_create.empty()) {
        Block(ctx.plan, ActionKind::kCreateServer, item.name, ctx.input.cannot_create);
        return;
      }
      if (const ZoneBackoff* b = ActiveBackoff(ctx.memory, ctx.cluster, item.zone, ctx.view.now)) {
        Block(ctx.plan, ActionKind::kCreateServer, item.name, BackoffText(item.zone, *b));
        return;
      }
      Add(ctx.plan, Action{.kind = ActionKind::kCreateServer,
                           .replica = item.name,
                           .zone = item.zone,
                           .volume_id = obs.volume->id,
                           .reason = "volume available: boot the server"});
      return;
    case Phase::kAdmitting:
      if (!ctx.view.lb_known || !item.gate.caught_up || item.address.empty()) return;
      if (!has_server || obs.server->status != "ACTIVE") return;
      block_silent();
      // Ready but not UP yet: the balancer's checks decide now; asking again would change nothing.
      if (ready_in_lb && missing.empty()) return;
      Add(ctx.plan, Action{.kind = ActionKind::kAdmit,
                           .replica = item.name,
                           .address = item.address,
                           .reason = "caught up: " + item.gate.why +
                                     (obs.balancers.empty() || !ready_in_lb
                                          ? std::string()
                                          : "; not admitted yet in " + JoinNames(missing))});
      return;
    case Phase::kLagging:
      if (ctx.view.lb_known && ready_in_lb) {
        Add(ctx.plan,
            Action{.kind = ActionKind::kMaint, .replica = item.name, .reason = item.gate.why});
      }
      return;
    case Phase::kServing:
      // Serving in the quorum, but not admitted in every balancer that answers (it came back,
      // or lost the member): admit it there too.
      block_silent();
      if (!missing.empty() && item.gate.caught_up && !item.address.empty() && has_server &&
          obs.server->status == "ACTIVE") {
        Add(ctx.plan, Action{.kind = ActionKind::kAdmit,
                             .replica = item.name,
                             .address = item.address,
                             .reason = fmt::format(
                                 "serving in {} of {} load balancers; admit it in {} too",
                                 ServingIn(obs), obs.balancers.size(), JoinNames(missing))});
      }
      if (ctx.cluster.dns.has_value() && !item.address.empty() &&
          (item.first_sight || item.previous != Phase::kServing || item.mem->dns_retry)) {
        item.mem->dns_retry = false;
        Add(ctx.plan, Action{.kind = ActionKind::kEnsureDns,
                             .replica = item.name,
                             .address = item.address,
                             .reason = "serving: publish its A record"});
      }
      return;
    default:
      return;
  }
}

/// Actions of one replica that is not busy and not foreign, in the order they must run.
void PlanReplica(ReplicaState& item, Ctx& ctx) {
  if (item.obs == nullptr || !ctx.view.cloud_known) return;
  if (item.phase == Phase::kFailed) return PlanFailed(item, ctx);
  if (item.mem->leaving) return PlanLeaving(item, ctx);
  PlanUp(item, ctx);
}

// ---------------------------------------------------------------------------------------------
// the count

void ScaleIn(Ctx& ctx) {
  const int excess = ctx.active - ctx.desired;
  if (excess <= 0) return;
  if (ctx.input.paused) {
    Block(ctx.plan, ActionKind::kDrain, "",
          fmt::format("automatic scaling is paused: {} replica{} above desired {} kept", excess,
                      Plural(excess), ctx.desired));
    return;
  }
  if (!ctx.reads_ok) {
    Block(ctx.plan, ActionKind::kDrain, "",
          fmt::format("{} replica{} above desired, but {}", excess, Plural(excess),
                      ctx.read_problem));
    return;
  }
  std::vector<ReplicaState*> candidates;
  for (ReplicaState* item : ActiveReplicas(ctx.view)) {
    if (!item->busy && item->obs != nullptr) candidates.push_back(item);
  }
  std::sort(candidates.begin(), candidates.end(), VictimBefore);
  int chosen = 0;
  for (ReplicaState* victim : candidates) {
    if (chosen == excess) break;
    ++chosen;
    const std::string was = victim->detail;
    MarkLeaving(*victim);
    victim->mem->drain_started = ctx.view.now;
    DeriveLeaving(*victim, ctx.view);
    victim->detail =
        fmt::format("chosen to leave (desired {}; {}): {}", ctx.desired, was, victim->detail);
  }
  if (chosen < excess) {
    Block(ctx.plan, ActionKind::kDrain, "",
          fmt::format("{} replica{} above desired, but the others are busy", excess - chosen,
                      Plural(excess - chosen)));
  }
  ctx.active -= chosen;
}

/// Scale out, first step: healthy leaving replicas come back. Returns their names.
std::set<std::string> Readmit(Ctx& ctx) {
  std::set<std::string> readmitted;
  if (ctx.active >= ctx.desired || ctx.input.paused || !ctx.reads_ok) return readmitted;
  std::vector<ReplicaState*> leaving;
  for (auto& [name, item] : ctx.view.replicas) {
    if (item.foreign || item.busy || item.obs == nullptr || !item.mem->leaving ||
        item.mem->replace || !item.mem->failure.empty() || !item.in_lb || !item.gate.caught_up ||
        item.address.empty() || !item.obs->server || item.obs->server->status != "ACTIVE") {
      continue;
    }
    leaving.push_back(&item);
  }
  // The ones with most sessions are the most useful to keep.
  std::stable_sort(
      leaving.begin(), leaving.end(),
      [](const ReplicaState* a, const ReplicaState* b) { return a->sessions > b->sessions; });
  for (ReplicaState* item : leaving) {
    if (ctx.active >= ctx.desired) break;
    item->mem->leaving = false;
    item->mem->drain_started.reset();
    readmitted.insert(item->name);
    item->phase = Phase::kAdmitting;
    item->detail = "kept after all: re-admitted (" + item->gate.why + ")";
    Add(ctx.plan, Action{.kind = ActionKind::kAdmit,
                         .replica = item->name,
                         .address = item->address,
                         .reason = fmt::format("desired {}, active {}: re-admit a leaving replica "
                                               "that is healthy ({})",
                                               ctx.desired, ctx.active, item->gate.why)});
    ++ctx.active;
  }
  return readmitted;
}

/// The zones' facts for placement: active replicas, backoff, measured latency.
std::vector<ZoneFacts> ZoneFactsOf(Ctx& ctx) {
  std::vector<std::string> zones = ctx.view.observed->zones;
  if (zones.empty()) zones.push_back("");
  std::map<std::string, int> per_zone;
  for (ReplicaState* item : ActiveReplicas(ctx.view)) per_zone[item->zone] += 1;
  std::vector<ZoneFacts> facts;
  for (const std::string& zone : zones) {
    ZoneFacts f;
    f.zone = zone;
    f.active = per_zone[zone];
    if (const ZoneBackoff* b = ActiveBackoff(ctx.memory, ctx.cluster, zone, ctx.view.now)) {
      f.backed_off = BackoffText(zone, *b);
    }
    if (auto it = ctx.input.placement.latency_seconds.find(zone);
        it != ctx.input.placement.latency_seconds.end()) {
      f.latency_seconds = it->second;
    }
    facts.push_back(std::move(f));
  }
  return facts;
}

/// Remembers a replica this plan asks the cloud for, and shows it in the view.
void AddNewReplica(Ctx& ctx, const std::string& name, const std::string& zone,
                   const openstack::SnapshotFacts& snapshot) {
  const TimePoint now = ctx.view.now;
  ReplicaMemory& mem = ctx.memory.replicas[name];
  mem = ReplicaMemory{};
  mem.phase = Phase::kVolumeCreating;
  mem.phase_since = now;
  mem.first_seen = now;
  mem.zone = zone;
  mem.snapshot_id = snapshot.id;
  ReplicaState& item = ctx.view.replicas[name];
  item.name = name;
  item.mem = &mem;
  item.phase = Phase::kVolumeCreating;
  item.previous = Phase::kVolumeCreating;
  item.zone = zone;
  item.created = now;
  item.detail = "volume requested from snapshot " + SnapshotLabel(snapshot);
}

/// Why no new replica may be started now; empty when they may.
std::string WhyNoCreation(const Ctx& ctx, int missing) {
  if (ctx.input.paused) {
    return fmt::format("automatic scaling is paused: {} replica{} below desired {} not created",
                       missing, Plural(missing), ctx.desired);
  }
  if (!ctx.view.cloud_known) {
    return fmt::format("{} replica{} missing, but {}", missing, Plural(missing), ctx.read_problem);
  }
  if (!ctx.input.cannot_create.empty()) {
    return fmt::format("{} ({} replica{} wanted)", ctx.input.cannot_create, missing,
                       Plural(missing));
  }
  return "";
}

/// Scale out, last step: new replicas from the newest usable snapshot. True when a snapshot is
/// needed for them and there is none.
bool CreateNew(Ctx& ctx) {
  const int missing = ctx.desired - ctx.active;
  if (missing <= 0) return false;
  if (const std::string why = WhyNoCreation(ctx, missing); !why.empty()) {
    Block(ctx.plan, ActionKind::kCreateVolume, "", why);
    return false;
  }
  const SnapshotChoice choice = ChooseSnapshot(ctx.view, ctx.memory);
  if (choice.usable == nullptr) {
    Block(ctx.plan, ActionKind::kCreateVolume, "",
          fmt::format("{} ({} replica{} wanted)", choice.why_none, missing, Plural(missing)));
    // After replacements failed twice in a row, no snapshot is taken for them: that is how the
    // churn stops.
    const bool blocked = ctx.memory.streak && ctx.memory.streak->count >= 2;
    return !ctx.view.observed->snapshots_error.has_value() && !blocked;
  }
  const openstack::SnapshotFacts& snapshot = *choice.usable;
  std::vector<ZoneFacts> zones = ZoneFactsOf(ctx);
  size_t next_name = 0;
  for (int i = 0; i < missing; ++i) {
    if (next_name >= ctx.input.fresh_names.size()) {
      Block(ctx.plan, ActionKind::kCreateVolume, "",
            fmt::format("{} more replica{} wanted, but no fresh name was given", missing - i,
                        Plural(missing - i)));
      break;
    }
    const ZoneChoice zone = PlaceReplica(zones, ctx.input.placement);
    if (!zone.zone) {
      Block(ctx.plan, ActionKind::kCreateVolume, "", zone.why);
      break;
    }
    const std::string& name = ctx.input.fresh_names[next_name++];
    if (ctx.view.replicas.contains(name) || ctx.memory.replicas.contains(name)) {
      --i;  // a name already in use is skipped, never reused
      continue;
    }
    for (ZoneFacts& f : zones) f.active += f.zone == *zone.zone ? 1 : 0;
    Add(ctx.plan,
        Action{.kind = ActionKind::kCreateVolume,
               .replica = name,
               .zone = *zone.zone,
               .snapshot_id = snapshot.id,
               .reason = fmt::format(
                   "desired {}, active {}: new replica in {} from snapshot {} ({} old){}",
                   ctx.desired, ctx.active + i,
                   zone.zone->empty() ? "the cloud's zone" : *zone.zone, SnapshotLabel(snapshot),
                   HumanDuration(Elapsed(snapshot.created.value_or(ctx.view.now), ctx.view.now)),
                   zone.why.empty() ? "" : "; " + zone.why)});
    AddNewReplica(ctx, name, *zone.zone, snapshot);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// the result

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
/// Writes every replica's final phase to the memory and lists the views. Returns how many serve.
int Commit(ClusterView& view, Plan& plan) {
  int serving = 0;
  for (auto& [name, item] : view.replicas) {
    ReplicaMemory& mem = *item.mem;
    if (item.first_sight || mem.phase != item.phase) mem.phase_since = view.now;
    mem.phase = item.phase;
    if (item.phase == Phase::kServing) {
      if (!mem.serving_since) mem.serving_since = view.now;
    } else if (item.phase != Phase::kLagging) {
      mem.serving_since.reset();
    }
    if (item.phase == Phase::kServing && !item.foreign) ++serving;
    ReplicaView v;
    v.name = name;
    v.phase = item.phase;
    v.phase_since = mem.phase_since;
    v.zone = item.zone;
    v.address = item.address;
    if (item.obs != nullptr && item.obs->probe) {
      v.lag_bytes = item.obs->probe->lag_bytes;
      v.lag_seconds = item.obs->probe->lag_seconds;
    }
    v.sessions = item.sessions;
    v.created = item.created;
    v.detail = item.detail;
    v.leaving = mem.leaving;
    v.busy = item.busy;
    v.foreign = item.foreign;
    if (item.obs != nullptr && !item.obs->balancers.empty()) {
      v.balancers = item.obs->balancers;
      const int serving_in = ServingIn(*item.obs);
      v.partial = serving_in > 0 && serving_in < static_cast<int>(v.balancers.size());
    }
    plan.replicas.push_back(std::move(v));
  }
  return serving;
}

}  // namespace

Plan PlanActions(ClusterView& view, const PlanInput& input, ClusterMemory& memory) {
  ++planner::plan_calls;
  Plan plan;
  plan.desired = std::max(input.desired, 0);
  plan.active = view.active;
  plan.failures = view.failures;
  if (view.cluster == nullptr || view.observed == nullptr) {
    plan.reason = "no cluster configuration given: nothing planned";
    return plan;
  }
  const Observed& observed = *view.observed;
  Ctx ctx{.view = view,
          .input = input,
          .memory = memory,
          .cluster = *view.cluster,
          .plan = plan,
          .desired = plan.desired,
          .active = view.active,
          .reads_ok = view.cloud_known && view.lb_known,
          .read_problem =
              !view.cloud_known ? "the cloud could not be read: " + observed.cloud_error->ToString()
              : !view.lb_known  ? "HAProxy could not be read: " + observed.lb_error->ToString()
                                : std::string()};

  ScaleIn(ctx);
  const std::set<std::string> readmitted = Readmit(ctx);
  for (auto& [name, item] : view.replicas) {
    if (item.busy || item.foreign || readmitted.contains(name)) continue;
    PlanReplica(item, ctx);
  }
  const bool need_snapshot = CreateNew(ctx);
  const bool streak_blocks =
      std::any_of(plan.blocked.begin(), plan.blocked.end(), [](const Blocked& b) {
        return b.kind == ActionKind::kCreateVolume && StartsWith(b.reason, "creation blocked:");
      });
  if (streak_blocks && memory.streak) {
    plan.creation_blocked = std::string(ToString(memory.streak->reason));
  }
  PlanSnapshots(view, input, memory, need_snapshot, plan);
  plan.reason = Summary(plan, Commit(view, plan));
  return plan;
}

StepCounts PlannerStepCounts() {
  return StepCounts{.derive = planner::derive_calls.load(), .plan = planner::plan_calls.load()};
}

Plan Reconcile(const ReconcileInput& input, ClusterMemory& memory) {
  if (input.cluster == nullptr) {
    Plan plan;
    plan.desired = std::max(input.desired, 0);
    plan.reason = "no cluster configuration given: nothing planned";
    return plan;
  }
  ClusterView view =
      DerivePhases(input.observed, memory,
                   DeriveInput{.cluster = input.cluster, .busy = input.busy, .now = input.now});
  return PlanActions(view,
                     PlanInput{.desired = input.desired,
                               .paused = input.paused,
                               .snapshot_busy = input.snapshot_busy,
                               .fresh_names = input.fresh_names,
                               .cannot_create = input.cannot_create,
                               .placement = input.placement},
                     memory);
}

}  // namespace ra::autoscaler
