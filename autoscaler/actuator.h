#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "autoscaler/journal.h"
#include "autoscaler/leader.h"
#include "autoscaler/reconcile.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/result.h"
#include "lb/load_balancer.h"
#include "openstack/cloud_provider.h"

/// Performs the plan's actions away from the control loop, so a cycle never waits for the cloud
/// or HAProxy: two small pools of workers (one for the cloud, one for the load balancers, so an
/// HAProxy action never waits behind slow or throttled cloud calls), one replica's actions
/// strictly in order and never two at once, results journaled and handed back to the next cycle.
namespace ra::autoscaler {

/// The cloud's ids of what a replica is built from (the template's names resolved).
struct TemplateIds {
  std::string flavor_id{};
  std::string image_id{};  ///< the system disk's image
  std::vector<std::string> network_ids{};
};

/// A cluster's DNS records (Designate through openstack::DnsRecords in the service, a recorder in
/// tests). Both block for their requests; both are idempotent. `record` is DnsRecordName().
struct DnsHooks {
  std::function<Result<void>(const std::string& record, const std::string& address)> ensure{};
  std::function<Result<void>(const std::string& record)> remove{};
  bool enabled() const { return ensure && remove; }
};

/// Everything one action needs besides the Action itself. Pointers must outlive the actuator.
struct ActionContext {
  const config::Cluster* cluster = nullptr;
  openstack::CloudProvider* cloud = nullptr;
  lb::LoadBalancer* lb = nullptr;
  DnsHooks dns{};              ///< not enabled: DNS actions fail with kConfig
  TemplateIds ids{};           ///< for kCreateVolume / kCreateServer
  std::string primary_host{};  ///< written into user_data for the first boot
  int primary_port = 5432;
  std::string donor_volume_id{};  ///< kTakeSnapshot when the action carries no volume id
};

/// What became of one action; drained by the next cycle.
struct Completion {
  std::string cluster{};
  Action action{};
  std::optional<Error> error{};  ///< absent: it succeeded
  std::string detail{};          ///< e.g. "server_deleting", "removed with 3 sessions"
  TimePoint finished{};
};

/// The replicas (and the snapshot slot) of one cluster with queued or running work.
struct BusySet {
  std::set<std::string> replicas{};
  bool snapshot = false;
};

/// user_data for a replica's first boot (ansible/roles/pg_replica/files/replica-first-boot.sh):
/// a JSON object of non-secret facts only — cluster, replica, primary_host, primary_port,
/// replication_user, application_name, sslmode, and primary_hosts ([{host, port}], the current
/// primary first, then every other PrimaryCandidates entry). Never a password.
std::string ReplicaUserData(const config::Cluster& cluster, const std::string& replica,
                            const std::string& primary_host, int primary_port);

/// The spec CreateReplicaVolume / CreateReplicaServer get for `action`'s replica.
openstack::ReplicaSpec ReplicaSpecFor(const ActionContext& context, const Action& action);

/// The DNS record name of a replica: cluster.dns.record_template with {name} and {cluster}
/// replaced, then the zone appended ("pg-replica-1a2b3c.db.example.com.").
std::string DnsRecordName(const config::Cluster& cluster, const std::string& replica);

/// Golden snapshot names: "<cluster>-golden-<UTC yyyymmddThhmmss>".
std::string GoldenSnapshotName(const std::string& cluster, TimePoint now);

/// Performs one action synchronously (blocks for the calls it makes). kRemoveFromLb that finds
/// sessions left without force is kConflict, so the replica's later actions do not run.
/// Returns a short detail on success.
Result<std::string> PerformAction(const ActionContext& context, const Action& action,
                                  TimePoint now);

/// Which pool of workers runs an action: the load balancers' own (kAdmit, kMaint, kDrain,
/// kRemoveFromLb), or the cloud's (everything else, DNS included: Designate is a cloud service).
enum class Lane { kCloud = 0, kBalancer = 1 };
Lane LaneOf(ActionKind kind);

class Actuator {
 public:
  struct Options {
    int threads = 8;           ///< cloud workers
    int balancer_threads = 2;  ///< load-balancer workers, never busy with a cloud call
    /// Run each action on the submitting thread, at once (deterministic unit tests).
    bool inline_execution = false;
    /// Stop() waits this long for running actions.
    Duration stop_timeout = std::chrono::seconds(30);
    /// Several instances (ha): an action is started only while this instance leads in the term
    /// it was planned in; null: always (one instance). Not owned; it must outlive the actuator.
    const Fence* fence = nullptr;
  };

