#pragma once

#include <array>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/clock.h"

/// What a cluster's scaling policies say, as plain data. The configuration loader fills these in
/// (autoscaler/config.*); the engine (policies/engine.h) evaluates them. Defaults here are the
/// documented defaults (docs/configuration.md).
namespace ra::policies {

using namespace std::chrono_literals;

/// How a target-tracking metric relates to the replica count.
enum class ValueKind {
  kPerReplica,  ///< the query yields the average per replica: desired = ceil(current * value /
                ///< target)
  kTotal,       ///< the query yields a cluster total: desired = ceil(value / target)
};

/// Keeps a metric near a target by sizing the cluster proportionally.
struct TargetTracking {
  std::string query{};  ///< PromQL; must yield exactly one value
  double target = 0;    ///< > 0
  ValueKind value_kind = ValueKind::kPerReplica;
  /// No change while |value / target - 1| <= tolerance (a fraction, 0.1 = 10 %).
  double tolerance = 0.1;
};

enum class AdjustmentType {
  kChangeCount,    ///< add (positive) or remove (negative) this many replicas
  kPercentChange,  ///< add or remove this percentage of the current count, at least one replica
  kExactCount,     ///< set the count to this many replicas
};

/// One band of a step policy: applies when lower <= value < upper.
struct Step {
  std::optional<double> lower{};  ///< inclusive; absent means no lower bound
  std::optional<double> upper{};  ///< exclusive; absent means no upper bound
  AdjustmentType type = AdjustmentType::kChangeCount;
  double adjustment = 0;
};

/// Thresholds on a metric mapped to changes. Bands must not overlap; a value in no band holds.
struct StepScaling {
  std::string query{};  ///< PromQL; must yield exactly one value
  std::vector<Step> steps{};
};

/// A recurring window of local time during which the cluster keeps at least `min_replicas`.
struct ScheduleWindow {
  std::string name{};          ///< for verdicts and logs, e.g. "business-hours"
  std::array<bool, 7> days{};  ///< Monday = 0 ... Sunday = 6; the day the window starts
  int start_minute = 0;        ///< minutes after local midnight, 0..1439
  int end_minute = 0;          ///< end <= start means the window runs past midnight
  int min_replicas = 0;
};

/// Capacity by the calendar. Outside every window the policy abstains.
struct Scheduled {
  std::string time_zone = "UTC";  ///< IANA name, e.g. "Europe/Moscow"
  std::vector<ScheduleWindow> windows{};
};

struct Policy {
  std::string name{};  ///< unique within the cluster
  std::variant<TargetTracking, StepScaling, Scheduled> rule{};
};

/// At most `value` replicas (or `value` percent of the current count) per `period`.
struct RateLimit {
  enum class Type { kReplicas, kPercent };
  Type type = Type::kReplicas;
  int value = 0;
  Duration period = 60s;
};

/// Which rate limit applies when several are configured.
enum class SelectPolicy {
  kMax,       ///< the one allowing the largest change
  kMin,       ///< the one allowing the smallest change
  kDisabled,  ///< no change in this direction at all
};

struct ScalingRules {
  /// A change in this direction happens only if every recommendation in the window agrees:
  /// scale-up takes the lowest recommendation of the window, scale-down the highest.
  Duration stabilization_window = 0s;
  std::vector<RateLimit> limits{};  ///< empty: no rate limit
  SelectPolicy select = SelectPolicy::kMax;
};

struct Behavior {
  ScalingRules scale_up{0s, {{RateLimit::Type::kReplicas, 4, 60s}}, SelectPolicy::kMax};
  ScalingRules scale_down{300s, {{RateLimit::Type::kReplicas, 1, 60s}}, SelectPolicy::kMax};
};

enum class MissingDataAction {
  kHold,      ///< keep the current count (and never go below it)
  kFallback,  ///< go to fallback_replicas, but never below the current count
};

/// What happens when a metric query fails, returns nothing, returns NaN/Inf, or is stale.
/// Missing data never scales in.
struct MissingData {
  MissingDataAction action = MissingDataAction::kHold;
  int fallback_replicas = 0;
  /// A sample older than this counts as missing.
  Duration max_age = 5min;
};

struct ClusterPolicy {
  int min_replicas = 0;
  int max_replicas = 0;
  std::vector<Policy> policies{};
  Behavior behavior{};
  MissingData missing_data{};
};

/// A replica count set by an operator through the API. While it has not expired it replaces the
/// policies' verdict (still bounded by min/max), bypassing stabilization and rate limits.
struct ManualOverride {
  int replicas = 0;
  std::optional<TimePoint> expires_at{};  ///< absent: until cleared
  std::string reason{};
};

}  // namespace ra::policies
