#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/duration.h"
#include "policies/engine.h"
#include "tests/unit/policy_test_util.h"

namespace ra::policies {
namespace {

using namespace std::chrono_literals;
using namespace test_util;
using ::testing::HasSubstr;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------
// ToReading and Queries

QueryResult Vector(std::vector<double> values, TimePoint at = kNow) {
  QueryResult r;
  int i = 0;
  for (double v : values) {
    r.series.push_back(Series{{{"instance", "replica-" + std::to_string(i++)}}, v, at});
  }
  return r;
}

TEST(ToReading, OneFreshSampleIsAValue) {
  Reading r = ToReading(Vector({42.5}, kNow - 10s), kNow, 5min);
  ASSERT_FALSE(r.error) << r.error->message;
  ASSERT_TRUE(r.value);
  EXPECT_EQ(*r.value, 42.5);
  EXPECT_EQ(r.sampled_at, kNow - 10s);

  QueryResult scalar;
  scalar.type = QueryResult::Type::kScalar;
  scalar.series.push_back(Series{{}, 7, kNow});
  EXPECT_EQ(ToReading(scalar, kNow, 5min).value, 7.0);
}

TEST(ToReading, EveryUnusableAnswerIsASpecificError) {
  struct Case {
    const char* name;
    Result<QueryResult> answer;
    ErrorKind kind;
    const char* says;
  };
  const Case cases[] = {
      {"failed query", Fail(ErrorKind::kTimeout, "no answer within 5s"), ErrorKind::kTimeout,
       "query failed (timeout): no answer within 5s"},
      {"bad query", Fail(ErrorKind::kBadRequest, "parse error at char 5"), ErrorKind::kBadRequest,
       "parse error at char 5"},
      {"empty vector", Vector({}), ErrorKind::kNotFound, "no series"},
      {"three series", Vector({1, 2, 3}), ErrorKind::kBadRequest,
       "returned 3 series (first {instance=\"replica-0\"}); aggregate it to one, e.g. sum(...)"},
      {"NaN", Vector({kNaN}), ErrorKind::kTransient, "returned nan"},
      {"+Inf", Vector({kInf}), ErrorKind::kTransient, "returned inf"},
      {"-Inf", Vector({-kInf}), ErrorKind::kTransient, "returned -inf"},
      {"stale", Vector({5}, kNow - 5min - 1ms), ErrorKind::kTransient,
       "the sample is 5m1ms old (max_age 5m)"},
  };
  for (const Case& c : cases) {
    Reading r = ToReading(c.answer, kNow, 5min);
    EXPECT_FALSE(r.value) << c.name;
    ASSERT_TRUE(r.error) << c.name;
    EXPECT_EQ(r.error->kind, c.kind) << c.name;
    EXPECT_THAT(r.error->message, HasSubstr(c.says)) << c.name;
  }
}

TEST(ToReading, SampleExactlyMaxAgeOldIsStillFresh) {
  EXPECT_TRUE(ToReading(Vector({5}, kNow - 5min), kNow, 5min).value);
  EXPECT_FALSE(ToReading(Vector({5}, kNow - 5min - 1ms), kNow, 5min).value);
  // A server clock slightly ahead of ours is not staleness.
  EXPECT_TRUE(ToReading(Vector({5}, kNow + 2s), kNow, 5min).value);
}

TEST(ToReading, WildTimestampsAreStaleNotUndefined) {
  Reading r = ToReading(Vector({5}, TimePoint::min()), kNow, 5min);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message, "the sample is more than 10 years old (max_age 5m)");
  EXPECT_TRUE(ToReading(Vector({5}, TimePoint::max()), kNow, 5min).value);
}

TEST(Queries, NamesEveryMetricPolicyAndNoSchedule) {
  ClusterPolicy c = Cluster(
      1, 5,
      {TargetPolicy("sessions", 30), StepPolicy("lag", {}),
       SchedulePolicy("hours", "Europe/Moscow", {Window("day", kWeekdays, 8, 0, 20, 0, 4)})});
  auto q = Queries(c);
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q.at("sessions"), "sum(pg_sessions) / count(up{job=\"replica\"})");
  EXPECT_EQ(q.at("lag"), "max(pg_replication_lag_seconds)");
}

TEST(VerdictKind, HasStableNames) {
  EXPECT_EQ(ToString(VerdictKind::kScaleUp), "scale_up");
  EXPECT_EQ(ToString(VerdictKind::kScaleDown), "scale_down");
  EXPECT_EQ(ToString(VerdictKind::kHold), "hold");
  EXPECT_EQ(ToString(VerdictKind::kAbstain), "abstain");
  EXPECT_EQ(ToString(VerdictKind::kNoData), "no_data");
}

// ---------------------------------------------------------------------------------------------
// Target tracking

