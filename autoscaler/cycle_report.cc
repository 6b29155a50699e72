#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "autoscaler/cycle.h"
#include "core/duration.h"
#include "core/log.h"

// What a cycle tells the journal and the metrics.
namespace ra::autoscaler {

namespace {

template <typename D>
double Seconds(D d) {
  return std::chrono::duration<double>(d).count();
}

// The order a replica goes up through; -1 for phases that are not on the way up.
int UpRank(Phase phase) {
  switch (phase) {
    case Phase::kVolumeCreating:
      return 0;
    case Phase::kServerBuilding:
      return 1;
    case Phase::kPostgresStarting:
      return 2;
    case Phase::kCatchingUp:
      return 3;
    case Phase::kAdmitting:
      return 4;
    case Phase::kServing:
      return 5;
    default:
      return -1;
  }
}

// docs/metrics.md's duration phase for the step a replica leaves; "" when none.
std::string_view DurationPhase(Phase left) {
  switch (left) {
    case Phase::kVolumeCreating:
      return "volume";
    case Phase::kServerBuilding:
      return "server";
    case Phase::kPostgresStarting:
      return "postgres";
    case Phase::kCatchingUp:
      return "catch_up";
    case Phase::kAdmitting:
      return "admit";
    default:
      return "";
  }
}

// docs/metrics.md's provisioning failure reason of a failed create call.
FailureReason CreateFailureReason(const Error& error) {
  if (error.kind == ErrorKind::kQuota) return FailureReason::kQuota;
  if (error.kind == ErrorKind::kCapacity) return FailureReason::kCapacity;
  return FailureReason::kOther;
}

std::string_view ComponentOf(ActionKind kind) {
  switch (kind) {
    case ActionKind::kAdmit:
    case ActionKind::kMaint:
    case ActionKind::kDrain:
    case ActionKind::kRemoveFromLb:
      return "dataplane";
    default:
      return "cloud";
  }
}

std::string BlockedKey(const Blocked& b) {
  return fmt::format("{}/{}", ToString(b.kind), b.replica);
}

}  // namespace

void ReportPlan(ClusterState& state, CycleEnv& env, const std::optional<Plan>& previous,
                const Plan& plan, TimePoint now) {
  const config::Cluster& cluster = *state.deps.cluster;
  std::map<std::string, const ReplicaView*> before;
  if (previous) {
    for (const ReplicaView& v : previous->replicas) before[v.name] = &v;
  }
  for (const ReplicaView& v : plan.replicas) {
    auto it = before.find(v.name);
    const ReplicaView* old = it == before.end() ? nullptr : it->second;
    if (old && old->phase == v.phase) continue;
    Event event;
    event.at = now;
    event.cluster = cluster.name;
    event.replica = v.name;
    event.type = "phase_changed";
    event.message = old ? fmt::format("{} -> {}{}{}", ToString(old->phase), ToString(v.phase),
                                      v.detail.empty() ? "" : ": ", v.detail)
                        : fmt::format("first seen in {}{}{}", ToString(v.phase),
                                      v.detail.empty() ? "" : ": ", v.detail);
    event.details = {{"to", ToString(v.phase)}, {"zone", v.zone}};
    if (old) event.details["from"] = ToString(old->phase);
    env.journal.Append(std::move(event));

    // Durations of the steps of a scale-up, observed when a replica leaves a step going up.
    if (old && UpRank(old->phase) >= 0 && UpRank(v.phase) > UpRank(old->phase)) {
      const std::string_view step = DurationPhase(old->phase);
      if (!step.empty())
        env.metrics.ObservePhaseDuration(cluster.name, step, Seconds(now - old->phase_since));
      if (v.phase == Phase::kServing) {
        // From the request (first seen by this process), else from the cloud's creation time.
        TimePoint began = v.created;
        {
          std::lock_guard lock(env.mu);
          auto m = state.memory.replicas.find(v.name);
          if (m != state.memory.replicas.end() && m->second.first_seen != TimePoint{}) {
            began = m->second.first_seen;
          }
        }
        if (began != TimePoint{} && began <= now) {
          env.metrics.ObservePhaseDuration(cluster.name, "total", Seconds(now - began));
        }
      }
    }
  }

  // Replicas that failed in this cycle (their zone's backoff was recorded before planning).
  for (const FailureEvent& f : plan.failures) {
    env.journal.Append({.at = now,
                        .cluster = cluster.name,
                        .replica = f.replica,
                        .type = "replica_failed",
                        .result = std::string(ToString(f.reason)),
                        .message = f.message,
                        .details = {{"zone", f.zone}}});
    env.metrics.CountProvisioningFailure(cluster.name, f.zone, ToString(f.reason));
  }

  std::map<std::string, std::string> blocked;
  for (const Blocked& b : plan.blocked) blocked[BlockedKey(b)] = b.reason;
  std::map<std::string, std::string> before_blocked;
  {
    std::lock_guard lock(env.mu);
    before_blocked = std::exchange(state.blocked, blocked);
  }
  for (const Blocked& b : plan.blocked) {
    auto it = before_blocked.find(BlockedKey(b));
    if (it != before_blocked.end() && it->second == b.reason) continue;
    env.journal.Append({.at = now,
                        .cluster = cluster.name,
                        .replica = b.replica,
                        .type = "blocked",
                        .action = std::string(ToString(b.kind)),
                        .message = b.reason});
  }
}

namespace {

/// A create that failed backs its zone off. A server refused for quota or capacity will not come
/// in that zone for a while: the replica fails (its volume is deleted, its replacement placed
/// elsewhere, or blocked with the backoff's reason); kept, it would count as active and stay
/// pinned to the backed-off zone through the whole backoff. A transient error is retried with
/// the same volume.
void CreateFailed(ClusterState& state, CycleEnv& env, const Completion& c, TimePoint now) {
  const config::Cluster& cluster = *state.deps.cluster;
  const Action& a = c.action;
  const FailureReason reason = CreateFailureReason(*c.error);
  const bool give_up = a.kind == ActionKind::kCreateServer && !a.replica.empty() &&
                       (reason == FailureReason::kQuota || reason == FailureReason::kCapacity);
  const std::string message =
      fmt::format("server refused in {} ({}): {}", a.zone.empty() ? "the cloud's zone" : a.zone,
                  ToString(reason), c.error->message);
  {
    std::lock_guard lock(env.mu);
    if (give_up) {
      RecordFailure(state.memory, a.replica, a.zone, cluster.replica.flavor, reason, message, now);
    } else {
      RecordZoneFailure(state.memory, a.zone, cluster.replica.flavor, *c.error, now);
    }
  }
  env.metrics.CountProvisioningFailure(cluster.name, a.zone, ToString(reason));
  if (give_up) {
    env.journal.Append({.at = c.finished,
                        .cluster = cluster.name,
                        .replica = a.replica,
                        .type = "replica_failed",
                        .result = std::string(ToString(reason)),
                        .message = message + "; its volume is deleted and the replica replaced",
                        .details = {{"zone", a.zone}}});
  }
}

}  // namespace

void ApplyCompletions(ClusterState& state, CycleEnv& env,
                      const std::vector<Completion>& completions, TimePoint now) {
  const config::Cluster& cluster = *state.deps.cluster;
  for (const Completion& c : completions) {
    const Action& a = c.action;
    const bool creates = a.kind == ActionKind::kCreateVolume || a.kind == ActionKind::kCreateServer;
    if (c.error) {
      env.metrics.CountError(ComponentOf(a.kind), c.error->kind);
      if (creates) CreateFailed(state, env, c, now);
      if (a.kind == ActionKind::kEnsureDns) {
        // The planner asks for a record when a replica starts serving: once failed, ask again.
        std::lock_guard lock(env.mu);
        auto m = state.memory.replicas.find(a.replica);
        if (m != state.memory.replicas.end()) m->second.dns_retry = true;
      }
      continue;
    }
    if (creates) {
      std::lock_guard lock(env.mu);
      RecordZoneSuccess(state.memory, a.zone, cluster.replica.flavor);
    }
    if (a.kind == ActionKind::kRemoveFromLb && a.force) {
      env.metrics.CountForcedDrain(cluster.name);
      env.journal.Append(
          {.at = c.finished,
           .cluster = cluster.name,
           .replica = a.replica,
           .type = "forced_drain",
           .message = fmt::format(
               "{} removed from HAProxy after the drain timeout with {} session(s) still open",
               a.replica, a.sessions),
           .details = {{"sessions", a.sessions}}});
    }
  }
}

}  // namespace ra::autoscaler
