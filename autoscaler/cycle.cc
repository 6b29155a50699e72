#include "autoscaler/cycle.h"

#include <fmt/format.h>

#include <algorithm>

#include "autoscaler/replica_names.h"
#include "autoscaler/time_to_serve.h"
#include "core/duration.h"
#include "core/log.h"

namespace ra::autoscaler {

namespace {

/// What the decision step hands to planning.
struct Decided {
  ClusterView view{};
  policies::Decision decision{};
  std::optional<Plan> previous{};
  int previous_desired = 0;
  bool hold_unknown = false;  ///< paused with the count not known yet: do not store it
  std::optional<policies::ManualOverride> expired{};
};

std::map<std::string, policies::Reading> ReadPolicies(const ClusterDeps& deps, CycleEnv& env,
                                                      TimePoint now) {
  const config::Cluster& cluster = *deps.cluster;
  std::map<std::string, policies::Reading> readings;
  for (const auto& [policy, query] : policies::Queries(cluster.policy)) {
    Result<policies::QueryResult> answer =
        deps.metrics ? deps.metrics->Query(query, now)
                     : Result<policies::QueryResult>(
                           Fail(ErrorKind::kConfig, "no metrics source is configured"));
    policies::Reading reading =
        policies::ToReading(answer, now, cluster.policy.missing_data.max_age);
    if (reading.error) env.metrics.CountError("metrics", reading.error->kind);
    readings[policy] = std::move(reading);
  }
  return readings;
}

/// Steps 1 and 2, under the lock: the phases, then the policies' count from them.
Decided DeriveAndDecide(ClusterState& state, const ClusterObservation& seen, const BusySet& busy,
                        std::map<std::string, policies::Reading> readings, TimePoint now) {
  const config::Cluster& cluster = *state.deps.cluster;
  Decided d;
  d.previous = state.last_plan;
  if (state.intent.manual && state.intent.manual->expires_at &&
      *state.intent.manual->expires_at <= now) {
    d.expired = std::exchange(state.intent.manual, std::nullopt);
  }
  d.view = DerivePhases(seen.observed, state.memory,
                        DeriveInput{.cluster = &cluster, .busy = busy.replicas, .now = now});
  const bool unread = seen.observed.cloud_error || seen.observed.lb_error;
  // The policies' current count is the replicas active now, leaving ones not counted. When a
  // source could not be read, nothing is known better than the last count.
  const int current = unread && state.decision ? state.decision->current : d.view.active;
  policies::EvaluationInput input;
  input.current_replicas = current;
  input.readings = std::move(readings);
  input.manual = state.intent.manual;
  input.now = now;
  d.decision = policies::Evaluate(cluster.policy, state.memory.policy_history, input);
  d.previous_desired = state.desired.value_or(current);
  // Paused across a restart, with a first cycle that could not read the cloud or the balancer:
  // the count to hold is not known yet (0 would be held until resume); hold what is seen, and
  // learn the count from the first readable cycle.
  const bool paused = state.intent.paused && !d.decision.override_active;
  d.hold_unknown = paused && !state.desired && unread;
  if (paused) {
    d.decision.desired = d.previous_desired;
    d.decision.reason = fmt::format(
        "paused ({}): holding {} replica(s); the policies said: {}",
        state.intent.paused_reason.empty() ? "no reason given" : state.intent.paused_reason,
        d.previous_desired, d.decision.reason);
  }
  state.memory.policy_history =
      policies::Record(cluster.policy, state.memory.policy_history, d.decision, now);
  return d;
}

/// Would a plan from `view` want to create something (a volume or a server)?
bool MayCreate(const ClusterView& view, int desired) {
  if (view.active < desired) return true;
  return std::any_of(view.replicas.begin(), view.replicas.end(), [](const auto& entry) {
    const ReplicaState& r = entry.second;
    return r.phase == Phase::kServerBuilding && r.obs != nullptr && !r.obs->server;
  });
}

/// The facts planning needs that are not in the view: whether anything may be created now (the
/// primary is known; the template's ids are resolved, at the first need, outside the lock).
std::string WhyCannotCreate(ClusterState& state, ClusterObservation& seen, const Decided& d) {
  // A server's first boot follows the primary named in its user_data. With none known the server
  // waits, blocked with the reason; failing it would back the zone off for a fault that is not
  // the zone's, and a new volume would wait for a server until its budget ran out.
  if (seen.observed.primary_host.empty()) {
    return "the current primary is unknown, so a new replica's first boot would have nothing to "
           "follow: it is built once the primary is found";
  }
  if (state.template_ids || !state.deps.resolve_template) return "";
  if (!MayCreate(d.view, d.decision.desired)) return "";
  auto ids = state.deps.resolve_template();
  if (ids) {
    state.template_ids = std::move(*ids);
    return "";
  }
  seen.errors.emplace_back("cloud", ids.error());
  log::Warn("template not resolved: nothing is created this cycle",
            {{"cluster", state.deps.cluster->name}, {"error", log::Redact(ids.error().message)}});
  return "the replica template (flavor, image, networks) could not be resolved: " +
         log::Redact(ids.error().ToString());
}

/// Names for new replicas: made here from random ids (the planner never makes randomness).
std::vector<std::string> FreshNames(const ClusterState& state, const Observed& observed,
                                    CycleEnv& env, int count) {
  std::set<std::string> taken;
  for (const ObservedReplica& r : observed.replicas) taken.insert(r.name);
  for (const std::string& name : observed.foreign_lb_servers) taken.insert(name);
  for (const auto& [name, memory] : state.memory.replicas) taken.insert(name);
  const config::Cluster& cluster = *state.deps.cluster;
  return FreshReplicaNames(cluster.replica.name_template, cluster.name, std::move(taken), count,
                           env.random);
}

/// One sample per replica that reported a round trip, under its zone; the gauge follows.
void RecordLatencies(ClusterState& state, CycleEnv& env, const ClusterObservation& seen) {
  if (seen.latencies.empty()) return;
  for (const ObservedReplica& r : seen.observed.replicas) {
    const auto it = seen.latencies.find(r.name);
    if (it == seen.latencies.end()) continue;
    const std::string zone = r.server && !r.server->availability_zone.empty()
                                 ? r.server->availability_zone
                             : r.volume ? r.volume->availability_zone
                                        : std::string();
    if (!zone.empty()) state.latency.Add(zone, it->second);
  }
  for (const auto& [zone, seconds] : state.latency.Medians()) {
    env.metrics.SetZoneLatency(state.deps.cluster->name, zone, seconds);
  }
}

PlacementFacts PlacementOf(const ClusterState& state) {
  const config::Placement& p = state.deps.cluster->placement;
  PlacementFacts facts;
  facts.prefer_latency = p.prefer == config::Placement::Prefer::kLatency;
  facts.max_latency = p.max_latency;
  facts.latency_seconds = state.latency.Medians();
  return facts;
}

/// Step 4, under the lock: the plan, and what status shows of this cycle.
Plan PlanAndStore(ClusterState& state, CycleEnv& env, const ClusterObservation& seen, Decided& d,
                  const BusySet& busy, std::string cannot_create, TimePoint now) {
  PlanInput input;
  input.desired = d.decision.desired;
  // Pause stops the policies, not an operator: a manual count is acted on while paused.
  input.paused = state.intent.paused && !d.decision.override_active;
  input.snapshot_busy = busy.snapshot;
  input.fresh_names =
      FreshNames(state, seen.observed, env, std::max(0, d.decision.desired - d.view.active) + 2);
  input.cannot_create = std::move(cannot_create);
  input.placement = PlacementOf(state);
  Plan plan = PlanActions(d.view, input, state.memory);

  state.last_plan = plan;
  state.decision = d.decision;
  state.decided_at = now;
  if (!d.hold_unknown) state.desired = d.decision.desired;
  state.last_cycle_at = now;
  const Observed& observed = seen.observed;
  state.primary = observed.primary_host.empty()
                      ? std::string()
                      : fmt::format("{}:{}", observed.primary_host, observed.primary_port);
  state.newest_snapshot.reset();
  state.snapshot_creating = false;
  for (const openstack::SnapshotFacts& s : observed.snapshots) {
    if (s.status == "available") state.newest_snapshot = s;
    state.snapshot_creating |= s.status == "creating";
  }
  std::string last_error;
  for (const auto& [component, e] : seen.errors) {
    if (!last_error.empty()) last_error += "; ";
    last_error += fmt::format("{}: {}", component, log::Redact(e.ToString()));
  }
  state.last_error = last_error;
  return plan;
}

/// The quota, now and then, for the dashboard.
void ReadQuota(ClusterState& state, CycleEnv& env) {
  if (env.quota_every_cycles <= 0 || (state.cycles - 1) % env.quota_every_cycles != 0) return;
  auto quota = state.deps.cloud->RemainingQuota();
  if (!quota) {
    env.metrics.CountError("cloud", quota.error().kind);
    return;
  }
  // -1 means unlimited: no gauge rather than a negative figure that reads as "exhausted".
  const std::pair<std::string_view, int> figures[] = {{"instances", quota->instances},
                                                      {"cores", quota->cores},
                                                      {"ram_mb", quota->ram_mb},
                                                      {"volumes", quota->volumes},
                                                      {"gigabytes", quota->gigabytes}};
  for (const auto& [resource, value] : figures) {
    if (value >= 0) env.metrics.SetQuota(state.deps.cluster->name, resource, value);
  }
}

/// Step 5: what people and dashboards see of the cycle.
void Report(ClusterState& state, CycleEnv& env, const ClusterObservation& seen, const Decided& d,
            const Plan& plan, TimePoint now) {
  const config::Cluster& cluster = *state.deps.cluster;
  if (d.expired) {
    env.save_intent();
    env.journal.Append(
        {.at = now,
         .cluster = cluster.name,
         .type = "manual_override_expired",
         .message = fmt::format("the manual count of {} expired; the policies decide again",
                                d.expired->replicas)});
  }
  for (const auto& [component, e] : seen.errors) {
    env.metrics.CountError(component, e.kind);
    log::Warn("observe failed", {{"cluster", cluster.name},
                                 {"component", component},
                                 {"kind", ToString(e.kind)},
                                 {"error", log::Redact(e.message)}});
  }
  ReportPlan(state, env, d.previous, plan, now);
  env.metrics.RecordCycle(cluster.name, d.decision, d.previous_desired, plan);
  if (d.decision.desired != d.previous_desired || !d.previous) {
    env.journal.Append({.at = now,
                        .cluster = cluster.name,
                        .type = "decision",
                        .message = d.decision.reason,
                        .details = {{"from", d.previous_desired},
                                    {"to", d.decision.desired},
                                    {"current", d.decision.current},
                                    {"override", d.decision.override_active}}});
  }
  if (!seen.observed.cloud_error) ReadQuota(state, env);
  int serving = 0;
  for (const ReplicaView& v : plan.replicas) {
    serving += v.phase == Phase::kServing && !v.foreign ? 1 : 0;
  }
  log::Info("cycle", {{"cluster", cluster.name},
                      {"desired", plan.desired},
                      {"active", plan.active},
                      {"serving", serving},
                      {"actions", plan.actions.size()},
                      {"blocked", plan.blocked.size()},
                      {"decision", d.decision.reason},
                      {"reason", plan.reason}});
}

/// Time to serve: the objectives, the pending replicas, and the replicas that came to serve,
/// observed only once their decisions are erased from the intent store (so that a restart
/// cannot observe them again). A failed save is retried by the next cycle.
void ReportTimeToServe(ClusterState& state, CycleEnv& env, TimeToServe tts) {
  const config::Cluster& cluster = *state.deps.cluster;
  const auto seconds = [](Duration d) { return std::chrono::duration<double>(d).count(); };
  env.metrics.SetSlo(cluster.name, seconds(cluster.slo.time_to_serve_budget),
                     seconds(cluster.slo.replay_lag_alert));
  env.metrics.SetPending(cluster.name, tts.pending);
  for (auto& served : tts.served) state.served_unsaved.push_back(std::move(served));
  if (!tts.changed && !state.decided_unsaved) return;
  state.decided_unsaved = !env.save_intent();
  if (state.decided_unsaved) return;
  for (const auto& [replica, value] : state.served_unsaved) {
    env.metrics.ObserveTimeToServe(cluster.name, value);
    log::Info("serving", {{"cluster", cluster.name},
                          {"replica", replica},
                          {"time_to_serve_seconds", value},
                          {"budget_seconds", seconds(cluster.slo.time_to_serve_budget)}});
  }
  state.served_unsaved.clear();
}

/// Step 6: the plan's actions to the actuator's workers.
void Submit(ClusterState& state, CycleEnv& env, const ClusterObservation& seen, const Plan& plan) {
  if (plan.actions.empty()) return;
  ActionContext context;
  context.cluster = state.deps.cluster;
  context.cloud = state.deps.cloud;
  context.lb = state.deps.lb;
  context.dns = state.deps.dns;
  if (state.template_ids) context.ids = *state.template_ids;
  context.primary_host = seen.observed.primary_host;
  context.primary_port = seen.observed.primary_port;
  context.donor_volume_id = state.cache.donor_volume_id;
  env.actuator.Submit(state.deps.cluster->name, std::move(context), plan.actions, env.term);
}

}  // namespace

bool RunClusterCycle(ClusterState& state, CycleEnv& env, TimePoint now) {
  const config::Cluster& cluster = *state.deps.cluster;
  ++state.cycles;
  ApplyCompletions(state, env, env.actuator.TakeCompletions(cluster.name), now);
  const BusySet busy = env.actuator.Busy(cluster.name);
  ClusterObservation seen = ObserveCluster(state.deps, state.cache, now, env.zones_cache);
  RecordLatencies(state, env, seen);
  auto readings = ReadPolicies(state.deps, env, now);

  std::unique_lock lock(env.mu);
  Decided decided = DeriveAndDecide(state, seen, busy, std::move(readings), now);
  lock.unlock();
  // Resolving the template is I/O: outside the lock. The view's pointers into the memory stay
  // valid: nothing but the cycle erases a replica's memory.
  std::string cannot_create = WhyCannotCreate(state, seen, decided);
  lock.lock();
  const Plan plan = PlanAndStore(state, env, seen, decided, busy, std::move(cannot_create), now);
  TimeToServe tts =
      TrackTimeToServe(state.intent.decided, state.memory, plan, !seen.observed.cloud_error, now);
  lock.unlock();

  Report(state, env, seen, decided, plan, now);
  ReportTimeToServe(state, env, std::move(tts));
  Submit(state, env, seen, plan);
  state.watches = TransitionWatches(cluster, seen.observed, plan);
  return seen.errors.empty();
}

}  // namespace ra::autoscaler