TEST(TargetTracking, SizesProportionallyOutsideTheToleranceBand) {
  struct Case {
    const char* name;
    ValueKind kind;
    double target;
    double tolerance;
    int current;
    double value;
    VerdictKind want_kind;
    int want;
  };
  const ValueKind kPer = ValueKind::kPerReplica;
  const ValueKind kTot = ValueKind::kTotal;
  const Case cases[] = {
      {"per replica above", kPer, 30, 0.1, 2, 42, VerdictKind::kScaleUp, 3},  // ceil(2.8)
      {"upper tolerance edge holds", kPer, 30, 0.1, 4, 33, VerdictKind::kHold, 4},
      {"lower tolerance edge holds", kPer, 30, 0.1, 4, 27, VerdictKind::kHold, 4},
      {"just past upper edge", kPer, 30, 0.1, 4, 33.01, VerdictKind::kScaleUp, 5},  // ceil(4.4)
      {"just past lower edge rounds up to current", kPer, 30, 0.1, 4, 26.9, VerdictKind::kHold, 4},
      {"per replica below", kPer, 30, 0.1, 4, 15, VerdictKind::kScaleDown, 2},
      {"exact multiple does not round up", kPer, 30, 0.1, 3, 40, VerdictKind::kScaleUp, 4},
      {"zero tolerance", kPer, 30, 0, 10, 30.3, VerdictKind::kScaleUp, 11},
      {"current 0 sizes from one replica", kPer, 30, 0.1, 0, 10, VerdictKind::kScaleUp, 1},
      {"current 0 inside band still scales", kPer, 30, 0.1, 0, 31, VerdictKind::kScaleUp, 2},
      {"current 0 no load", kPer, 30, 0.1, 0, 0, VerdictKind::kHold, 0},
      {"no load scales to zero", kPer, 30, 0.1, 3, 0, VerdictKind::kScaleDown, 0},
      {"negative value is no load", kPer, 30, 0.1, 3, -5, VerdictKind::kScaleDown, 0},
      {"total above", kTot, 30, 0.1, 2, 100, VerdictKind::kScaleUp, 4},  // ceil(3.33)
      {"total inside band", kTot, 30, 0.1, 2, 62, VerdictKind::kHold, 2},
      {"total below", kTot, 30, 0.1, 6, 50, VerdictKind::kScaleDown, 2},
      {"total from zero", kTot, 30, 0.1, 0, 31, VerdictKind::kScaleUp, 2},
  };
  for (const Case& c : cases) {
    ClusterPolicy cluster = Cluster(0, 100, {TargetPolicy("tt", c.target, c.kind, c.tolerance)});
    Decision d = Evaluate(cluster, {}, Input(c.current, {{"tt", Value(c.value)}}));
    ASSERT_EQ(d.verdicts.size(), 1u) << c.name;
    const Verdict& v = d.verdicts[0];
    EXPECT_EQ(v.kind, c.want_kind) << c.name << ": " << v.reason;
    EXPECT_EQ(v.desired, c.want) << c.name << ": " << v.reason;
    EXPECT_EQ(d.desired, c.want) << c.name << ": " << d.reason;
  }
}

TEST(TargetTracking, ReasonsCarryTheFigures) {
  ClusterPolicy cluster = Cluster(0, 100, {TargetPolicy("sessions", 30)});
  Decision d = Evaluate(cluster, {}, Input(2, {{"sessions", Value(42)}}));
  EXPECT_EQ(d.verdicts[0].reason, "42.0 per replica > target 30.0 ±10%: 2 -> 3");
  EXPECT_EQ(d.reason, "sessions wants 3 (42.0 per replica > target 30.0 ±10%)");

  d = Evaluate(cluster, {}, Input(4, {{"sessions", Value(31)}}));
  EXPECT_EQ(d.verdicts[0].reason, "31.0 per replica within target 30.0 ±10%: hold at 4");
}

TEST(TargetTracking, AbsurdValuesAndTargetsDoNotCrash) {
  ClusterPolicy huge = Cluster(1, 50, {TargetPolicy("tt", 30)});
  Decision d = Evaluate(huge, {}, Input(3, {{"tt", Value(1e300)}}));
  EXPECT_EQ(d.desired, 50);
  EXPECT_THAT(d.reason, HasSubstr("capped at 50 by max_replicas"));

  ClusterPolicy zero_target = Cluster(1, 50, {TargetPolicy("tt", 0)});
  d = Evaluate(zero_target, {}, Input(3, {{"tt", Value(10)}}));
  EXPECT_EQ(d.verdicts[0].kind, VerdictKind::kAbstain);
  EXPECT_THAT(d.verdicts[0].reason, HasSubstr("target must be a positive number"));
  EXPECT_EQ(d.desired, 3);
}

// ---------------------------------------------------------------------------------------------
// Step scaling

