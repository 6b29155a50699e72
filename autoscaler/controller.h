#pragma once

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
#include "autoscaler/config.h"
#include "autoscaler/journal.h"
#include "autoscaler/probe.h"
#include "autoscaler/reconcile.h"
#include "autoscaler/service.h"
#include "autoscaler/service_metrics.h"
#include "core/clock.h"
#include "lb/load_balancer.h"
#include "openstack/cloud_provider.h"
#include "policies/engine.h"
#include "policies/metrics_source.h"

/// The control loop: observe -> evaluate policies -> Reconcile -> hand the plan to the actuator,
/// once per interval for every cluster; and the ServiceControl the HTTP API drives.
namespace ra::autoscaler {

/// What the loop talks to for one cluster. Pointers are not owned and must outlive the
/// Controller; every one is required unless it says nullable.
struct ClusterDeps {
  const config::Cluster* cluster = nullptr;
  openstack::CloudProvider* cloud = nullptr;
  lb::LoadBalancer* lb = nullptr;
  ReplicaProbe* probe = nullptr;
  PrimaryLocator* primary = nullptr;
  DnsHooks dns{};                              ///< not enabled when the cluster has no dns
  policies::MetricsSource* metrics = nullptr;  ///< nullable when no policy queries metrics
  /// The template's ids, or a resolver run (outside any lock) at the first cycle that creates
  /// something, and again each such cycle until it succeeds.
  std::optional<TemplateIds> template_ids{};
  std::function<Result<TemplateIds>()> resolve_template{};
  /// The donor's data volume id, or a resolver run each cycle until it succeeds.
  std::string donor_volume_id{};
  std::function<Result<std::string>()> resolve_donor{};
};

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
};

/// `<directory of journal.path>/state.json`; "" when journal.path is empty (no persistence).
std::string StatePathFor(const config::JournalConfig& journal);

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
  static constexpr Duration kMinCycleGap = std::chrono::milliseconds(250);

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
  void TriggerCycle() override;
  std::vector<Event> Events(const std::string& cluster, size_t limit,
                            std::optional<TimePoint> since) const override;
  Health GetHealth() const override;

 private:
  struct ClusterState {
    ClusterDeps deps{};
    // Guarded by Controller::mu_.
    ClusterMemory memory{};
    std::optional<Plan> last_plan{};
    std::optional<policies::Decision> decision{};
    std::optional<TimePoint> decided_at{};
    std::optional<int> desired{};  ///< the last cycle's desired count
    std::optional<policies::ManualOverride> manual{};
    bool paused = false;
    std::string paused_reason{};
    std::optional<TimePoint> last_cycle_at{};
    std::string last_error{};
    std::string primary{};
    std::optional<openstack::SnapshotFacts> newest_snapshot{};
    bool snapshot_creating = false;                ///< the last cycle saw a snapshot `creating`
    std::map<std::string, std::string> blocked{};  ///< "kind/replica" -> reason, last cycle
    // Touched by the cycle only (serialized by cycle_mu_).
    std::vector<std::string> zones_cache{};
    std::optional<TimePoint> zones_cached_at{};
    std::string donor_volume_id{};
    std::optional<TemplateIds> template_ids{};
    int64_t cycles = 0;
  };
  struct ObserveResult;

  ClusterState* Find(const std::string& cluster);
  const ClusterState* Find(const std::string& cluster) const;
  /// One cluster's cycle; false when some source failed.
  bool RunCluster(ClusterState& state, TimePoint now);
  ObserveResult Observe(ClusterState& state, TimePoint now);
  void ApplyCompletions(ClusterState& state, const std::vector<Completion>& completions,
                        TimePoint now);
  /// The actuator's completion callback (see CycleRequested).
  void OnActionCompleted(const Completion& completion);
  void ReportPlan(ClusterState& state, const std::optional<Plan>& previous, const Plan& plan,
                  TimePoint now);
  /// `count` unused replica names; call with mu_ held.
  std::vector<std::string> FreshNames(const ClusterState& state, const Observed& observed,
                                      int count);
  uint32_t NextRandom();
  /// Reads options_.state_path into the clusters' override and pause (constructor only). An
  /// unreadable or malformed file is reported (log and event) and ignored; an expired override,
  /// one outside the cluster's bounds, or an unknown cluster is dropped.
  void LoadState();
  /// Writes every cluster's override and pause to options_.state_path (temporary file, then
  /// rename). Call without mu_ held. A failure is logged; the state stays in memory.
  void SaveState();

  const config::Config& config_;
  const Clock& clock_;
  Random random_;
  EventJournal& journal_;
  ServiceMetrics& metrics_;
  ControllerOptions options_;
  Actuator actuator_;
  std::vector<std::unique_ptr<ClusterState>> clusters_;

  mutable std::mutex mu_;  // cluster state and health
  std::optional<TimePoint> first_cycle_done_{};
  std::optional<TimePoint> last_success_{};

  std::mutex cycle_mu_;       // one cycle at a time
  std::mutex state_file_mu_;  // one SaveState at a time, so the newest state is written last

  mutable std::mutex loop_mu_;
  std::condition_variable loop_cv_;
  bool stop_requested_ = false;
  bool triggered_ = false;
  std::thread loop_thread_;
  bool stopped_ = false;
};

/// Replaces {cluster}, {id} and {zone} in a replica name template. An empty zone leaves no
/// stray separator behind ("{cluster}-{zone}-{id}" -> "pg-1a2b3c").
std::string ReplicaName(const std::string& name_template, const std::string& cluster,
                        const std::string& id, const std::string& zone);

}  // namespace ra::autoscaler
