#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autoscaler/reconcile.h"
#include "core/clock.h"

/// Time to serve: for each replica this service creates, the time from the cycle that decided to
/// create it (the plan's kCreateVolume) to the cycle that first sees it serving. The decision
/// times live in the cluster's ClusterIntent::decided, which the IntentStore keeps (state.json,
/// or etcd with ha), so a restart or a takeover neither loses a pending decision nor observes a
/// replica twice: an observation is made only once the store no longer holds its decision.
namespace ra::autoscaler {

struct TimeToServe {
  /// Replicas seen serving for the first time, with their seconds since the decision: to be
  /// observed once `decided` is saved.
  std::vector<std::pair<std::string, double>> served{};
  /// Seconds since the decision of each replica still wanted and not serving, by name.
  std::map<std::string, double> pending{};
  /// `decided` changed: save it (before observing `served`).
  bool changed = false;
};

/// Pure; called by the cycle after planning, with the plan it made. Updates `decided` and the
/// replicas' ReplicaMemory::seen_not_serving in `memory`:
///  - each kCreateVolume of `plan` records its replica's decision at `now` (the first one wins);
///  - a decided replica that serves (kServing, or kLagging: it served in between) is taken out
///    of `decided` and listed in `served`, if this process saw it not serving before; one first
///    seen already serving (after a restart or a takeover) is taken out unobserved, since when
///    it began serving is unknown; so is one whose decision lies after `now` (a clock step);
///  - a decided replica that is leaving or failed is taken out unobserved (no longer wanted; a
///    replacement has a decision of its own);
///  - when the cloud was read (`cloud_read`), a decided replica the plan does not show is gone
///    and taken out unobserved; when it was not, nothing is taken out for being unseen.
/// Foreign replicas are never decided.
TimeToServe TrackTimeToServe(std::map<std::string, TimePoint>& decided, ClusterMemory& memory,
                             const Plan& plan, bool cloud_read, TimePoint now);

}  // namespace ra::autoscaler
