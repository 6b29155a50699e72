#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autoscaler/journal.h"
#include "autoscaler/reconcile.h"
#include "core/clock.h"
#include "core/result.h"
#include "policies/engine.h"
#include "policies/spec.h"

/// What the running service shows and accepts: the seam between the control loop (Controller)
/// and its interfaces (HTTP API, CLI, metrics).
namespace ra::autoscaler {

/// One cluster as the last cycle left it.
struct ClusterStatus {
  std::string name{};
  int min_replicas = 0;
  int max_replicas = 0;
  int desired = 0;
  int active = 0;  ///< counted as current (IsActive)
  int serving = 0;
  bool paused = false;
  std::string paused_reason{};
  std::optional<policies::ManualOverride> manual{};
  std::optional<policies::Decision> decision{};  ///< the last one, with every policy's verdict
  std::optional<TimePoint> decided_at{};
  std::string plan_reason{};  ///< the last cycle's sentence
  std::vector<ReplicaView> replicas{};
  std::vector<Blocked> blocked{};
  std::optional<TimePoint> last_cycle_at{};  ///< the last cycle that completed for this cluster
  std::string last_error{};                  ///< of the last cycle, "" when it succeeded
  std::string primary{};                     ///< "host:port" of the current primary
  std::optional<openstack::SnapshotFacts> newest_snapshot{};
};

/// Liveness and readiness of the service.
struct Health {
  bool ready = false;  ///< configuration loaded, API up, first cycle completed
  std::optional<TimePoint> last_successful_cycle{};
  Duration max_cycle_age{};  ///< /healthz fails when the last success is older than this
  /// Several instances (ha): whether this one leads, its name, and the leader's ("" unknown).
  std::optional<bool> leading{};
  std::string instance{};
  std::string leader{};
};

/// What the HTTP API may ask of the running loop. Implemented by Controller; thread-safe; every
/// method returns at once (a change takes effect in the next cycle, which it also triggers).
class ServiceControl {
 public:
  virtual ~ServiceControl() = default;

  virtual std::vector<std::string> ClusterNames() const = 0;
  /// kNotFound for an unknown cluster.
  virtual Result<ClusterStatus> Status(const std::string& cluster) const = 0;
  /// Replaces the policies' verdict until `manual.expires_at` (or until cleared). kNotFound,
  /// kBadRequest when replicas is outside [min_replicas, max_replicas] (the message says the
  /// bounds) or the expiry is in the past.
  virtual Result<void> SetOverride(const std::string& cluster, policies::ManualOverride manual) = 0;
  /// Idempotent.
  virtual Result<void> ClearOverride(const std::string& cluster) = 0;
  /// While paused, the desired count stays where it is: nothing is scaled automatically, and
  /// replicas being built or drained still finish. A manual override still applies. Idempotent.
  virtual Result<void> Pause(const std::string& cluster, const std::string& reason) = 0;
  virtual Result<void> Resume(const std::string& cluster) = 0;
  /// Asks for a golden snapshot in the next cycle. kConflict when one is being made already.
  virtual Result<void> RequestSnapshot(const std::string& cluster) = 0;
  /// Takes `replica` out of service and builds a replacement: it is drained (to zero sessions
  /// on HAProxy and on the replica itself, or the drain timeout), removed and deleted, and
  /// never re-admitted. kNotFound for an unknown cluster or a replica the service does not
  /// manage; kConflict when it is already leaving or failed.
  virtual Result<void> ReplaceReplica(const std::string& cluster, const std::string& replica) = 0;
  /// Starts the next cycle now instead of after the interval.
  virtual void TriggerCycle() = 0;
  virtual std::vector<Event> Events(const std::string& cluster, size_t limit,
                                    std::optional<TimePoint> since) const = 0;
  virtual Health GetHealth() const = 0;
};

}  // namespace ra::autoscaler
