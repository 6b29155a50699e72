#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "autoscaler/planner_internal.h"
#include "autoscaler/reconcile.h"
#include "core/duration.h"

// Golden snapshots: which one new replicas are cloned from, when to take one, which to prune.
namespace ra::autoscaler::planner {

namespace {

std::vector<const openstack::SnapshotFacts*> SortedSnapshots(const Observed& observed) {
  std::vector<const openstack::SnapshotFacts*> sorted;
  for (const auto& snapshot : observed.snapshots) sorted.push_back(&snapshot);
  // Oldest first; one without a creation time counts as the oldest (its age is unknown).
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
    return a->created.value_or(TimePoint::min()) < b->created.value_or(TimePoint::min());
  });
  return sorted;
}

}  // namespace

SnapshotChoice ChooseSnapshot(const ClusterView& view, const ClusterMemory& memory) {
  SnapshotChoice choice;
  if (view.observed->snapshots_error) {
    choice.why_none =
        "golden snapshots could not be listed: " + view.observed->snapshots_error->ToString();
    return choice;
  }
  const auto sorted = SortedSnapshots(*view.observed);
  const openstack::SnapshotFacts* newest = nullptr;
  for (const auto* snapshot : sorted) {
    if (snapshot->status == "available") newest = snapshot;
  }
  if (newest == nullptr) {
    choice.why_none = "no golden snapshot yet";
    return choice;
  }
  const Duration max_age = view.cluster->snapshots.max_age;
  if (!newest->created) {
    choice.why_none = fmt::format(
        "no usable golden snapshot: the newest available ({}) has no creation time", newest->id);
    return choice;
  }
  const Duration age = Elapsed(*newest->created, view.now);
  if (age > max_age) {
    choice.why_none = fmt::format(
        "no usable golden snapshot: newest available is {} old, snapshots.max_age is {}",
        HumanDuration(age), HumanDuration(max_age));
    return choice;
  }
  if (const auto& streak = memory.streak; streak && *newest->created <= streak->since) {
    // The replica before failed for a PostgreSQL reason: the WAL its snapshot needs may be gone
    // from the primary, or the snapshot may hold an old primary's lost tail. Only a snapshot
    // taken after that failure is fresh enough.
    choice.why_none =
        streak->count >= 2
            ? fmt::format(
                  "creation blocked: {} replicas in a row failed ({}: {}); waiting for a "
                  "golden snapshot taken after {} (on schedule, or POST "
                  "/v1/clusters/{}/snapshot)",
                  streak->count, ToString(streak->reason), streak->message,
                  FormatTime(streak->since), view.cluster->name)
            : fmt::format("waiting for a golden snapshot taken after a replica failed ({}: {})",
                          ToString(streak->reason), streak->message);
    return choice;
  }
  choice.usable = newest;
  return choice;
}

std::string SnapshotLabel(const openstack::SnapshotFacts& snapshot) {
  return snapshot.name.empty() ? snapshot.id : snapshot.name;
}

