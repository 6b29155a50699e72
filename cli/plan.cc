#include "cli/plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/duration.h"

namespace ra::autoscaler {

std::vector<PlanRow> RunPlan(const std::vector<PlanTarget>& targets,
                             policies::MetricsSource& metrics, TimePoint now) {
  std::vector<PlanRow> rows;
  rows.reserve(targets.size());
  for (const PlanTarget& target : targets) {
    PlanRow row;
    row.cluster = target.cluster;
    row.current_source = target.current_source;
    row.evaluated_at = now;
    row.queries = policies::Queries(target.policy);
    policies::EvaluationInput input;
    input.current_replicas = target.current;
    input.now = now;
    for (const auto& [name, query] : row.queries) {
      input.readings[name] =
          policies::ToReading(metrics.Query(query, now), now, target.policy.missing_data.max_age);
    }
    row.decision = policies::Evaluate(target.policy, policies::History{}, input);
    rows.push_back(std::move(row));
  }
  return rows;
}

namespace {

std::string DesiredText(const std::optional<int>& desired) {
  return desired ? std::to_string(*desired) : "-";
}

// Cuts long reasons at the terminal's comfort; the JSON output keeps them whole.
std::string Clip(const std::string& text, size_t width) {
  if (text.size() <= width) return text;
  return text.substr(0, width - 3) + "...";
}

}  // namespace

std::string FormatPlanTable(const std::vector<PlanRow>& rows) {
  std::string out;
  for (const PlanRow& row : rows) {
    const policies::Decision& d = row.decision;
    const char* arrow = d.desired > d.current   ? "scale up"
                        : d.desired < d.current ? "scale down"
                                                : "hold";
    out += fmt::format("cluster {}: current {} ({}), desired {} — {}\n", row.cluster, d.current,
                       row.current_source, d.desired, arrow);
    out += fmt::format("  why: {}\n", d.reason);
    if (d.override_active) out += "  a manual override is in force\n";
    size_t name_width = 6;
    for (const auto& v : d.verdicts) name_width = std::max(name_width, v.policy.size());
    out += fmt::format("  {:<{}}  {:<10}  {:>7}  {}\n", "POLICY", name_width, "VERDICT", "DESIRED",
                       "REASON");
    for (const auto& v : d.verdicts) {
      out += fmt::format("  {:<{}}  {:<10}  {:>7}  {}\n", v.policy, name_width,
                         policies::ToString(v.kind), DesiredText(v.desired), Clip(v.reason, 120));
    }
    out += "\n";
  }
  if (rows.empty()) out = "no clusters configured\n";
  return out;
}

nlohmann::json PlanJson(const std::vector<PlanRow>& rows) {
  nlohmann::json clusters = nlohmann::json::array();
  for (const PlanRow& row : rows) {
    const policies::Decision& d = row.decision;
    nlohmann::json verdicts = nlohmann::json::array();
    for (const auto& v : d.verdicts) {
      nlohmann::json item{{"name", v.policy},
                          {"verdict", policies::ToString(v.kind)},
                          {"desired", v.desired ? nlohmann::json(*v.desired) : nlohmann::json()},
                          {"reason", v.reason}};
      if (auto it = row.queries.find(v.policy); it != row.queries.end()) item["query"] = it->second;
      verdicts.push_back(std::move(item));
    }
    clusters.push_back({{"cluster", row.cluster},
                        {"current", d.current},
                        {"current_source", row.current_source},
                        {"evaluated_at", FormatTime(row.evaluated_at)},
                        {"recommended", d.recommended},
                        {"desired", d.desired},
                        {"override_active", d.override_active},
                        {"reason", d.reason},
                        {"policies", std::move(verdicts)}});
  }
  return {{"clusters", std::move(clusters)}};
}

}  // namespace ra::autoscaler