TEST(StepScaling, BandsAndAdjustments) {
  using T = AdjustmentType;
  const std::optional<double> none;
  struct Case {
    const char* name;
    std::vector<Step> steps;
    int current;
    double value;
    VerdictKind want_kind;
    std::optional<int> want;
  };
  const std::vector<Step> bands = {
      {none, 20.0, T::kChangeCount, -1},
      {20.0, 50.0, T::kChangeCount, 0},
      // 50..70 is in no band
      {70.0, 90.0, T::kChangeCount, 2},
      {90.0, none, T::kExactCount, 10},
  };
  auto percent = [&](double p) { return std::vector<Step>{{none, none, T::kPercentChange, p}}; };
  const Case cases[] = {
      {"below every bound", bands, 3, 5, VerdictKind::kScaleDown, 2},
      {"lower bound inclusive", bands, 3, 20, VerdictKind::kHold, 3},
      {"upper bound exclusive", bands, 3, 50, VerdictKind::kAbstain, std::nullopt},
      {"gap between bands", bands, 3, 60, VerdictKind::kAbstain, std::nullopt},
      {"change count", bands, 3, 70, VerdictKind::kScaleUp, 5},
      {"exact count", bands, 3, 1e6, VerdictKind::kScaleUp, 10},
      {"exact count down", bands, 12, 95, VerdictKind::kScaleDown, 10},
      {"remove from zero stays zero", bands, 0, 1, VerdictKind::kHold, 0},
      {"+10% of 3 is at least one", percent(10), 3, 0, VerdictKind::kScaleUp, 4},
      {"+50% of 3 rounds away from zero", percent(50), 3, 0, VerdictKind::kScaleUp, 5},
      {"+40% of 3 rounds away from zero", percent(40), 3, 0, VerdictKind::kScaleUp, 5},
      {"+30% of 10 is exactly 3", percent(30), 10, 0, VerdictKind::kScaleUp, 13},
      {"+100% of 4 doubles", percent(100), 4, 0, VerdictKind::kScaleUp, 8},
      {"-10% of 3 removes one", percent(-10), 3, 0, VerdictKind::kScaleDown, 2},
      {"-50% of 3 rounds away from zero", percent(-50), 3, 0, VerdictKind::kScaleDown, 1},
      {"-40% of 3 rounds away from zero", percent(-40), 3, 0, VerdictKind::kScaleDown, 1},
      {"+50% of 0 adds one", percent(50), 0, 0, VerdictKind::kScaleUp, 1},
      {"-50% of 0 stays at 0", percent(-50), 0, 0, VerdictKind::kHold, 0},
      {"-300% never goes negative", percent(-300), 4, 0, VerdictKind::kScaleDown, 0},
      {"no bands at all", {}, 3, 0, VerdictKind::kAbstain, std::nullopt},
  };
  for (const Case& c : cases) {
    ClusterPolicy cluster = Cluster(0, 100, {StepPolicy("step", c.steps)});
    Decision d = Evaluate(cluster, {}, Input(c.current, {{"step", Value(c.value)}}));
    const Verdict& v = d.verdicts.at(0);
    EXPECT_EQ(v.kind, c.want_kind) << c.name << ": " << v.reason;
    EXPECT_EQ(v.desired, c.want) << c.name << ": " << v.reason;
    // An abstaining only policy holds the current count.
    EXPECT_EQ(d.desired, c.want.value_or(c.current)) << c.name << ": " << d.reason;
  }
}

TEST(StepScaling, ReasonNamesTheBand) {
  ClusterPolicy cluster = Cluster(
      0, 100, {StepPolicy("lag", {{70.0, std::nullopt, AdjustmentType::kPercentChange, 50}})});
  Decision d = Evaluate(cluster, {}, Input(3, {{"lag", Value(75)}}));
  EXPECT_EQ(d.verdicts[0].reason, "value 75.0 in [70.0, +inf): +50% of 3 is +2: 3 -> 5");
  d = Evaluate(cluster, {}, Input(3, {{"lag", Value(12)}}));
  EXPECT_EQ(d.verdicts[0].reason, "value 12.0 is in no step band");
  EXPECT_EQ(d.reason, "every policy abstains, hold at 3");
}

// ---------------------------------------------------------------------------------------------
// Several policies, bounds

TEST(Combination, LargestWishWinsAndEveryVerdictIsKept) {
  ClusterPolicy cluster =
      Cluster(1, 20,
              {TargetPolicy("cpu", 0.6), TargetPolicy("sessions", 30),
               StepPolicy("lag", {{10.0, std::nullopt, AdjustmentType::kChangeCount, 1}})});
  Decision d = Evaluate(
      cluster, {}, Input(4, {{"cpu", Value(0.3)}, {"sessions", Value(45)}, {"lag", Value(2)}}));
  ASSERT_EQ(d.verdicts.size(), 3u);
  EXPECT_EQ(d.verdicts[0].policy, "cpu");
  EXPECT_EQ(d.verdicts[0].desired, 2);
  EXPECT_EQ(d.verdicts[1].policy, "sessions");
  EXPECT_EQ(d.verdicts[1].desired, 6);
  EXPECT_EQ(d.verdicts[2].kind, VerdictKind::kAbstain);
  EXPECT_EQ(d.recommended, 6);
  EXPECT_EQ(d.desired, 6);
  EXPECT_EQ(d.reason, "sessions wants 6 (45.0 per replica > target 30.0 ±10%)");
}

