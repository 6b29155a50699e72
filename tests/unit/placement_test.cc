#include "autoscaler/placement.h"

#include <gtest/gtest.h>

namespace ra::autoscaler {
namespace {

using namespace std::chrono_literals;

ZoneFacts Zone(std::string name, int active, std::optional<double> latency_ms = std::nullopt,
               std::string backed_off = "") {
  ZoneFacts z;
  z.zone = std::move(name);
  z.active = active;
  if (latency_ms) z.latency_seconds = *latency_ms / 1000.0;
  z.backed_off = std::move(backed_off);
  return z;
}

PlacementFacts Latency(Duration max = 20ms) {
  PlacementFacts p;
  p.prefer_latency = true;
  p.max_latency = max;
  return p;
}

struct Case {
  std::string name;
  std::vector<ZoneFacts> zones;
  bool prefer_latency = false;  // with max_latency 20 ms
  std::optional<std::string> want;
};

TEST(Placement, PicksTheZoneEachRuleSays) {
  const std::vector<Case> cases = {
      {"spread: fewest active", {Zone("az1", 2), Zone("az2", 0), Zone("az3", 1)}, false, "az2"},
      {"spread: given order on ties", {Zone("az1", 1), Zone("az2", 1)}, false, "az1"},
      {"spread ignores latency", {Zone("az1", 1, 1.0), Zone("az2", 0, 90.0)}, false, "az2"},
      {"spread skips backoff", {Zone("az1", 0, false, "quota"), Zone("az2", 3)}, false, "az2"},
      {"latency: near before far even when fuller",
       {Zone("az1", 0, 45.0), Zone("az2", 3, 2.0)},
       true,
       "az2"},
      {"latency: spread among near zones",
       {Zone("az1", 2, 1.0), Zone("az2", 1, 5.0), Zone("az3", 0, 50.0)},
       true,
       "az2"},
      {"latency: nearer on ties among near zones",
       {Zone("az1", 1, 9.0), Zone("az2", 1, 3.0)},
       true,
       "az2"},
      {"latency: unmeasured before far", {Zone("az1", 0, 30.0), Zone("az2", 4)}, true, "az2"},
      {"latency: near before unmeasured", {Zone("az1", 3, 10.0), Zone("az2", 0)}, true, "az1"},
      {"latency: far only when nothing else, nearest first",
       {Zone("az1", 0, 80.0), Zone("az2", 5, 30.0), Zone("az3", 0, 1.0, "capacity")},
       true,
       "az2"},
      {"latency: the bound is inclusive", {Zone("az1", 0, 20.0), Zone("az2", 0)}, true, "az1"},
      {"latency: near zone backed off spreads again",
       {Zone("az1", 0, 1.0, "quota"), Zone("az2", 1), Zone("az3", 0)},
       true,
       "az3"},
      {"every zone backed off",
       {Zone("az1", 0, false, "quota"), Zone("az2", 0, false, "x")},
       false,
       {}},
  };
  for (const Case& c : cases) {
    const ZoneChoice choice =
        PlaceReplica(c.zones, c.prefer_latency ? Latency() : PlacementFacts{});
    EXPECT_EQ(choice.zone, c.want) << c.name << ": " << choice.why;
  }
}

TEST(Placement, SaysWhyWhenBlockedOrFar) {
  const ZoneChoice blocked =
      PlaceReplica({Zone("az1", 0, false, "zone az1 backed off until 10:05 after quota")}, {});
  EXPECT_FALSE(blocked.zone);
  EXPECT_NE(blocked.why.find("every zone is backed off: zone az1 backed off"), std::string::npos)
      << blocked.why;

  const ZoneChoice far = PlaceReplica({Zone("az1", 0, 45.0)}, Latency());
  ASSERT_EQ(far.zone, "az1");
  EXPECT_NE(far.why.find("45.0 ms"), std::string::npos) << far.why;
  EXPECT_NE(far.why.find("max_latency 20.0 ms"), std::string::npos) << far.why;

  EXPECT_TRUE(PlaceReplica({Zone("az1", 0, 5.0)}, Latency()).why.empty());
}

}  // namespace
}  // namespace ra::autoscaler
