#pragma once

// Shared by the planner's translation units (derive.cc, plan_actions.cc, snapshot_plan.cc);
// not part of the service's interface.

#include <string>
#include <string_view>
#include <vector>

#include "autoscaler/reconcile.h"

namespace ra::autoscaler::planner {

// Figures people read in log lines: "40 MiB", "30h12m", "4.2s".
std::string HumanBytes(int64_t bytes);
std::string HumanDuration(Duration d);
std::string HumanSeconds(double seconds);
double Seconds(Duration d);
/// `to - from`, bounded to a century either way (a cloud timestamp may sit at the clock's limits).
Duration Elapsed(TimePoint from, TimePoint to);
bool StartsWith(std::string_view text, std::string_view prefix);

/// "zone/flavor", the key of ClusterMemory::backoff.
std::string ZoneKey(const std::string& zone, const std::string& flavor);

/// A replica chosen to go: marked, never re-admitted unless the count needs it back.
void MarkLeaving(ReplicaState& item);
/// Where a leaving replica stands on its way out (draining, drained, deleting).
void DeriveLeaving(ReplicaState& item, const ClusterView& view);

// Several balancers (planner_text.cc). Each is empty or false when the cluster has one.
/// The balancers that answered and where `obs` is not admitted (absent, or not ready).
std::vector<std::string> NotAdmittedIn(const ObservedReplica& obs);
/// How many balancers `obs` serves in.
int ServingIn(const ObservedReplica& obs);
/// "lb1: serving, lb2: absent, lb3: no answer" for details and reasons.
std::string BalancersText(const ObservedReplica& obs);
/// "a, b and c"
std::string JoinNames(const std::vector<std::string>& names);

void Add(Plan& plan, Action action);
void Block(Plan& plan, ActionKind kind, std::string replica, std::string reason);

/// The zone's backoff while it is in force at `now`; null otherwise.
const ZoneBackoff* ActiveBackoff(const ClusterMemory& memory, const config::Cluster& cluster,
                                 const std::string& zone, TimePoint now);
std::string BackoffText(const std::string& zone, const ZoneBackoff& backoff);

// Golden snapshots (snapshot_plan.cc).
struct SnapshotChoice {
  const openstack::SnapshotFacts* usable = nullptr;
  std::string why_none{};  ///< when usable is null
};
/// The newest available snapshot not older than snapshots.max_age (and, after a replica failed
/// for a PostgreSQL reason, taken after that failure: ClusterMemory::streak), or why there is
/// none.
SnapshotChoice ChooseSnapshot(const ClusterView& view, const ClusterMemory& memory);
std::string SnapshotLabel(const openstack::SnapshotFacts& snapshot);
/// Takes a snapshot when one is due (or `need_for_replicas`), prunes old and error ones.
void PlanSnapshots(const ClusterView& view, const PlanInput& input, ClusterMemory& memory,
                   bool need_for_replicas, Plan& plan);

}  // namespace ra::autoscaler::planner
