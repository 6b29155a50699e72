#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "autoscaler/actuator.h"
#include "autoscaler/cycle.h"
#include "autoscaler/intent_store.h"
#include "autoscaler/journal.h"
#include "autoscaler/loop.h"
#include "autoscaler/observer.h"
#include "autoscaler/probe.h"
#include "autoscaler/reconcile.h"
#include "autoscaler/replica_names.h"
#include "autoscaler/service.h"
#include "autoscaler/service_metrics.h"
#include "autoscaler/transitions.h"
#include "config/config.h"
#include "core/clock.h"
#include "openstack/cloud_provider.h"
#include "policies/engine.h"
#include "policies/metrics_source.h"

/// The service's façade: the clusters' cycles (cycle.h), the loop that runs them (loop.h), the
/// operator intent kept across restarts (intent_store.h), and the ServiceControl the HTTP API
/// drives.
namespace ra::autoscaler {

struct ControllerOptions {
  Actuator::Options actuator{};
  /// Zones asked from the cloud (when the template lists none) are reused this long.
  Duration zones_cache = std::chrono::minutes(10);
  /// The quota is read every this many cycles (and at the first).
  int quota_every_cycles = 10;
  /// Where operator intent (each cluster's manual override and pause) is kept across restarts,
  /// usually StatePathFor(config.journal); empty: in memory only. Read by the constructor,
  /// rewritten atomically (temporary file, then rename) on every change. Nothing else is kept
  /// there: everything else is observed again from the cloud and HAProxy.
  std::string state_path{};
  /// Another store for operator intent (not owned; it must outlive the Controller); when set,
  /// state_path is not used.
  IntentStore* intent_store = nullptr;
  /// Several instances (ha): cycles run, actions start and operator intent changes only while
  /// this instance leads (not owned; it must outlive the Controller); null: always. Each new
  /// term reloads the intent from the store and forgets what the cycles remembered, as a
  /// restart would: the leader adopts what the cloud and HAProxy show.
  const Fence* fence = nullptr;
  /// This instance's name, shown by GetHealth with a fence.
  std::string instance{};
};

/// Thread-safe: RunOnce (from the loop thread or a test) is serialized; ServiceControl calls may
/// come from any thread and never wait for the cloud (per-cluster state has its own mutex, which
/// is never held while calling out).
class Controller final : public ServiceControl {
 public:
  /// A random 32-bit value; injected so tests are deterministic. Called from the loop only.
  using Random = std::function<uint32_t()>;

  /// `config`, `clock`, `journal` and `metrics` must outlive the Controller. `clusters` holds one
  /// entry per cluster to run (in that order). An empty `random` uses a seeded std::mt19937.
  Controller(const config::Config& config, const Clock& clock, Random random, EventJournal& journal,
             ServiceMetrics& metrics, std::vector<ClusterDeps> clusters,
             ControllerOptions options = {});
  ~Controller() override;
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  /// One cycle of every cluster at `now`: observe (blocks for the reads, each bounded by its
  /// client's timeouts; probes run in parallel), decide, reconcile, and submit the actions
  /// (which run on the actuator's workers, or inline when so configured). Never throws. True
  /// when every source of every cluster could be read.
  bool RunOnce(TimePoint now);

  /// The loop: RunOnce(clock.Now()), then wait loop.interval plus up to loop.jitter (or until
  /// a cycle is requested, or Stop), until Stop. Cycles begin at least kMinCycleGap apart, so a
  /// burst of requests makes one early cycle, never a busy loop. Blocks; run it on its own
  /// thread.
  void Run();
  /// Starts Run() on a thread of its own. Call once.
  void Start();
  /// Ends the loop after the cycle in progress, then stops the actuator: queued actions are
  /// dropped, running ones get up to the actuator's stop_timeout. Idempotent. False when an
  /// action was still running at that deadline.
  bool Stop();

  /// A cycle was requested since the loop last began one: by TriggerCycle, or by an action
  /// whose success the next cycle should see at once (kAdmit, kDrain, kRemoveFromLb: an admitted
  /// replica is then reported serving, a drained one removed, a removed one deleted without
  /// waiting out the interval). Failed actions, kMaint (a lag-ejected replica needs longer than
  /// a cycle to catch up; a lag at the threshold must not flap at kMinCycleGap) and cloud actions
  /// request nothing. Thread-safe.
  bool CycleRequested() const;