  /// `journal` and `clock` must outlive the actuator. Starts the workers (unless inline).
  Actuator(Options options, EventJournal& journal, const Clock& clock);
  /// Stops (see Stop) and joins what it can.
  ~Actuator();
  Actuator(const Actuator&) = delete;
  Actuator& operator=(const Actuator&) = delete;

  /// Queues `actions` (one cycle's plan) behind the same replica's earlier ones, in order
  /// (snapshot actions share one slot per cluster). Returns at once (inline: after running
  /// them). When an action fails, the replica's actions still queued are dropped: the next
  /// cycle plans again from what it sees. Ignored after Stop().
  ///
  /// With a fence, `term` is the term the plan was made in: the actions are refused at once when
  /// this instance does not lead in it, and each is checked again right before it starts; one
  /// whose term has passed is not started and is journaled `action_abandoned` (with the rest of
  /// its replica's queue), so no action is ever started by an instance that no longer leads.
  /// Actions already running finish.
  void Submit(const std::string& cluster, ActionContext context, std::vector<Action> actions,
              uint64_t term = 0);

  /// Queued or running work of `cluster`. Thread-safe.
  BusySet Busy(const std::string& cluster) const;

  /// Results since the last call, oldest first, of `cluster` only. Thread-safe.
  std::vector<Completion> TakeCompletions(const std::string& cluster);

  /// Called after each action's completion is queued (so TakeCompletions already returns it),
  /// on the thread that ran the action (inline: the submitting one), without the actuator's
  /// queue lock. It must be quick and must not call SetOnCompletion. Once SetOnCompletion
  /// returns, the previous callback is not running and never runs again (so an owner clears it
  /// before what the callback touches goes away). Thread-safe; empty: none.
  void SetOnCompletion(std::function<void(const Completion&)> callback);

  /// Drops queued actions and waits up to options.stop_timeout for running ones. Idempotent.
  /// Returns false when some action was still running at the deadline; the destructor then
  /// still joins it (every action is bounded by its client's own timeouts).
  bool Stop();

 private:
  struct Job {
    std::string cluster;
    ActionContext context;
    Action action;
    uint64_t term = 0;  ///< the leadership term it was planned in (with a fence)
  };
  /// The fence allows `job` to start now.
  bool Allowed(const Job& job) const;
  /// Journals that `job` was not started because its term has passed.
  void Abandon(const Job& job);
  static std::string KeyOf(const std::string& cluster, const Action& action);
  void WorkerLoop(Lane lane);
  /// Queues `key` as ready in the lane of its next job. Requires mu_.
  void MarkReadyLocked(const std::string& key);
  /// Runs one action, journals it and queues its completion; true when it succeeded.
  bool Execute(const Job& job);

  Options options_;
  EventJournal& journal_;
  const Clock& clock_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_[2];  // by Lane
  std::condition_variable idle_cv_;
  std::map<std::string, std::deque<Job>> queues_;  // by key: queued, not yet running
  std::set<std::string> running_;                  // keys with an action in progress
  std::deque<std::string> ready_[2];  // by Lane of the next job: queued work, nothing running
  std::map<std::string, std::vector<Completion>> completions_;  // by cluster
  bool stopping_ = false;
  std::vector<std::thread> workers_;

  // Held while the callback runs, so that clearing it waits for a call in progress.
  std::mutex callback_mu_;
  std::function<void(const Completion&)> on_completion_;
};

}  // namespace ra::autoscaler
