#pragma once

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

#include <map>
#include <string>
#include <vector>

#include "core/clock.h"
#include "policies/engine.h"
#include "policies/spec.h"

// Builders shared by the policy engine's unit tests. Header-only so that the tests stay
// independent translation units picked up by the unit_tests glob.
namespace ra::policies::test_util {

using namespace std::chrono_literals;

/// An instant given as UTC wall-clock fields.
inline TimePoint Utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  return TimePoint(cctz::convert(cctz::civil_second(y, mo, d, h, mi, s), cctz::utc_time_zone()));
}

/// A fixed "now" for tests that do not care about the calendar: Monday 2026-03-02 12:00 UTC.
inline const TimePoint kNow = Utc(2026, 3, 2, 12, 0);

/// Behaviour that changes nothing, to look at verdicts and bounds alone.
inline Behavior NoBehavior() {
  Behavior b;
  b.scale_up = ScalingRules{0s, {}, SelectPolicy::kMax};
  b.scale_down = ScalingRules{0s, {}, SelectPolicy::kMax};
  return b;
}

inline Policy TargetPolicy(std::string name, double target, ValueKind kind = ValueKind::kPerReplica,
                           double tolerance = 0.1) {
  TargetTracking t;
  t.query = "sum(pg_sessions) / count(up{job=\"replica\"})";
  t.target = target;
  t.value_kind = kind;
  t.tolerance = tolerance;
  return Policy{std::move(name), t};
}

inline Policy StepPolicy(std::string name, std::vector<Step> steps) {
  StepScaling s;
  s.query = "max(pg_replication_lag_seconds)";
  s.steps = std::move(steps);
  return Policy{std::move(name), s};
}

inline Policy SchedulePolicy(std::string name, std::string zone,
                             std::vector<ScheduleWindow> windows) {
  Scheduled s;
  s.time_zone = std::move(zone);
  s.windows = std::move(windows);
  return Policy{std::move(name), s};
}

inline constexpr std::array<bool, 7> kWeekdays = {true, true, true, true, true, false, false};
inline constexpr std::array<bool, 7> kEveryDay = {true, true, true, true, true, true, true};

inline ScheduleWindow Window(std::string name, std::array<bool, 7> days, int start_hh, int start_mm,
                             int end_hh, int end_mm, int min_replicas) {
  return ScheduleWindow{std::move(name), days, start_hh * 60 + start_mm, end_hh * 60 + end_mm,
                        min_replicas};
}

inline ClusterPolicy Cluster(int min, int max, std::vector<Policy> policies,
                             Behavior behavior = NoBehavior()) {
  ClusterPolicy c;
  c.min_replicas = min;
  c.max_replicas = max;
  c.policies = std::move(policies);
  c.behavior = std::move(behavior);
  return c;
}

inline Reading Value(double v, TimePoint at = kNow) {
  Reading r;
  r.value = v;
  r.sampled_at = at;
  return r;
}

inline EvaluationInput Input(int current, std::map<std::string, Reading> readings,
                             TimePoint now = kNow) {
  EvaluationInput in;
  in.current_replicas = current;
  in.readings = std::move(readings);
  in.now = now;
  return in;
}

}  // namespace ra::policies::test_util