TEST(Combination, ScaleDownWhenEveryOpinionAgrees) {
  ClusterPolicy cluster = Cluster(1, 20, {TargetPolicy("cpu", 0.6), TargetPolicy("sessions", 30)});
  Decision d = Evaluate(cluster, {}, Input(8, {{"cpu", Value(0.3)}, {"sessions", Value(10)}}));
  EXPECT_EQ(d.desired, 4);
  EXPECT_THAT(d.reason, HasSubstr("cpu wants 4"));
}

TEST(Combination, NoPoliciesHold) {
  Decision d = Evaluate(Cluster(1, 5, {}), {}, Input(3, {}));
  EXPECT_EQ(d.desired, 3);
  EXPECT_EQ(d.reason, "no policies, hold at 3");
}

TEST(Bounds, MinAndMaxApplyToTheRecommendation) {
  struct Case {
    const char* name;
    int min, max, current;
    double value;
    int want;
    const char* says;
  };
  const Case cases[] = {
      {"capped", 1, 10, 5, 300, 10, "capped at 10 by max_replicas"},
      {"raised", 2, 10, 5, 0, 2, "raised to 2 by min_replicas"},
      {"min equals max above", 3, 3, 3, 300, 3, "capped at 3 by max_replicas"},
      {"min equals max below", 3, 3, 3, 0, 3, "raised to 3 by min_replicas"},
      {"current above max comes down", 1, 4, 9, 30, 4, "capped at 4 by max_replicas"},
      {"current 0 raised to min", 2, 10, 0, 0, 2, "raised to 2 by min_replicas"},
  };
  for (const Case& c : cases) {
    ClusterPolicy cluster = Cluster(c.min, c.max, {TargetPolicy("tt", 30)});
    Decision d = Evaluate(cluster, {}, Input(c.current, {{"tt", Value(c.value)}}));
    EXPECT_EQ(d.recommended, c.want) << c.name;
    EXPECT_EQ(d.desired, c.want) << c.name;
    EXPECT_THAT(d.reason, HasSubstr(c.says)) << c.name;
  }
}

// ---------------------------------------------------------------------------------------------
// Manual override

TEST(ManualOverride, WinsWhileUnexpiredBoundedAndBypassingBehaviour) {
  ClusterPolicy cluster = Cluster(1, 10, {TargetPolicy("tt", 30)}, Behavior{});  // defaults
  struct Case {
    const char* name;
    int replicas;
    std::optional<TimePoint> expires;
    bool active;
    int want;
  };
  const Case cases[] = {
      // The default behaviour would allow only +4 from 1, and the policy wants 2.
      {"unexpired", 8, kNow + 1s, true, 8},        {"until cleared", 8, std::nullopt, true, 8},
      {"bounded by max", 50, kNow + 1h, true, 10}, {"bounded by min", 0, kNow + 1h, true, 1},
      {"expires exactly now", 8, kNow, false, 2},  {"expired", 8, kNow - 1s, false, 2},
  };
  for (const Case& c : cases) {
    EvaluationInput in = Input(1, {{"tt", Value(45)}});
    in.manual = ManualOverride{c.replicas, c.expires, "load test"};
    Decision d = Evaluate(cluster, {}, in);
    EXPECT_EQ(d.override_active, c.active) << c.name;
    EXPECT_EQ(d.desired, c.want) << c.name << ": " << d.reason;
    EXPECT_EQ(d.recommended, 2) << c.name;  // the policies' view is still reported
    ASSERT_EQ(d.verdicts.size(), 1u) << c.name;
    if (c.active) {
      EXPECT_THAT(d.reason,
                  HasSubstr("manual override to " + std::to_string(c.replicas) + " (load test)"))
          << c.name;
    } else {
      EXPECT_THAT(d.reason, HasSubstr("manual override to 8 expired at " + FormatTime(*c.expires) +
                                      " and is ignored"))
          << c.name;
    }
  }
}

TEST(ManualOverride, MayScaleInEvenWithoutData) {
  ClusterPolicy cluster = Cluster(1, 10, {TargetPolicy("tt", 30)});
  EvaluationInput in = Input(6, {});
  in.manual = ManualOverride{2, kNow + 1h, "maintenance"};
  Decision d = Evaluate(cluster, {}, in);
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.verdicts[0].kind, VerdictKind::kNoData);
}

// ---------------------------------------------------------------------------------------------
// Missing data