  /// The shortest time between the starts of two cycles of Run().
  static constexpr Duration kMinCycleGap = Loop::kMinGap;

  /// What is followed between cycles (loop.follow_transitions); null when that is off.
  TransitionWatcher* watcher() { return watcher_.get(); }

  /// The plan of the cluster's last cycle (for `serve --once`); nullopt before one.
  std::optional<Plan> LastPlan(const std::string& cluster) const;
  Actuator& actuator() { return actuator_; }

  // ServiceControl
  std::vector<std::string> ClusterNames() const override;
  Result<ClusterStatus> Status(const std::string& cluster) const override;
  Result<void> SetOverride(const std::string& cluster, policies::ManualOverride manual) override;
  Result<void> ClearOverride(const std::string& cluster) override;
  Result<void> Pause(const std::string& cluster, const std::string& reason) override;
  Result<void> Resume(const std::string& cluster) override;
  Result<void> RequestSnapshot(const std::string& cluster) override;
  Result<void> ReplaceReplica(const std::string& cluster, const std::string& replica) override;
  void TriggerCycle() override;
  std::vector<Event> Events(const std::string& cluster, size_t limit,
                            std::optional<TimePoint> since) const override;
  Health GetHealth() const override;

 private:
  ClusterState* Find(const std::string& cluster);
  const ClusterState* Find(const std::string& cluster) const;
  /// The actuator's completion callback (see CycleRequested).
  void OnActionCompleted(const Completion& completion);
  /// One look at a transition the watcher follows (TransitionWatcher::Poll).
  Result<bool> PollTransition(const TransitionWatch& watch);
  /// Reads the intent store into the clusters' override and pause (constructor only). What
  /// cannot be read is reported (log and event) and ignored; an expired override, one outside
  /// the cluster's bounds, or an unknown cluster is dropped. False when nothing could be read.
  bool LoadIntent();
  /// Writes every cluster's intent to the store. Call without mu_ or state_file_mu_ held. The
  /// store's error (logged) when it could not be written; the intent stays in memory.
  Result<void> SaveIntent();
  /// kNotLeader naming the leader when a fence says this instance does not lead.
  Result<void> RequireLeader() const;
  /// A new term began: intent read again, the clusters' memory forgotten (cycle_mu_ held).
  /// False (nothing adopted, retried by the next cycle) when the intent cannot be read.
  bool AdoptTerm(uint64_t term);
  /// SaveIntent with state_file_mu_ already held.
  Result<void> SaveIntentLocked();
  /// Changes one cluster's intent (under mu_) and, when it says it changed something, saves it.
  /// Answers the change's own error (nothing changed), kNotFound for an unknown cluster, or
  /// kTransient when the save failed: the cluster's intent is then put back as it was, so an
  /// API caller told "no" (503) never finds the change in force, nor lost after a restart.
  using IntentChange = std::function<Result<bool>(const ClusterState&, ClusterIntent&)>;
  Result<bool> UpdateIntent(const std::string& cluster, const IntentChange& change);

  const config::Config& config_;
  const Clock& clock_;
  Random random_;
  EventJournal& journal_;
  ServiceMetrics& metrics_;
  ControllerOptions options_;
  std::unique_ptr<IntentStore> owned_store_;
  IntentStore* store_ = nullptr;  ///< null: intent is kept in memory only
  Actuator actuator_;
  std::vector<std::unique_ptr<ClusterState>> clusters_;
  CycleEnv env_;
  Loop loop_;
  std::unique_ptr<TransitionWatcher> watcher_;  // null: loop.follow_transitions is off

  mutable std::mutex mu_;  // cluster state and health
  std::optional<TimePoint> first_cycle_done_{};
  std::optional<TimePoint> last_success_{};

  std::optional<uint64_t> term_{};  // the term the cycles last ran in (cycle_mu_)
  // The term whose intent is loaded (0: none): changes wait for it, or they would overwrite
  // the stored intent with what a follower held.
  std::atomic<uint64_t> adopted_term_{0};
  std::mutex cycle_mu_;       // one cycle at a time
  std::mutex state_file_mu_;  // one SaveIntent at a time, so the newest intent is written last
};

}  // namespace ra::autoscaler
