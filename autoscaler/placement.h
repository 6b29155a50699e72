#pragma once

#include <optional>
#include <string>
#include <vector>

#include "autoscaler/reconcile.h"

/// Where a new replica goes: a pure function over what is known of each zone.
namespace ra::autoscaler {

/// One availability zone as placement sees it.
struct ZoneFacts {
  std::string zone{};        ///< "" lets the cloud choose (no zone known)
  int active = 0;            ///< the cluster's active replicas there, this plan's new ones included
  std::string backed_off{};  ///< non-empty: in backoff, and why
  std::optional<double> latency_seconds;  ///< measured round trip to the primary (median)
};

struct ZoneChoice {
  std::optional<std::string> zone{};  ///< none: no zone can take a replica now
  /// Why not (no zone), or a remark worth logging with the choice ("" when nothing is).
  std::string why{};
};

/// Picks the zone for one new replica. Zones in backoff are never picked.
///  - spread: the fewest active replicas first, the given order on ties;
///  - prefer_latency: zones measured within max_latency first (the fewest active first, the
///    nearer on ties), then zones not measured yet (fewest active first), and zones measured
///    over max_latency only when no other zone can take the replica (the nearest first).
ZoneChoice PlaceReplica(const std::vector<ZoneFacts>& zones, const PlacementFacts& placement);

}  // namespace ra::autoscaler