TEST(MissingData, NeverScalesInAndFallbackOnlyRaises) {
  Reading failed;
  failed.sampled_at = kNow;
  failed.error = Error{ErrorKind::kTimeout, "query failed (timeout): no answer within 5s"};
  Reading nan = Value(kNaN);
  Reading stale = Value(10, kNow - 6min);
  Reading empty;
  empty.sampled_at = kNow;
  struct Case {
    const char* name;
    std::map<std::string, Reading> readings;
    MissingDataAction action;
    int fallback;
    int current;
    int want;
    const char* says;
  };
  const Case cases[] = {
      {"missing entry holds",
       {{"cpu", Value(0.1)}},
       MissingDataAction::kHold,
       0,
       5,
       5,
       "no reading was taken"},
      {"failed query holds",
       {{"cpu", Value(0.1)}, {"sessions", failed}},
       MissingDataAction::kHold,
       0,
       5,
       5,
       "no answer within 5s"},
      {"NaN holds",
       {{"cpu", Value(0.1)}, {"sessions", nan}},
       MissingDataAction::kHold,
       0,
       5,
       5,
       "the value is nan"},
      {"stale holds",
       {{"cpu", Value(0.1)}, {"sessions", stale}},
       MissingDataAction::kHold,
       0,
       5,
       5,
       "the sample is 6m old (max_age 5m)"},
      {"no value holds",
       {{"cpu", Value(0.1)}, {"sessions", empty}},
       MissingDataAction::kHold,
       0,
       5,
       5,
       "has no value"},
      {"fallback above current",
       {{"cpu", Value(0.1)}},
       MissingDataAction::kFallback,
       7,
       5,
       7,
       "so the fallback 7"},
      {"fallback below current holds",
       {{"cpu", Value(0.1)}},
       MissingDataAction::kFallback,
       3,
       5,
       5,
       "never scales in"},
      {"another policy still scales out",
       {{"cpu", Value(1.2)}},
       MissingDataAction::kHold,
       0,
       5,
       10,
       "cpu wants 10"},
      {"fallback capped by max",
       {},
       MissingDataAction::kFallback,
       50,
       5,
       12,
       "capped at 12 by max_replicas"},
  };
  for (const Case& c : cases) {
    ClusterPolicy cluster =
        Cluster(1, 12, {TargetPolicy("cpu", 0.6), TargetPolicy("sessions", 30)});
    cluster.missing_data.action = c.action;
    cluster.missing_data.fallback_replicas = c.fallback;
    Decision d = Evaluate(cluster, {}, Input(c.current, c.readings));
    EXPECT_EQ(d.desired, c.want) << c.name << ": " << d.reason;
    EXPECT_THAT(d.reason, HasSubstr(c.says)) << c.name;
    EXPECT_EQ(d.verdicts.at(1).kind, VerdictKind::kNoData) << c.name;
    EXPECT_FALSE(d.verdicts.at(1).desired) << c.name;
    EXPECT_THAT(d.verdicts.at(1).reason, HasSubstr("no data: ")) << c.name;
  }
}

TEST(MissingData, ScheduleDoesNotNeedAReading) {
  ClusterPolicy cluster =
      Cluster(1, 12, {SchedulePolicy("always", "UTC", {Window("all", kEveryDay, 0, 0, 0, 0, 3)})});
  Decision d = Evaluate(cluster, {}, Input(1, {}));
  EXPECT_EQ(d.verdicts[0].kind, VerdictKind::kScaleUp);
  EXPECT_EQ(d.desired, 3);
}

TEST(MissingData, BehaviourCannotTakeItBelowCurrent) {
  // The baseline (last desired) is 3 while 5 exist, and the scale-up window remembers 3; without
  // the guard stabilization would settle at 3 and remove replicas on missing data.
  Behavior b = NoBehavior();
  b.scale_up.stabilization_window = 2min;
  ClusterPolicy cluster = Cluster(1, 12, {TargetPolicy("sessions", 30)}, b);
  History h;
  h.recommendations = {{kNow - 1min, 3}};
  h.scale_events = {{kNow - 1min, 4, 3}};
  Decision d = Evaluate(cluster, h, Input(5, {}));
  EXPECT_EQ(d.desired, 5) << d.reason;
}

// ---------------------------------------------------------------------------------------------
// Behaviour: stabilization windows

TEST(Stabilization, ScaleDownTakesTheHighestOfItsWindow) {
  Behavior b = NoBehavior();
  b.scale_down.stabilization_window = 5min;
  ClusterPolicy cluster = Cluster(1, 20, {TargetPolicy("tt", 30)}, b);
  struct Case {
    const char* name;
    std::vector<Recommendation> recs;
    int want;
  };
  const Case cases[] = {
      {"empty history follows", {}, 3},
      {"held by the highest", {{kNow - 4min, 8}, {kNow - 1min, 6}}, 8},
      {"partial: the highest is below the baseline", {{kNow - 2min, 5}}, 5},
      {"exactly the window ago is out", {{kNow - 5min, 8}, {kNow - 1min, 4}}, 4},
  };
  for (const Case& c : cases) {
    History h;
    h.recommendations = c.recs;
    h.scale_events = {{kNow - 10min, 2, 8}};  // baseline 8
    // 8 replicas at 10 sessions each want 3.
    Decision d = Evaluate(cluster, h, Input(8, {{"tt", Value(10)}}));
    EXPECT_EQ(d.recommended, 3) << c.name;
    EXPECT_EQ(d.desired, c.want) << c.name << ": " << d.reason;
    if (c.want != 3) {
      EXPECT_THAT(d.reason, HasSubstr("by the 5m scale_down stabilization window")) << c.name;
    }
  }
}

