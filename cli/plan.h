#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "policies/engine.h"
#include "policies/metrics_source.h"
#include "policies/spec.h"

namespace ra::autoscaler {

/// One cluster to plan for: its policies and how many replicas it has now.
struct PlanTarget {
  std::string cluster{};
  policies::ClusterPolicy policy{};
  int current = 0;
  std::string current_source{};  ///< where `current` came from, e.g. "--current"
};

struct PlanRow {
  std::string cluster{};
  std::string current_source{};
  TimePoint evaluated_at{};
  std::map<std::string, std::string> queries{};  ///< policy name -> PromQL
  policies::Decision decision{};
};

/// Queries every metric policy of every target once (through `metrics`, which may block up to
/// its timeout per query) and evaluates the policies at `now` with an empty history (so
/// stabilization windows and rate limits see no past). Acts on nothing. A failed query is not an
/// error of the plan: it becomes that policy's kNoData verdict, as in the service.
std::vector<PlanRow> RunPlan(const std::vector<PlanTarget>& targets,
                             policies::MetricsSource& metrics, TimePoint now);

/// A table for people: one block per cluster with current, desired, the reason, then one line
/// per policy (name, verdict, desired, reason).
std::string FormatPlanTable(const std::vector<PlanRow>& rows);

/// The same as JSON, for scripts: {"clusters":[{"cluster":..., "current":..., "desired":...,
/// "recommended":..., "reason":..., "policies":[{"name","verdict","desired","reason","query"}]}]}.
nlohmann::json PlanJson(const std::vector<PlanRow>& rows);

}  // namespace ra::autoscaler
