#pragma once

#include <iosfwd>
#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace ra::autoscaler {

struct PlanOptions {
  std::string config_file{};
  std::optional<int> current{};  ///< --current N; otherwise each cluster's min_replicas
  std::string cluster{};         ///< --cluster NAME; empty: every cluster
  std::string ago{};             ///< --ago DURATION: evaluate as of that long ago; empty: now
  bool json = false;
};

/// Registers `plan --config FILE [--current N] [--cluster NAME] [--ago D] [--json]` on `app`.
CLI::App* AddPlanCommand(CLI::App& app, PlanOptions* options);

/// Loads the configuration (secrets resolved: the metrics source may need them), queries the
/// metrics each cluster's policies name, evaluates the policies now and prints the result. Acts
/// on nothing. Returns the exit status: 0 when every cluster was evaluated (a policy without data
/// is a verdict, not a failure), 1 when the configuration is invalid or the metrics source cannot
/// be set up, 2 for usage errors. Blocks on the metric queries (each bounded by metrics.timeout).
int RunPlan(const PlanOptions& options, std::ostream& out, std::ostream& err);

}  // namespace ra::autoscaler