TEST(Stabilization, ScaleUpTakesTheLowestOfItsWindow) {
  Behavior b = NoBehavior();
  b.scale_up.stabilization_window = 1min;
  ClusterPolicy cluster = Cluster(1, 20, {TargetPolicy("tt", 30)}, b);
  struct Case {
    const char* name;
    std::vector<Recommendation> recs;
    int want;
  };
  const Case cases[] = {
      {"empty history follows", {}, 8},
      {"held by the lowest", {{kNow - 50s, 2}, {kNow - 20s, 6}}, 2},
      {"partial rise", {{kNow - 30s, 5}}, 5},
      {"exactly the window ago is out", {{kNow - 60s, 2}, {kNow - 30s, 7}}, 7},
  };
  for (const Case& c : cases) {
    History h;
    h.recommendations = c.recs;
    Decision d = Evaluate(cluster, h, Input(2, {{"tt", Value(120)}}));  // 2 * 120 / 30 = 8
    EXPECT_EQ(d.recommended, 8) << c.name;
    EXPECT_EQ(d.desired, c.want) << c.name << ": " << d.reason;
  }
}

TEST(Stabilization, DefaultBehaviourReactsUpAtOnceAndWaitsFiveMinutesDown) {
  ClusterPolicy cluster = Cluster(1, 20, {TargetPolicy("tt", 30)}, Behavior{});
  // Up: immediate (no window), rate limited to +4 per minute.
  Decision up = Evaluate(cluster, {}, Input(2, {{"tt", Value(45)}}));
  EXPECT_EQ(up.desired, 3);
  // Down: four minutes after wanting 6, still 6.
  History h;
  h.recommendations = {{kNow - 4min, 6}};
  Decision down = Evaluate(cluster, h, Input(6, {{"tt", Value(10)}}));
  EXPECT_EQ(down.desired, 6);
  h.recommendations = {{kNow - 5min - 1s, 6}};
  down = Evaluate(cluster, h, Input(6, {{"tt", Value(10)}}));
  EXPECT_EQ(down.desired, 5);  // the window passed; then -1 per minute
  EXPECT_THAT(down.reason,
              HasSubstr("limited to 5 by the scale_down rate limit of 1 replica per 1m"));
}

// ---------------------------------------------------------------------------------------------
// Behaviour: rate limits

RateLimit Replicas(int n, Duration period = 60s) {
  return RateLimit{RateLimit::Type::kReplicas, n, period};
}
RateLimit Percent(int p, Duration period = 60s) {
  return RateLimit{RateLimit::Type::kPercent, p, period};
}

TEST(RateLimit, ScaleUpLimitsAndSelection) {
  struct Case {
    const char* name;
    std::vector<RateLimit> limits;
    SelectPolicy select;
    std::vector<ScaleEvent> events;
    int current;
    int want;  // the policy always wants 40
  };
  const auto kMax = SelectPolicy::kMax;
  const auto kMin = SelectPolicy::kMin;
  const Case cases[] = {
      {"no limits", {}, kMax, {}, 10, 40},
      {"replicas", {Replicas(4)}, kMax, {}, 10, 14},
      {"percent", {Percent(50)}, kMax, {}, 10, 15},
      {"percent rounds up", {Percent(10)}, kMax, {}, 5, 6},
      {"percent from zero allows one", {Percent(100)}, kMax, {}, 0, 1},
      {"select max", {Replicas(4), Percent(50)}, kMax, {}, 10, 15},
      {"select min", {Replicas(4), Percent(50)}, kMin, {}, 10, 14},
      {"select max among three", {Replicas(2), Percent(100), Replicas(6)}, kMax, {}, 4, 10},
      {"select min among three", {Replicas(2), Percent(100), Replicas(6)}, kMin, {}, 4, 6},
      {"disabled", {Replicas(4)}, SelectPolicy::kDisabled, {}, 10, 10},
      {"disabled without limits", {}, SelectPolicy::kDisabled, {}, 10, 10},
      // 10 -> 13 thirty seconds ago: the period started at 10, +4 allows 14.
      {"budget partly used", {Replicas(4)}, kMax, {{kNow - 30s, 10, 13}}, 13, 14},
      {"budget used up holds", {Replicas(4)}, kMax, {{kNow - 30s, 9, 13}}, 13, 13},
      {"budget overdrawn never reverses", {Replicas(4)}, kMax, {{kNow - 30s, 5, 13}}, 13, 13},
      {"event exactly a period ago is out", {Replicas(4)}, kMax, {{kNow - 60s, 9, 13}}, 13, 17},
      {"percent of the period start", {Percent(50)}, kMax, {{kNow - 30s, 10, 13}}, 13, 15},
      {"a scale-down inside the period gives room",
       {Replicas(4)},
       kMax,
       {{kNow - 40s, 12, 10}},
       10,
       16},
      {"longer period sees more",
       {Replicas(4, 60s), Replicas(6, 10min)},
       kMin,
       {{kNow - 5min, 10, 14}, {kNow - 2min, 14, 16}},
       16,
       16},
  };
  for (const Case& c : cases) {
    Behavior b = NoBehavior();
    b.scale_up.limits = c.limits;
    b.scale_up.select = c.select;
    ClusterPolicy cluster = Cluster(0, 100, {TargetPolicy("tt", 10, ValueKind::kTotal)}, b);
    History h;
    h.scale_events = c.events;
    Decision d = Evaluate(cluster, h, Input(c.current, {{"tt", Value(400)}}));
    EXPECT_EQ(d.recommended, 40) << c.name;
    EXPECT_EQ(d.desired, c.want) << c.name << ": " << d.reason;
  }
}

