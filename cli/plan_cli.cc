#include "cli/plan_cli.h"

#include <CLI/CLI.hpp>
#include <ostream>

#include "cli/plan.h"
#include "config/config.h"
#include "core/duration.h"
#include "core/http_transport.h"
#include "core/log.h"
#include "policies/prometheus_source.h"

namespace ra::autoscaler {

CLI::App* AddPlanCommand(CLI::App& app, PlanOptions* options) {
  CLI::App* cmd = app.add_subcommand(
      "plan", "Evaluate each cluster's policies against live metrics now; acts on nothing");
  cmd->add_option("--config,-c", options->config_file, "Configuration file")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--current", options->current,
                  "Replicas the clusters have now (default: each cluster's min_replicas)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--cluster", options->cluster, "Only this cluster");
  cmd->add_option("--ago", options->ago,
                  "Evaluate as of this long ago (e.g. 40m): what would the policies have said then")
      ->type_name("DURATION");
  cmd->add_flag("--json", options->json, "Print JSON instead of a table");
  return cmd;
}

namespace {

Result<policies::PrometheusSourceOptions> MetricsOptions(const config::MetricsSourceConfig& m) {
  policies::PrometheusSourceOptions options;
  options.base_url = m.url;
  options.timeout = m.timeout;
  options.extra_headers = m.headers;
  switch (m.auth) {
    case config::MetricsAuthType::kNone:
      break;
    case config::MetricsAuthType::kBasic: {
      options.username = m.username;
      auto password = config::ResolveSecret(m.password);
      if (!password) return Fail(password.error());
      options.password = std::move(*password);
      break;
    }
    case config::MetricsAuthType::kBearer: {
      auto token = config::ResolveSecret(m.token);
      if (!token) return Fail(token.error());
      options.bearer_token = std::move(*token);
      break;
    }
  }
  return options;
}

}  // namespace

int RunPlan(const PlanOptions& options, std::ostream& out, std::ostream& err) {
  Duration ago{0};
  if (!options.ago.empty()) {
    auto parsed = ParseDuration(options.ago);
    if (!parsed) {
      err << "plan: --ago: " << parsed.error().message << "\n";
      return 2;
    }
    ago = *parsed;
  }
  // plan may run on a workstation that lacks the service's secret files: only the metrics
  // source's secrets are needed, and they are resolved below.
  config::ConfigResult loaded =
      config::LoadConfig(options.config_file, config::LoadOptions{.check_environment = false});
  if (!loaded) {
    for (const config::ConfigProblem& p : loaded.error()) {
      err << config::FormatProblem(p, options.config_file) << "\n";
    }
    err << loaded.error().size() << " problem(s); run 'replica-autoscaler validate "
        << options.config_file << "' for details\n";
    return 1;
  }
  const config::Config& cfg = *loaded;

  std::vector<PlanTarget> targets;
  for (const config::Cluster& cluster : cfg.clusters) {
    if (!options.cluster.empty() && cluster.name != options.cluster) continue;
    PlanTarget target;
    target.cluster = cluster.name;
    target.policy = cluster.policy;
    if (options.current) {
      target.current = *options.current;
      target.current_source = "--current";
    } else {
      // Without the cloud (the service observes it), the best guess is the floor.
      target.current = cluster.policy.min_replicas;
      target.current_source = "assumed min_replicas; pass --current N";
    }
    targets.push_back(std::move(target));
  }
  if (!options.cluster.empty() && targets.empty()) {
    err << "plan: no cluster named '" << options.cluster << "' in " << options.config_file << "\n";
    return 2;
  }

  bool needs_metrics = false;
  for (const PlanTarget& t : targets) needs_metrics |= !policies::Queries(t.policy).empty();

  // A cluster with only scheduled policies needs no metrics source at all.
  class NoMetrics final : public policies::MetricsSource {
   public:
    Result<policies::QueryResult> Query(std::string_view, std::optional<TimePoint>) override {
      return Fail(ErrorKind::kConfig, "no metrics source configured");
    }
  } no_metrics;
  std::optional<CurlHttpTransport> transport;
  std::optional<policies::PrometheusSource> prometheus;
  policies::MetricsSource* metrics = &no_metrics;
  if (needs_metrics && cfg.metrics) {
    auto metrics_options = MetricsOptions(*cfg.metrics);
    if (!metrics_options) {
      err << "plan: metrics source: " << log::Redact(metrics_options.error().message) << "\n";
      return 1;
    }
    transport.emplace(cfg.metrics->http);
    auto source = policies::PrometheusSource::Create(std::move(*metrics_options), *transport);
    if (!source) {
      err << "plan: metrics source: " << log::Redact(source.error().message) << "\n";
      return 1;
    }
    prometheus.emplace(std::move(*source));
    metrics = &*prometheus;
  }

  SystemClock clock;
  const TimePoint at = clock.Now() - ago;
  const std::vector<PlanRow> rows = RunPlan(targets, *metrics, at);
  if (options.json) {
    // Reasons quote metric-server answers, which may hold any bytes: replace invalid UTF-8.
    out << PlanJson(rows).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    if (ago.count() > 0) out << "as of " << FormatTime(at) << " (" << options.ago << " ago)\n";
    out << FormatPlanTable(rows);
    out << "(plan acts on nothing; it sees no history, so stabilization windows and rate limits "
           "start empty)\n";
  }
  return 0;
}

}  // namespace ra::autoscaler
