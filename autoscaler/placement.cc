#include "autoscaler/placement.h"

#include <fmt/format.h>

namespace ra::autoscaler {

namespace {

enum class Tier { kNear = 0, kUnmeasured = 1, kFar = 2 };

Tier TierOf(const ZoneFacts& zone, const PlacementFacts& placement) {
  if (!placement.prefer_latency) return Tier::kNear;
  if (!zone.latency_seconds) return Tier::kUnmeasured;
  const double max = std::chrono::duration<double>(placement.max_latency).count();
  return *zone.latency_seconds <= max ? Tier::kNear : Tier::kFar;
}

/// True when `a` is the better place than `b` (both not backed off).
bool Better(const ZoneFacts& a, const ZoneFacts& b, const PlacementFacts& placement) {
  const Tier ta = TierOf(a, placement);
  const Tier tb = TierOf(b, placement);
  if (ta != tb) return ta < tb;
  // Far zones: the nearest first, whatever they hold; elsewhere spread first.
  const bool by_latency_first = ta == Tier::kFar;
  const double la = a.latency_seconds.value_or(0);
  const double lb = b.latency_seconds.value_or(0);
  if (by_latency_first && la != lb) return la < lb;
  if (a.active != b.active) return a.active < b.active;
  if (placement.prefer_latency && la != lb) return la < lb;
  return false;  // the given order on ties
}

std::string Millis(double seconds) { return fmt::format("{:.1f} ms", seconds * 1000); }

}  // namespace

ZoneChoice PlaceReplica(const std::vector<ZoneFacts>& zones, const PlacementFacts& placement) {
  const ZoneFacts* best = nullptr;
  std::vector<std::string> skipped;
  for (const ZoneFacts& zone : zones) {
    if (!zone.backed_off.empty()) {
      skipped.push_back(zone.backed_off);
      continue;
    }
    if (best == nullptr || Better(zone, *best, placement)) best = &zone;
  }
  ZoneChoice choice;
  if (best == nullptr) {
    choice.why = fmt::format("every zone is backed off: {}", fmt::join(skipped, "; "));
    return choice;
  }
  choice.zone = best->zone;
  if (TierOf(*best, placement) == Tier::kFar) {
    choice.why = fmt::format(
        "zone {} is {} from the primary, over max_latency {}, but no nearer zone can take it",
        best->zone, Millis(*best->latency_seconds),
        Millis(std::chrono::duration<double>(placement.max_latency).count()));
  }
  return choice;
}

}  // namespace ra::autoscaler