TEST(RateLimit, ScaleDownLimitsAndSelection) {
  struct Case {
    const char* name;
    std::vector<RateLimit> limits;
    SelectPolicy select;
    std::vector<ScaleEvent> events;
    int current;
    int want;  // the policy always wants 1
  };
  const auto kMax = SelectPolicy::kMax;
  const auto kMin = SelectPolicy::kMin;
  const Case cases[] = {
      {"no limits", {}, kMax, {}, 10, 1},
      {"replicas", {Replicas(1)}, kMax, {}, 10, 9},
      {"percent", {Percent(50)}, kMax, {}, 10, 5},
      {"percent removes at least one", {Percent(10)}, kMax, {}, 3, 2},
      {"percent rounds away from zero", {Percent(25)}, kMax, {}, 10, 7},
      {"select max is the largest cut", {Replicas(1), Percent(50)}, kMax, {}, 10, 5},
      {"select min is the smallest cut", {Replicas(1), Percent(50)}, kMin, {}, 10, 9},
      {"disabled", {Replicas(1)}, SelectPolicy::kDisabled, {}, 10, 10},
      {"budget used", {Replicas(1)}, kMax, {{kNow - 30s, 10, 9}}, 9, 9},
      {"budget used, other limit free",
       {Replicas(1, 60s), Replicas(2, 15s)},
       kMax,
       {{kNow - 30s, 10, 9}},
       9,
       7},
  };
  for (const Case& c : cases) {
    Behavior b = NoBehavior();
    b.scale_down.limits = c.limits;
    b.scale_down.select = c.select;
    ClusterPolicy cluster = Cluster(1, 100, {TargetPolicy("tt", 10, ValueKind::kTotal)}, b);
    History h;
    h.scale_events = c.events;
    Decision d = Evaluate(cluster, h, Input(c.current, {{"tt", Value(5)}}));
    EXPECT_EQ(d.recommended, 1) << c.name;
    EXPECT_EQ(d.desired, c.want) << c.name << ": " << d.reason;
  }
}

TEST(RateLimit, AbsurdNumbersDoNotOverflow) {
  constexpr int kHuge = std::numeric_limits<int>::max();
  Behavior b = NoBehavior();
  b.scale_up.limits = {Replicas(kHuge), Percent(kHuge)};
  b.scale_down.limits = {Replicas(kHuge)};
  ClusterPolicy cluster = Cluster(0, kHuge, {TargetPolicy("tt", 1, ValueKind::kTotal)}, b);
  History h;
  h.scale_events = {{kNow - 1s, -kHuge, kHuge}, {kNow - 1s, kHuge, 0}, {kNow - 1s, 0, kHuge}};
  Decision up = Evaluate(cluster, h, Input(kHuge, {{"tt", Value(1e12)}}));
  EXPECT_GE(up.desired, 0);
  Decision down = Evaluate(cluster, h, Input(kHuge, {{"tt", Value(0)}}));
  EXPECT_GE(down.desired, 0);
  EvaluationInput in = Input(3, {{"tt", Value(3)}});
  in.manual = ManualOverride{kHuge, std::nullopt, ""};
  EXPECT_EQ(Evaluate(cluster, {}, in).desired, kHuge);
}

TEST(RateLimit, ReasonIsOneSentenceNamingPolicyAndLimit) {
  Behavior b = NoBehavior();
  b.scale_up.limits = {Replicas(1)};
  ClusterPolicy cluster = Cluster(1, 10, {TargetPolicy("sessions-per-replica", 30)}, b);
  Decision d = Evaluate(cluster, {}, Input(2, {{"sessions-per-replica", Value(70)}}));
  EXPECT_EQ(d.recommended, 5);
  EXPECT_EQ(d.desired, 3);
  EXPECT_EQ(d.reason,
            "sessions-per-replica wants 5 (70.0 per replica > target 30.0 ±10%); limited to 3 by "
            "the scale_up rate limit of 1 replica per 1m");
}

// ---------------------------------------------------------------------------------------------
// The baseline: replicas still being built

