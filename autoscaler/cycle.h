#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autoscaler/actuator.h"
#include "autoscaler/intent_store.h"
#include "autoscaler/journal.h"
#include "autoscaler/observer.h"
#include "autoscaler/reconcile.h"
#include "autoscaler/service_metrics.h"
#include "autoscaler/transitions.h"
#include "autoscaler/zone_latency.h"
#include "config/config.h"
#include "policies/engine.h"

/// One cluster's cycle, in order: take the actuator's completions, observe, derive the phases,
/// decide the count, gather the facts planning needs, plan, report, and submit the plan.
namespace ra::autoscaler {

/// Everything the service keeps about one cluster.
struct ClusterState {
  ClusterDeps deps{};
  // Guarded by the Controller's mutex (CycleEnv::mu): the cycle and the API share these.
  ClusterMemory memory{};
  ClusterIntent intent{};
  std::optional<Plan> last_plan{};  ///< exactly what the last cycle submitted
  std::optional<policies::Decision> decision{};
  std::optional<TimePoint> decided_at{};
  std::optional<int> desired{};  ///< the last cycle's desired count
  std::optional<TimePoint> last_cycle_at{};
  std::string last_error{};
  std::string primary{};
  std::optional<openstack::SnapshotFacts> newest_snapshot{};
  bool snapshot_creating = false;                ///< the last cycle saw a snapshot `creating`
  std::map<std::string, std::string> blocked{};  ///< "kind/replica" -> reason, last cycle
  // Touched by the cycle only (cycles are serialized).
  ObserverCache cache{};
  /// Each zone's round trips to the primary (placement, and the zone latency gauge).
  ZoneLatency latency{10};
  std::optional<TemplateIds> template_ids{};
  int64_t cycles = 0;
  /// The transitions the last cycle left to follow until the next (TransitionWatches).
  std::vector<TransitionWatch> watches{};
  /// Time to serve (time_to_serve.h): replicas seen serving whose decision is not yet erased
  /// from the intent store, with their seconds; observed once a save succeeds.
  std::vector<std::pair<std::string, double>> served_unsaved{};
  bool decided_unsaved = false;  ///< intent.decided changed and the last save failed
};

/// What a cycle works with besides its cluster's state.
struct CycleEnv {
  EventJournal& journal;
  ServiceMetrics& metrics;
  Actuator& actuator;
  std::mutex& mu;  ///< guards the ClusterState fields so marked
  std::function<uint32_t()> random;
  /// Saves every cluster's intent (called without `mu` held) after an override expired or the
  /// pending decisions changed. False when it could not be saved (logged).
  std::function<bool()> save_intent;
  Duration zones_cache = std::chrono::minutes(10);
  int quota_every_cycles = 10;
  /// The leadership term the cycle runs in (ha), given to the actuator with the plan.
  uint64_t term = 0;
};

/// One cycle of one cluster at `now`. False when some source could not be read.
bool RunClusterCycle(ClusterState& state, CycleEnv& env, TimePoint now);

/// The journal events and metrics of a plan against the one before it: phase changes (and the
/// durations of the steps of a scale-up), failures, newly blocked actions.
void ReportPlan(ClusterState& state, CycleEnv& env, const std::optional<Plan>& previous,
                const Plan& plan, TimePoint now);

/// What the actuator finished since the last cycle: errors counted, failed creates backing their
/// zone off (a server refused for quota or capacity fails its replica), forced drains journaled.
void ApplyCompletions(ClusterState& state, CycleEnv& env,
                      const std::vector<Completion>& completions, TimePoint now);

}  // namespace ra::autoscaler
