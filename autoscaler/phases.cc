#include <fmt/format.h>

#include <algorithm>

#include "autoscaler/planner_internal.h"
#include "autoscaler/reconcile.h"

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
  Duration backoff =
      kind == ErrorKind::kQuota || kind == ErrorKind::kCapacity ? Duration(2min) : Duration(30s);
  for (int i = 1; i < failures && backoff < cap; ++i) backoff *= 2;
  return std::min(backoff, cap);
}

void RecordZoneFailure(ClusterMemory& memory, const std::string& zone, const std::string& flavor,
                       const Error& error, TimePoint now) {
  ZoneBackoff& backoff = memory.backoff[planner::ZoneKey(zone, flavor)];
  backoff.failures += 1;
  backoff.until = now + BackoffFor(backoff.failures, error.kind);
  backoff.reason = error.ToString();
}

void RecordZoneSuccess(ClusterMemory& memory, const std::string& zone, const std::string& flavor) {
  memory.backoff.erase(planner::ZoneKey(zone, flavor));
}

std::string_view ToString(FailureReason reason) {
  switch (reason) {
    case FailureReason::kQuota:
      return "quota";
    case FailureReason::kCapacity:
      return "capacity";
    case FailureReason::kVolumeError:
      return "volume_error";
    case FailureReason::kServerError:
      return "server_error";
    case FailureReason::kTimeout:
      return "timeout";
    case FailureReason::kCatchUp:
      return "catch_up";
    case FailureReason::kLagging:
      return "lagging";
    case FailureReason::kDiverged:
      return "diverged";
    case FailureReason::kOther:
      return "other";
  }
  return "other";
}

ErrorKind BackoffKind(FailureReason reason) {
  switch (reason) {
    case FailureReason::kQuota:
      return ErrorKind::kQuota;
    case FailureReason::kCapacity:
      return ErrorKind::kCapacity;
    default:
      return ErrorKind::kInternal;
  }
}

void RecordFailure(ClusterMemory& memory, const std::string& replica, const std::string& zone,
                   const std::string& flavor, FailureReason reason, const std::string& message,
                   TimePoint now) {
  auto [it, added] = memory.replicas.try_emplace(replica);
  ReplicaMemory& mem = it->second;
  if (added) mem.first_seen = mem.phase_since = now;
  if (!mem.failure.empty()) return;
  mem.failure = message;
  mem.failure_reason = reason;
  if (mem.zone.empty()) mem.zone = zone;
  const bool postgres_reason = reason == FailureReason::kCatchUp ||
                               reason == FailureReason::kLagging ||
                               reason == FailureReason::kDiverged;
  if (!postgres_reason) {
    RecordZoneFailure(memory, zone, flavor, Error{BackoffKind(reason), message}, now);
    return;
  }
  // PostgreSQL's reasons are no zone's fault (a failover leaves every replica of the old primary
  // diverged, in every zone). They count in the streak: only a replacement made after the last
  // counted failure extends it, so replicas failing together count once.
  auto& streak = memory.streak;
  if (!streak || streak->reason != reason) {
    streak = FailureStreak{.reason = reason, .count = 1, .since = now, .message = message};
  } else if (mem.first_seen > streak->since) {
    streak->count += 1;
    streak->since = now;
    streak->message = message;
  }
}

}  // namespace ra::autoscaler