TEST(Baseline, ReplicasBeingBuiltDoNotUndoOrRepeatAScaleUp) {
  ClusterPolicy cluster = Cluster(1, 20, {TargetPolicy("tt", 30)}, Behavior{});
  History h;
  // Two exist; the previous decisions asked for 6 (4 more are being built).
  Decision d = Evaluate(cluster, h, Input(2, {{"tt", Value(90)}}));
  ASSERT_EQ(d.desired, 6);
  h = Record(cluster, h, d, kNow);
  ASSERT_EQ(h.scale_events.size(), 1u);
  EXPECT_EQ(h.scale_events[0].from, 2);
  EXPECT_EQ(h.scale_events[0].to, 6);

  // Thirty seconds later still two serve, still overloaded: desired stays 6 and nothing new is
  // recorded, so the rate limit is not consumed twice.
  d = Evaluate(cluster, h, Input(2, {{"tt", Value(90)}}, kNow + 30s));
  EXPECT_EQ(d.desired, 6) << d.reason;
  h = Record(cluster, h, d, kNow + 30s);
  EXPECT_EQ(h.scale_events.size(), 1u);

  // Load eases while they are built: the scale-down window keeps 6.
  d = Evaluate(cluster, h, Input(2, {{"tt", Value(30)}}, kNow + 60s));
  EXPECT_EQ(d.recommended, 2);
  EXPECT_EQ(d.desired, 6) << d.reason;
}

TEST(Baseline, NoOpinionAndNoDataHoldWhatTheClusterIsHeadingTo) {
  // Six were asked for ten minutes ago, two serve so far; with no opinion or no data the engine
  // keeps asking for six rather than cancelling the replicas being built.
  ClusterPolicy cluster =
      Cluster(1, 20, {StepPolicy("lag", {{100.0, std::nullopt, AdjustmentType::kChangeCount, 1}})});
  History h;
  h.scale_events = {{kNow - 10min, 2, 6}};
  Decision abstain = Evaluate(cluster, h, Input(2, {{"lag", Value(5)}}));
  EXPECT_EQ(abstain.desired, 6) << abstain.reason;
  EXPECT_EQ(abstain.reason, "every policy abstains, hold at 6");
  Decision no_data = Evaluate(cluster, h, Input(2, {}));
  EXPECT_EQ(no_data.desired, 6) << no_data.reason;
}

// ---------------------------------------------------------------------------------------------
// Record

TEST(Record, AppendsAndRecordsChangesOfTheDesiredCount) {
  ClusterPolicy cluster = Cluster(1, 20, {TargetPolicy("tt", 30)}, Behavior{});
  Decision d;
  d.current = 3;
  d.recommended = 5;
  d.desired = 5;
  History h = Record(cluster, {}, d, kNow);
  ASSERT_EQ(h.recommendations.size(), 1u);
  EXPECT_EQ(h.recommendations[0].at, kNow);
  EXPECT_EQ(h.recommendations[0].replicas, 5);
  ASSERT_EQ(h.scale_events.size(), 1u);
  EXPECT_EQ(h.scale_events[0].at, kNow);
  EXPECT_EQ(h.scale_events[0].from, 3);
  EXPECT_EQ(h.scale_events[0].to, 5);

  d.current = 5;  // no change: nothing to rate-limit
  h = Record(cluster, h, d, kNow + 30s);
  EXPECT_EQ(h.recommendations.size(), 2u);
  EXPECT_EQ(h.scale_events.size(), 1u);

  // Two of the five are still being built when eight are asked for: the change of the desired
  // count is 5 -> 8, whatever exists.
  d.current = 3;
  d.recommended = 8;
  d.desired = 8;
  h = Record(cluster, h, d, kNow + 45s);
  ASSERT_EQ(h.scale_events.size(), 2u);
  EXPECT_EQ(h.scale_events[1].from, 5);
  EXPECT_EQ(h.scale_events[1].to, 8);
}

TEST(Record, StaysBoundedAndKeepsWhatWindowsStillNeed) {
  ClusterPolicy cluster = Cluster(1, 20, {TargetPolicy("tt", 30)}, Behavior{});  // 5m, 1m
  History h;
  TimePoint t = kNow;
  for (int i = 0; i < 2000; ++i, t += 30s) {
    Decision d;
    d.current = 3 + i % 2;
    d.recommended = 3 + (i + 1) % 2;
    d.desired = d.recommended;  // flips every cycle: an event each time
    h = Record(cluster, std::move(h), d, t);
    ASSERT_LE(h.recommendations.size(), 10u);  // 5m of 30s cycles
    ASSERT_LE(h.scale_events.size(), 2u);      // 1m of 30s cycles
  }
  const TimePoint last = t - 30s;
  EXPECT_EQ(h.recommendations.front().at, last - 270s);  // the oldest still inside 5m
  EXPECT_EQ(h.recommendations.back().at, last);
}

TEST(Record, KeepsTheNewestEventWhateverItsAge) {
  ClusterPolicy cluster = Cluster(1, 20, {TargetPolicy("tt", 30)}, Behavior{});
  History h;
  h.scale_events = {{kNow - 3h, 2, 4}, {kNow - 2h, 4, 6}};
  Decision d;
  d.current = 6;
  d.recommended = 6;
  d.desired = 6;
  h = Record(cluster, h, d, kNow);
  ASSERT_EQ(h.scale_events.size(), 1u);
  EXPECT_EQ(h.scale_events[0].to, 6);
  EXPECT_TRUE(h.recommendations.size() == 1u);
}

}  // namespace
}  // namespace ra::policies
