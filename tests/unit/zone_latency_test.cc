#include "autoscaler/zone_latency.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ra::autoscaler {
namespace {

struct Case {
  std::string what;
  size_t samples;
  std::vector<std::pair<std::string, double>> added;
  std::string zone;
  std::optional<double> want;
};

TEST(ZoneLatency, MedianOfTheWindow) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<Case> cases = {
      {"unknown zone", 10, {{"az1", 0.002}}, "az2", std::nullopt},
      {"nothing added", 10, {}, "az1", std::nullopt},
      {"one sample", 10, {{"az1", 0.004}}, "az1", 0.004},
      {"odd count: the middle one",
       10,
       {{"az1", 0.009}, {"az1", 0.001}, {"az1", 0.003}},
       "az1",
       0.003},
      {"even count: mean of the two middle ones",
       10,
       {{"az1", 0.010}, {"az1", 0.002}, {"az1", 0.004}, {"az1", 0.100}},
       "az1",
       0.007},
      {"an outlier does not move it",
       10,
       {{"az1", 0.002}, {"az1", 0.002}, {"az1", 5.0}},
       "az1",
       0.002},
      {"window keeps the newest: oldest dropped",
       3,
       {{"az1", 1.0}, {"az1", 1.0}, {"az1", 0.001}, {"az1", 0.002}, {"az1", 0.003}},
       "az1",
       0.002},
      {"window of one: the last sample", 1, {{"az1", 0.5}, {"az1", 0.25}}, "az1", 0.25},
      {"window 0 is taken as 1", 0, {{"az1", 0.5}, {"az1", 0.25}}, "az1", 0.25},
      {"zones are separate windows",
       2,
       {{"az1", 0.001}, {"az2", 0.050}, {"az2", 0.070}, {"az1", 0.003}, {"az2", 0.090}},
       "az1",
       0.002},
      {"the other zone's window",
       2,
       {{"az1", 0.001}, {"az2", 0.050}, {"az2", 0.070}, {"az1", 0.003}, {"az2", 0.090}},
       "az2",
       0.080},
      {"negative and non-finite are not samples",
       10,
       {{"az1", -0.1}, {"az1", nan}, {"az1", inf}, {"az1", 0.006}},
       "az1",
       0.006},
      {"only invalid samples: no median", 10, {{"az1", -1.0}}, "az1", std::nullopt},
      {"zero is a valid sample", 10, {{"az1", 0.0}}, "az1", 0.0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ZoneLatency latency(c.samples);
    for (const auto& [zone, seconds] : c.added) latency.Add(zone, seconds);
    const std::optional<double> got = latency.Median(c.zone);
    ASSERT_EQ(got.has_value(), c.want.has_value());
    if (got) {
      EXPECT_DOUBLE_EQ(*got, *c.want);
    }
  }
}

TEST(ZoneLatency, MediansListsEveryZoneWithASample) {
  ZoneLatency latency(3);
  EXPECT_TRUE(latency.Medians().empty());
  latency.Add("az1", 0.001);
  latency.Add("az1", 0.003);
  latency.Add("az2", 0.040);
  latency.Add("az3", -1.0);  // ignored: az3 has no sample
  const std::map<std::string, double> want = {{"az1", 0.002}, {"az2", 0.040}};
  EXPECT_EQ(latency.Medians(), want);

  latency.Forget("az1");
  EXPECT_FALSE(latency.Median("az1").has_value());
  EXPECT_EQ(latency.Medians().size(), 1u);
}

TEST(ZoneLatency, DefaultWindowIsTenSamples) {
  ZoneLatency latency;
  EXPECT_EQ(latency.samples(), 10u);
  // Ten slow samples, then ten fast ones: only the fast ones remain.
  for (int i = 0; i < 10; ++i) latency.Add("az1", 1.0);
  for (int i = 0; i < 10; ++i) latency.Add("az1", 0.001);
  EXPECT_DOUBLE_EQ(*latency.Median("az1"), 0.001);
  // Nine fast and one slow: still fast; six slow of ten: slow.
  latency.Add("az1", 1.0);
  EXPECT_DOUBLE_EQ(*latency.Median("az1"), 0.001);
  for (int i = 0; i < 5; ++i) latency.Add("az1", 1.0);
  EXPECT_DOUBLE_EQ(*latency.Median("az1"), 1.0);
}

}  // namespace
}  // namespace ra::autoscaler