namespace {

/// A new golden snapshot when one is due, asked for, or needed and none is being made.
void TakeSnapshotIfDue(const ClusterView& view, ClusterMemory& memory, bool need_for_replicas,
                       const std::vector<const openstack::SnapshotFacts*>& sorted, Plan& plan) {
  const Observed& observed = *view.observed;
  const config::Cluster& cluster = *view.cluster;
  const TimePoint now = view.now;
  const config::Snapshots& cfg = cluster.snapshots;

  // A request is pending until a snapshot that was not there when it was made is listed (in
  // any status); then the next one may be asked for at once, not only after snapshot_create.
  if (memory.snapshot_requested_at &&
      std::any_of(sorted.begin(), sorted.end(), [&](const openstack::SnapshotFacts* s) {
        return !memory.snapshot_ids_at_request.contains(s->id);
      })) {
    memory.snapshot_requested_at.reset();
  }
  bool creating = false;
  const openstack::SnapshotFacts* newest = nullptr;
  for (const auto* snapshot : sorted) {
    if (snapshot->status == "creating") creating = true;
    if (snapshot->status == "available") newest = snapshot;
  }

  std::string want;
  if (memory.snapshot_on_demand) {
    want = "asked for through the API";
  } else if (newest == nullptr) {
    want = "no golden snapshot yet";
  } else if (!newest->created) {
    want = "the newest snapshot has no creation time";
  } else if (Elapsed(*newest->created, now) > cfg.interval) {
    want = fmt::format("the newest snapshot is {} old (snapshots.interval is {})",
                       HumanDuration(Elapsed(*newest->created, now)), HumanDuration(cfg.interval));
  } else if (need_for_replicas) {
    want = "new replicas need a usable snapshot";
  }
  if (!want.empty() && !creating) {
    const auto& requested = memory.snapshot_requested_at;
    if (observed.donor_volume_id.empty()) {
      Block(plan, ActionKind::kTakeSnapshot, "",
            want + ", but the donor's data volume is not known");
    } else if (requested && Elapsed(*requested, now) < cluster.timeouts.snapshot_create) {
      Block(plan, ActionKind::kTakeSnapshot, "",
            fmt::format("{}, but one was requested {} ago and is not listed yet (snapshot_create "
                        "is {})",
                        want, HumanDuration(Elapsed(*requested, now)),
                        HumanDuration(cluster.timeouts.snapshot_create)));
    } else {
      Add(plan, Action{.kind = ActionKind::kTakeSnapshot,
                       .volume_id = observed.donor_volume_id,
                       .reason = want});
      memory.snapshot_requested_at = now;
      memory.snapshot_ids_at_request.clear();
      for (const auto* snapshot : sorted) memory.snapshot_ids_at_request.insert(snapshot->id);
      memory.snapshot_on_demand = false;
    }
  }
}

/// Error snapshots, and available ones beyond the `keep` newest, are deleted; never one a volume
/// is still being cloned from, nor the one new replicas would use.
void PruneSnapshots(const ClusterView& view, const ClusterMemory& memory,
                    const std::vector<const openstack::SnapshotFacts*>& sorted, Plan& plan) {
  const Observed& observed = *view.observed;
  const config::Snapshots& cfg = view.cluster->snapshots;
  std::set<std::string> in_use;
  for (const auto& replica : observed.replicas) {
    if (replica.volume && !replica.volume->snapshot_id.empty() &&
        (replica.volume->status == "creating" || replica.volume->status == "downloading")) {
      in_use.insert(replica.volume->snapshot_id);
    }
  }
  // A volume requested from a snapshot (its action queued or running) is not listed yet.
  std::set<std::string> listed_volumes;
  for (const auto& replica : observed.replicas) {
    if (replica.volume) listed_volumes.insert(replica.name);
  }
  for (const auto& [name, mem] : memory.replicas) {
    if (!mem.snapshot_id.empty() && listed_volumes.count(name) == 0) in_use.insert(mem.snapshot_id);
  }
  const SnapshotChoice usable = ChooseSnapshot(view, memory);
  const int keep = std::max(cfg.keep, 1);
  int kept = 0;
  for (auto it = sorted.rbegin(); it != sorted.rend(); ++it) {
    const openstack::SnapshotFacts& snapshot = **it;
    if (snapshot.status == "error") {
      if (in_use.count(snapshot.id) == 0) {
        Add(plan,
            Action{.kind = ActionKind::kDeleteSnapshot,
                   .snapshot_id = snapshot.id,
                   .reason = fmt::format("snapshot {} is in error", SnapshotLabel(snapshot))});
      }
      continue;
    }
    if (snapshot.status != "available") continue;
    if (kept < keep) {
      ++kept;
      continue;
    }
    if (&snapshot == usable.usable || in_use.count(snapshot.id) > 0) continue;
    Add(plan, Action{.kind = ActionKind::kDeleteSnapshot,
                     .snapshot_id = snapshot.id,
                     .reason = fmt::format("snapshot {} is older than the {} newest kept",
                                           SnapshotLabel(snapshot), keep)});
  }
}

}  // namespace

void PlanSnapshots(const ClusterView& view, const PlanInput& input, ClusterMemory& memory,
                   bool need_for_replicas, Plan& plan) {
  if (view.observed->snapshots_error || input.snapshot_busy) return;
  const auto sorted = SortedSnapshots(*view.observed);
  TakeSnapshotIfDue(view, memory, need_for_replicas, sorted, plan);
  // Deleting needs the cloud: a snapshot that a volume is still being cloned from stays.
  if (view.cloud_known) PruneSnapshots(view, memory, sorted, plan);
}
}  // namespace ra::autoscaler::planner
