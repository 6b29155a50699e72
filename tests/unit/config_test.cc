#include "config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "cli/config_cli.h"
#include "config/config_reader.h"

namespace ra::config {
namespace {

using namespace std::chrono_literals;

// A small valid configuration. The tests below replace one of its lines and expect a problem on
// that line, so the line numbers matter (BaseIsValidAndLinesAreWhereTheTestsThinkTheyAre).
constexpr const char* kBase = R"yaml(clouds:
  prod:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: svc
      project_name: orders
      password: {env: OS_PASSWORD}
    availability_zones: [az-1, az-2]
load_balancers:
  lb:
    url: https://lb.example:5555
    username: admin
    password: {env: LB_PASSWORD}
metrics:
  url: http://vm.example:8428
clusters:
  - name: orders
    cloud: prod
    primary: {static: {host: 10.0.0.5}}
    donor: {server: orders-pg-2}
    replica:
      flavor: m1.large
      image: pg15
      networks: [db-net]
      zones: [az-1]
    postgres: {user: monitor}
    load_balancer: {name: lb, backend: pg_ro}
    min_replicas: 1
    max_replicas: 5
    policies:
      - name: sessions
        target_tracking: {query: "sum(x)", target: 40}
      - name: office
        schedule:
          time_zone: Europe/Moscow
          windows:
            - {days: weekdays, start: "09:00", end: "19:00", min_replicas: 2}
api:
  tokens:
    - {name: ops, role: admin, token: {env: RA_TOKEN}}
)yaml";

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

/// kBase with line `line` (1-based) replaced by `text` (which may hold several lines).
std::string WithLine(int line, const std::string& text) {
  auto lines = Lines(kBase);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    out += (static_cast<int>(i) + 1 == line ? text : lines[i]) + "\n";
  }
  return out;
}

LoadOptions Offline() {
  LoadOptions o;
  o.check_environment = false;
  return o;
}

std::string Dump(const ConfigProblems& problems) {
  std::string out;
  for (const auto& p : problems) out += FormatProblem(p, "test") + "\n";
  return out;
}

const ConfigProblem* FindProblem(const ConfigProblems& problems, const std::string& path, int line,
                                 const std::string& substring) {
  for (const auto& p : problems) {
    if (p.path == path && p.line == line && p.message.find(substring) != std::string::npos) {
      return &p;
    }
  }
  return nullptr;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "ra-config-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Write(const std::string& name, const std::string& content) const {
    const std::string p = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Config, BaseIsValidAndLinesAreWhereTheTestsThinkTheyAre) {
  auto lines = Lines(kBase);
  ASSERT_EQ(lines.size(), 40u);
  EXPECT_EQ(lines[21], "      flavor: m1.large");
  EXPECT_EQ(lines[28], "    max_replicas: 5");
  EXPECT_EQ(lines[39], "    - {name: ops, role: admin, token: {env: RA_TOKEN}}");
  auto config = LoadConfigFromString(kBase, "base", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
}

TEST(Config, ExampleFileValidatesAndSaysWhatItMeans) {
  auto config =
      LoadConfig(std::string(RA_SOURCE_DIR) + "/examples/replica-autoscaler.yaml", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(Summarize(*config), "1 cluster, 1 cloud, 1 load balancer, 2 policies, 2 API tokens");
  ASSERT_EQ(config->clusters.size(), 1u);
  const Cluster& c = config->clusters[0];
  EXPECT_EQ(c.name, "orders");
  EXPECT_EQ(c.policy.min_replicas, 1);
  EXPECT_EQ(c.policy.max_replicas, 8);
  ASSERT_EQ(c.policy.policies.size(), 2u);
  const auto* tt = std::get_if<policies::TargetTracking>(&c.policy.policies[0].rule);
  ASSERT_NE(tt, nullptr);
  EXPECT_EQ(tt->target, 40);
  EXPECT_EQ(tt->value_kind, policies::ValueKind::kPerReplica);
  EXPECT_NE(tt->query.find("pg_stat_activity_count"), std::string::npos);
  const auto* sched = std::get_if<policies::Scheduled>(&c.policy.policies[1].rule);
  ASSERT_NE(sched, nullptr);
  EXPECT_EQ(sched->time_zone, "Europe/Moscow");
  ASSERT_EQ(sched->windows.size(), 1u);
  const auto& w = sched->windows[0];
  EXPECT_EQ(w.name, "business-hours");
  EXPECT_EQ(w.days, (std::array<bool, 7>{true, true, true, true, true, false, false}));
  EXPECT_EQ(w.start_minute, 9 * 60);
  EXPECT_EQ(w.end_minute, 19 * 60);
  EXPECT_EQ(w.min_replicas, 3);
  EXPECT_EQ(c.policy.behavior.scale_down.stabilization_window, 10min);
  ASSERT_EQ(c.policy.behavior.scale_down.limits.size(), 1u);
  EXPECT_EQ(c.policy.behavior.scale_down.limits[0].period, 5min);
  EXPECT_EQ(c.policy.missing_data.action, policies::MissingDataAction::kFallback);
  EXPECT_EQ(c.policy.missing_data.fallback_replicas, 3);
  ASSERT_TRUE(std::holds_alternative<PatroniPrimary>(c.primary));
  EXPECT_EQ(std::get<PatroniPrimary>(c.primary).members.size(), 3u);
  EXPECT_EQ(c.postgres.password.file, "/etc/replica-autoscaler/secrets/pg-monitor");
  EXPECT_EQ(c.postgres.max_lag_bytes, 16 << 20);
  EXPECT_EQ(c.load_balancer.check.port, 8008);
  EXPECT_EQ(c.snapshots.wal_retention, 48h);
  EXPECT_EQ(c.placement.prefer, Placement::Prefer::kLatency);
  EXPECT_EQ(c.placement.max_latency, 20ms);
  EXPECT_EQ(c.placement.samples, 10);
  EXPECT_EQ(c.slo.time_to_serve_budget, 15min);
  EXPECT_EQ(c.slo.replay_lag_alert, 1s);
  const Cloud* cloud = config->FindCloud("prod");
  ASSERT_NE(cloud, nullptr);
  ASSERT_TRUE(cloud->auth.has_value());
  EXPECT_EQ(cloud->auth->type, CloudAuthType::kApplicationCredential);
  EXPECT_EQ(config->api.host, "10.20.0.5");
  EXPECT_EQ(config->api.port, 8080);
  EXPECT_EQ(config->api.tokens[1].token.env, "RA_TOKEN_GRAFANA");
}

TEST(Config, DefaultsAreTheDocumentedOnes) {
  auto config = LoadConfigFromString(kBase, "base", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  const Cluster& c = config->clusters[0];
  const policies::Behavior spec_behavior;
  EXPECT_EQ(c.policy.behavior.scale_up.stabilization_window,
            spec_behavior.scale_up.stabilization_window);
  EXPECT_EQ(c.policy.behavior.scale_down.stabilization_window, 300s);
  ASSERT_EQ(c.policy.behavior.scale_up.limits.size(), 1u);
  EXPECT_EQ(c.policy.behavior.scale_up.limits[0].value, 4);
  EXPECT_EQ(c.policy.behavior.scale_down.limits[0].value, 1);
  EXPECT_EQ(c.policy.missing_data.action, policies::MissingDataAction::kHold);
  EXPECT_EQ(c.policy.missing_data.max_age, 5min);
  const auto& tt = std::get<policies::TargetTracking>(c.policy.policies[0].rule);
  EXPECT_EQ(tt.tolerance, 0.1);
  EXPECT_EQ(tt.value_kind, policies::ValueKind::kPerReplica);
  const auto& window = std::get<policies::Scheduled>(c.policy.policies[1].rule).windows[0];
  EXPECT_EQ(window.name, "office#1");
  EXPECT_EQ(c.postgres.port, 5432);
  EXPECT_EQ(c.postgres.dbname, "postgres");
  EXPECT_EQ(c.postgres.sslmode, "prefer");
  EXPECT_EQ(c.postgres.max_lag_bytes, 16 << 20);
  EXPECT_EQ(c.postgres.max_lag_time, 30s);
  EXPECT_EQ(c.load_balancer.server_port, 5432);
  EXPECT_EQ(c.load_balancer.weight, 100);
  EXPECT_TRUE(c.load_balancer.check.enabled);
  EXPECT_EQ(c.replica.name_template, "{cluster}-replica-{id}");
  EXPECT_EQ(c.snapshots.interval, 6h);
  EXPECT_EQ(c.snapshots.keep, 3);
  EXPECT_EQ(c.snapshots.max_age, 24h);
  EXPECT_FALSE(c.snapshots.wal_retention.has_value());
  EXPECT_FALSE(c.dns.has_value());
  EXPECT_EQ(c.timeouts.catch_up, 30min);
  EXPECT_EQ(c.timeouts.drain, 5min);
  EXPECT_EQ(c.placement.prefer, Placement::Prefer::kSpread);
  EXPECT_EQ(c.placement.max_latency, 20ms);
  EXPECT_EQ(c.placement.samples, 10);
  EXPECT_EQ(c.slo.time_to_serve_budget, 10min);
  EXPECT_EQ(c.slo.replay_lag_alert, 1s);
  const Cloud& cloud = config->clouds[0];
  EXPECT_EQ(cloud.auth->user_domain_name, "Default");
  EXPECT_FALSE(cloud.interface.has_value());
  EXPECT_EQ(cloud.requests_per_second, 10);
  EXPECT_EQ(cloud.profile, CloudProfile::kOpenStack);
  EXPECT_EQ(config->load_balancers[0].type, LoadBalancerType::kHaproxyDataplane);
  EXPECT_EQ(config->load_balancers[0].api_version, DataPlaneApiVersion::kAuto);
  EXPECT_EQ(config->metrics->timeout, 10s);
  EXPECT_EQ(config->api.listen, "127.0.0.1:8080");
  EXPECT_EQ(config->loop.interval, 30s);
  EXPECT_EQ(config->loop.jitter, 0s);
  EXPECT_TRUE(config->loop.follow_transitions);
  EXPECT_EQ(config->loop.follow_min_delay, 250ms);
  EXPECT_DOUBLE_EQ(config->loop.follow_fraction, 0.1);
  EXPECT_DOUBLE_EQ(config->loop.follow_rate_share, 0.5);
  EXPECT_EQ(config->journal.path, "/var/lib/replica-autoscaler/events.jsonl");
  EXPECT_EQ(config->logging.level, log::Level::kInfo);
}

TEST(Config, LoopFollowingTransitions) {
  const int line = static_cast<int>(Lines(kBase).size()) + 1;
  auto config =
      LoadConfigFromString(std::string(kBase) +
                               "loop: {follow_transitions: false, follow_min_delay: 100ms, "
                               "follow_fraction: 0.2, follow_rate_share: 0.25}\n",
                           "t", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_FALSE(config->loop.follow_transitions);
  EXPECT_EQ(config->loop.follow_min_delay, 100ms);
  EXPECT_DOUBLE_EQ(config->loop.follow_fraction, 0.2);
  EXPECT_DOUBLE_EQ(config->loop.follow_rate_share, 0.25);

  auto bad = LoadConfigFromString(std::string(kBase) +
                                      "loop: {follow_transitions: often, follow_min_delay: 10ms, "
                                      "follow_fraction: 2, follow_rate_share: 0}\n",
                                  "t", Offline());
  ASSERT_FALSE(bad.has_value());
  const std::string all = Dump(bad.error());
  for (const char* path : {"loop.follow_transitions", "loop.follow_min_delay",
                           "loop.follow_fraction", "loop.follow_rate_share"}) {
    bool found = false;
    for (const auto& p : bad.error()) found |= p.path == path && p.line == line;
    EXPECT_TRUE(found) << path << " in\n" << all;
  }
}

TEST(Config, PlacementSection) {
  // Line 29 is "    max_replicas: 5"; the section goes right after it, on line 30.
  const auto with = [](const std::string& section) {
    return WithLine(29, "    max_replicas: 5\n    placement: " + section);
  };
  auto config = LoadConfigFromString(with("{prefer: latency, max_latency: 5ms, samples: 20}"), "t",
                                     Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  const Placement& p = config->clusters[0].placement;
  EXPECT_EQ(p.prefer, Placement::Prefer::kLatency);
  EXPECT_EQ(p.max_latency, 5ms);
  EXPECT_EQ(p.samples, 20);

  // Keys left out keep their defaults.
  config = LoadConfigFromString(with("{prefer: spread}"), "t", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(config->clusters[0].placement.prefer, Placement::Prefer::kSpread);
  EXPECT_EQ(config->clusters[0].placement.max_latency, 20ms);
  EXPECT_EQ(config->clusters[0].placement.samples, 10);
  config = LoadConfigFromString(with("{max_latency: 1s, samples: 1000}"), "t", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(config->clusters[0].placement.prefer, Placement::Prefer::kSpread);
  EXPECT_EQ(config->clusters[0].placement.max_latency, 1s);
  EXPECT_EQ(config->clusters[0].placement.samples, 1000);

  struct Bad {
    std::string what;
    std::string section;
    std::string want_path;
    std::string want_message;
  };
  const std::vector<Bad> cases = {
      {"unknown preference", "{prefer: nearest}", "clusters[0].placement.prefer",
       "expected one of spread, latency"},
      {"zero max_latency", "{max_latency: 0ms}", "clusters[0].placement.max_latency",
       "greater than 0"},
      {"negative max_latency", "{max_latency: -5ms}", "clusters[0].placement.max_latency", ""},
      {"max_latency without a unit", "{max_latency: 20}", "clusters[0].placement.max_latency",
       "invalid duration"},
      {"no samples", "{samples: 0}", "clusters[0].placement.samples", "between 1 and 1000"},
      {"too many samples", "{samples: 1001}", "clusters[0].placement.samples",
       "between 1 and 1000"},
      {"samples not a number", "{samples: ten}", "clusters[0].placement.samples",
       "expected a whole number"},
      {"unknown key", "{prefer: latency, max_lag: 20ms}", "clusters[0].placement.max_lag",
       "unknown key 'max_lag'"},
      {"not a mapping", "latency", "clusters[0].placement", ""},
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.what);
    auto bad = LoadConfigFromString(with(c.section), "t", Offline());
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(FindProblem(bad.error(), c.want_path, 30, c.want_message), nullptr)
        << "want 30 " << c.want_path << ": " << c.want_message << "\ngot:\n"
        << Dump(bad.error());
  }

  // A placement key one level too high says where it belongs.
  auto misplaced = LoadConfigFromString(WithLine(29, "    max_replicas: 5\n    max_latency: 20ms"),
                                        "t", Offline());
  ASSERT_FALSE(misplaced.has_value());
  EXPECT_NE(
      FindProblem(misplaced.error(), "clusters[0].max_latency", 30, "under a cluster's placement:"),
      nullptr)
      << Dump(misplaced.error());
}

TEST(Config, SloSection) {
  // Line 29 is "    max_replicas: 5"; the section goes right after it, on line 30.
  const auto with = [](const std::string& section) {
    return WithLine(29, "    max_replicas: 5\n    slo: " + section);
  };
  auto config = LoadConfigFromString(with("{time_to_serve_budget: 15m, replay_lag_alert: 500ms}"),
                                     "t", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(config->clusters[0].slo.time_to_serve_budget, 15min);
  EXPECT_EQ(config->clusters[0].slo.replay_lag_alert, 500ms);

  // Keys left out keep their defaults: 10 minutes, 1 second.
  config = LoadConfigFromString(with("{time_to_serve_budget: 1h}"), "t", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(config->clusters[0].slo.time_to_serve_budget, 1h);
  EXPECT_EQ(config->clusters[0].slo.replay_lag_alert, 1s);
  config = LoadConfigFromString(with("{replay_lag_alert: 5s}"), "t", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(config->clusters[0].slo.time_to_serve_budget, 10min);
  EXPECT_EQ(config->clusters[0].slo.replay_lag_alert, 5s);

  struct Bad {
    std::string what;
    std::string section;
    std::string want_path;
    std::string want_message;
  };
  const std::vector<Bad> cases = {
      {"zero budget", "{time_to_serve_budget: 0s}", "clusters[0].slo.time_to_serve_budget",
       "time_to_serve_budget must be greater than 0"},
      {"negative budget", "{time_to_serve_budget: -10m}", "clusters[0].slo.time_to_serve_budget",
       ""},
      {"budget without a unit", "{time_to_serve_budget: 600}",
       "clusters[0].slo.time_to_serve_budget", "invalid duration"},
      {"budget not a duration", "{time_to_serve_budget: soon}",
       "clusters[0].slo.time_to_serve_budget", "invalid duration"},
      {"zero lag threshold", "{replay_lag_alert: 0ms}", "clusters[0].slo.replay_lag_alert",
       "replay_lag_alert must be greater than 0"},
      {"negative lag threshold", "{replay_lag_alert: -1s}", "clusters[0].slo.replay_lag_alert", ""},
      {"fractional lag threshold", "{replay_lag_alert: 1.5s}", "clusters[0].slo.replay_lag_alert",
       "write 1500ms rather than 1.5s"},
      {"lag threshold a list", "{replay_lag_alert: [1s]}", "clusters[0].slo.replay_lag_alert",
       "expected a duration"},
      {"unknown key", "{time_to_serve: 10m}", "clusters[0].slo.time_to_serve",
       "unknown key 'time_to_serve'"},
      {"not a mapping", "10m", "clusters[0].slo", ""},
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.what);
    auto bad = LoadConfigFromString(with(c.section), "t", Offline());
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(FindProblem(bad.error(), c.want_path, 30, c.want_message), nullptr)
        << "want 30 " << c.want_path << ": " << c.want_message << "\ngot:\n"
        << Dump(bad.error());
  }

  // An slo key one level too high says where it belongs.
  auto misplaced = LoadConfigFromString(
      WithLine(29, "    max_replicas: 5\n    replay_lag_alert: 1s"), "t", Offline());
  ASSERT_FALSE(misplaced.has_value());
  EXPECT_NE(
      FindProblem(misplaced.error(), "clusters[0].replay_lag_alert", 30, "under a cluster's slo:"),
      nullptr)
      << Dump(misplaced.error());
}

TEST(Config, ToleranceAsAFractionOrAPercentage) {
  for (const auto& [text, want] : {std::pair{"0.2", 0.2}, std::pair{"15%", 0.15}}) {
    auto config = LoadConfigFromString(
        WithLine(32, std::string("        target_tracking: {query: q, target: 4, tolerance: ") +
                         text + "}"),
        "t", Offline());
    ASSERT_TRUE(config.has_value()) << Dump(config.error());
    EXPECT_DOUBLE_EQ(
        std::get<policies::TargetTracking>(config->clusters[0].policy.policies[0].rule).tolerance,
        want);
  }
  auto config = LoadConfigFromString(
      WithLine(32, "        target_tracking: {query: q, target: 4, tolerance: 150%}"), "t",
      Offline());
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(FindProblem(config.error(), "clusters[0].policies[0].target_tracking.tolerance", 32,
                        "a fraction below 1"),
            nullptr)
      << Dump(config.error());
}

TEST(Config, ServerPortFollowsThePostgresPort) {
  auto config = LoadConfigFromString(WithLine(26, "    postgres: {user: monitor, port: 6432}"), "t",
                                     Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(config->clusters[0].load_balancer.server_port, 6432);
}

struct ProblemCase {
  const char* what;
  int line;  // replaced in kBase
  std::string text;
  std::string want_path;
  int want_line;
  std::string want_message;  // a substring
};

TEST(Config, LoadBalancerTypeHaproxyDataplaneMayBeWrittenOut) {
  auto config = LoadConfigFromString(
      WithLine(11, "    type: haproxy_dataplane\n    url: https://lb.example:5555"), "t",
      Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(config->load_balancers[0].type, LoadBalancerType::kHaproxyDataplane);
  EXPECT_EQ(config->load_balancers[0].url, "https://lb.example:5555");
}

TEST(Config, EachKindOfProblemIsReportedWithItsPathAndLine) {
  const std::vector<ProblemCase> cases = {
      {"unknown key with a suggestion", 22, "      flavour: m1.large",
       "clusters[0].replica.flavour", 22, "unknown key 'flavour' (did you mean 'flavor'?)"},
      {"key at the wrong level", 25, "      min_replicas: 2", "clusters[0].replica.min_replicas",
       25, "it belongs in a cluster (an entry of clusters)"},
      {"missing required field", 22, "      key_name: ops", "clusters[0].replica.flavor", 21,
       "missing required field 'flavor'"},
      {"wrong type", 29, "    max_replicas: abc", "clusters[0].max_replicas", 29,
       "expected a whole number, got 'abc'"},
      {"number out of range", 26, "    postgres: {user: monitor, port: 70000}",
       "clusters[0].postgres.port", 26, "between 1 and 65535"},
      {"min above max", 28, "    min_replicas: 9", "clusters[0].min_replicas", 28,
       "min_replicas (9) is greater than max_replicas (5)"},
      {"bad enum lists the values", 32,
       "        target_tracking: {query: q, target: 4, value: avg}",
       "clusters[0].policies[0].target_tracking.value", 32, "expected one of per_replica, total"},
      {"target must be positive", 32, "        target_tracking: {query: q, target: -3}",
       "clusters[0].policies[0].target_tracking.target", 32, "greater than 0"},
      {"bad duration", 29, "    max_replicas: 5\n    missing_data: {max_age: 5}",
       "clusters[0].missing_data.max_age", 30, "invalid duration '5'"},
      {"duplicate policy name", 33, "      - name: sessions", "clusters[0].policies[1].name", 33,
       "used twice"},
      {"undefined cloud", 18, "    cloud: staging", "clusters[0].cloud", 18,
       "cloud 'staging' is not defined"},
      {"undefined load balancer", 27, "    load_balancer: {name: lb2, backend: pg_ro}",
       "clusters[0].load_balancer.name", 27, "load balancer 'lb2' is not defined"},
      {"zone the cloud lacks", 25, "      zones: [az-3]", "clusters[0].replica.zones[0]", 25,
       "zone 'az-3' is not in cloud 'prod' availability_zones (az-1, az-2)"},
      {"unknown time zone", 35, "          time_zone: Mars/Olympus_Mons",
       "clusters[0].policies[1].schedule.time_zone", 35, "unknown time zone"},
      {"bad window time", 37,
       "            - {days: weekdays, start: \"9:75\", end: \"19:00\", min_replicas: 2}",
       "clusters[0].policies[1].schedule.windows[0].start", 37, "HH:MM"},
      {"bad day", 37,
       "            - {days: [mon, funday], start: \"09:00\", end: \"19:00\", min_replicas: 2}",
       "clusters[0].policies[1].schedule.windows[0].days[1]", 37, "unknown day 'funday'"},
      {"window above max", 37,
       "            - {days: daily, start: \"09:00\", end: \"19:00\", min_replicas: 6}",
       "clusters[0].policies[1].schedule.windows[0].min_replicas", 37,
       "greater than the cluster's max_replicas (5)"},
      {"overlapping steps", 32,
       "        step_scaling: {query: q, steps: [{lower: 1, upper: 5, change: 1}, "
       "{lower: 4, change: 2}]}",
       "clusters[0].policies[0].step_scaling.steps[1]", 32, "overlaps"},
      {"fallback outside bounds", 29,
       "    max_replicas: 5\n    missing_data: {action: fallback, fallback_replicas: 7}",
       "clusters[0].missing_data.fallback_replicas", 30,
       "must be between min_replicas (1) and max_replicas (5)"},
      {"fallback without its count", 29,
       "    max_replicas: 5\n    missing_data: {action: fallback}",
       "clusters[0].missing_data.fallback_replicas", 30, "missing required field"},
      {"snapshot age beyond WAL retention", 29,
       "    max_replicas: 5\n    snapshots: {max_age: 2d, wal_retention: 1d}",
       "clusters[0].snapshots.max_age", 30, "exceeds wal_retention"},
      {"bad URL", 11, "    url: lb.example:5555", "load_balancers.lb.url", 11,
       "expected an http:// or https:// URL"},
      {"unknown load balancer type", 11, "    type: octavia\n    url: https://lb.example:5555",
       "load_balancers.lb.type", 11, "expected one of haproxy_dataplane"},
      {"bad listen address", 39, "  listen: nowhere\n  tokens:", "api.listen", 39, "HOST:PORT"},
      {"no admin token", 40, "    - {name: ops, role: read-only, token: {env: RA_TOKEN}}",
       "api.tokens", 39, "at least one token with role: admin"},
      {"bad role", 40, "    - {name: ops, role: root, token: {env: RA_TOKEN}}",
       "api.tokens[0].role", 40, "expected one of admin, read-only"},
      {"duplicate key", 23, "      flavor: m1.small", "clusters[0].replica.flavor", 23,
       "duplicate key 'flavor' (first at line 22)"},
      {"secret spelled flat", 7, "      password_file: /etc/pw", "clouds.prod.auth.password_file",
       7, "secrets are written password: {file: PATH}"},
      {"both primaries", 19,
       "    primary: {static: {host: h}, patroni: {members: [\"http://p:8008\"]}}",
       "clusters[0].primary", 19, "either static or patroni"},
      {"host that is not plain", 19, "    primary: {static: {host: \"h1,h2 sslmode=disable\"}}",
       "clusters[0].primary.static.host", 19, "is not a host name or address"},
      {"template without id", 25, "      name_template: \"{cluster}-replica\"",
       "clusters[0].replica.name_template", 25, "must contain {id}"},
      {"metric policy without metrics", 14, "x-metrics:", "clusters[0].policies[0].target_tracking",
       32, "no 'metrics' section"},
      {"cluster name", 17, "  - name: Orders_DB", "clusters[0].name", 17, "lower-case letters"},
      {"YAML syntax error", 24, "      networks: [db-net", "", 25, "YAML syntax error"},
      {"tab indentation", 24, "\t  networks: [db-net]", "", 24, "indented with a tab"},
  };
  for (const ProblemCase& c : cases) {
    SCOPED_TRACE(c.what);
    auto config = LoadConfigFromString(WithLine(c.line, c.text), "t", Offline());
    ASSERT_FALSE(config.has_value());
    EXPECT_NE(FindProblem(config.error(), c.want_path, c.want_line, c.want_message), nullptr)
        << "want " << c.want_line << " " << c.want_path << ": " << c.want_message << "\ngot:\n"
        << Dump(config.error());
  }
}

TEST(Config, EveryProblemIsReportedInOnePassInLineOrder) {
  // One problem in each cluster and in several sections: a bad field must not hide the others.
  std::string text = WithLine(29, R"yaml(    max_replicas: five
  - name: billing
    cloud: prod
    primary: {static: {host: 10.0.0.6, port: 0}}
    donor: {server: billing-pg-2}
    replica: {flavor: m1.large, image: pg15, networks: [db-net], zones: [az-9]}
    postgres: {user: monitor}
    load_balancer: {name: lb, backend: billing_ro}
    max_replicas: 3
    behavior: {scale_up: {select: fastest}})yaml");
  text = std::string("logging: {level: loud}\n") + text;  // shifts every line by one
  auto config = LoadConfigFromString(text, "t", Offline());
  ASSERT_FALSE(config.has_value());
  const auto& problems = config.error();
  EXPECT_EQ(problems.size(), 5u) << Dump(problems);
  EXPECT_NE(FindProblem(problems, "logging.level", 1, "expected one of debug"), nullptr);
  EXPECT_NE(FindProblem(problems, "clusters[0].max_replicas", 30, "whole number"), nullptr);
  EXPECT_NE(FindProblem(problems, "clusters[1].primary.static.port", 33, "between 1 and"), nullptr);
  EXPECT_NE(FindProblem(problems, "clusters[1].replica.zones[0]", 35, "az-9"), nullptr);
  EXPECT_NE(FindProblem(problems, "clusters[1].behavior.scale_up.select", 39, "fastest"), nullptr);
  for (size_t i = 1; i < problems.size(); ++i) {
    EXPECT_LE(problems[i - 1].line, problems[i].line);
  }
}

TEST(Config, LiteralSecretsAreRejectedWithoutEchoingThem) {
  struct Case {
    int line;
    std::string text;
    std::string path;
  };
  const std::string literal = "Hunter2-Sup3r-Secret";
  const std::vector<Case> cases = {
      {7, "      password: " + literal, "clouds.prod.auth.password"},
      {13, "    password: " + literal, "load_balancers.lb.password"},
      {13, "    password: \"/etc/" + literal + "\"", "load_balancers.lb.password"},
      {26, "    postgres: {user: monitor, password: " + literal + "}",
       "clusters[0].postgres.password"},
      {40, "    - {name: ops, role: admin, token: " + literal + "}", "api.tokens[0].token"},
      {11, "    url: https://admin:" + literal + "@lb.example:5555", "load_balancers.lb.url"},
      {15, "  url: http://vm.example:8428/?api_key=" + literal, "metrics.url"},
      {15, "  url: http://vm\n  auth: {type: bearer, token: " + literal + "}",
       "metrics.auth.token"},
      {25, "      metadata: {db_password: " + literal + "}",
       "clusters[0].replica.metadata.db_password"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    auto config = LoadConfigFromString(WithLine(c.line, c.text), "t", Offline());
    ASSERT_FALSE(config.has_value());
    bool named = false;
    for (const auto& p : config.error()) {
      EXPECT_EQ(FormatProblem(p, "t").find(literal), std::string::npos) << p.message;
      named = named || (p.path == c.path && p.message.find("literal secret") != std::string::npos);
    }
    EXPECT_TRUE(named) << Dump(config.error());
  }
}

TEST(Config, LiteralSecretMessageSaysHowToFixIt) {
  auto config = LoadConfigFromString(WithLine(7, "      password: abc"), "t", Offline());
  ASSERT_FALSE(config.has_value());
  const auto* p = FindProblem(config.error(), "clouds.prod.auth.password", 7, "literal secret");
  ASSERT_NE(p, nullptr) << Dump(config.error());
  EXPECT_NE(p->message.find("password: {file: /path/to/file}"), std::string::npos);
  EXPECT_NE(p->message.find("password: {env: VARIABLE}"), std::string::npos);
}

TEST(Config, SecretReferencesAreCheckedOnTheMachine) {
  TempDir dir;
  dir.Write("secrets/lb", "lb-password-value\n");
  dir.Write("secrets/empty", "\n");
  dir.Write("secrets/two-lines", "user\npassword\n");
  std::string text = kBase;
  auto replace = [&](const std::string& from, const std::string& to) {
    text.replace(text.find(from), from.size(), to);
  };
  replace("{env: LB_PASSWORD}", "{file: secrets/lb}");  // relative to the config's folder
  replace("{env: OS_PASSWORD}", "{file: secrets/empty}");
  LoadOptions options;
  options.base_dir = dir.path();
  options.env = FakeEnv({{"RA_TOKEN", "short"}});
  auto config = LoadConfigFromString(text, "t", options);
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().size(), 2u) << Dump(config.error());
  EXPECT_NE(FindProblem(config.error(), "clouds.prod.auth.password.file", 7, "is empty"), nullptr)
      << Dump(config.error());
  EXPECT_NE(FindProblem(config.error(), "api.tokens[0].token", 40, "shorter than 16 characters"),
            nullptr)
      << Dump(config.error());

  options.env = FakeEnv({});
  replace("{file: secrets/empty}", "{file: secrets/missing}");
  config = LoadConfigFromString(text, "t", options);
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(FindProblem(config.error(), "clouds.prod.auth.password.file", 7,
                        "secret file " + dir.path() + "/secrets/missing does not exist"),
            nullptr)
      << Dump(config.error());
  EXPECT_NE(FindProblem(config.error(), "api.tokens[0].token.env", 40,
                        "environment variable RA_TOKEN is not set"),
            nullptr)
      << Dump(config.error());

  replace("{file: secrets/missing}", "{file: secrets/two-lines}");
  options.env = FakeEnv({{"RA_TOKEN", "0123456789abcdef0123"}});
  config = LoadConfigFromString(text, "t", options);
  ASSERT_FALSE(config.has_value());
  ASSERT_EQ(config.error().size(), 1u) << Dump(config.error());
  EXPECT_NE(
      FindProblem(config.error(), "clouds.prod.auth.password.file", 7, "holds more than one line"),
      nullptr)
      << Dump(config.error());

  replace("{file: secrets/two-lines}", "{file: secrets/lb}");
  config = LoadConfigFromString(text, "t", options);
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(config->load_balancers[0].password.file, dir.path() + "/secrets/lb");
}

TEST(Config, ApiLimitsAndTls) {
  // Defaults: 1000 connections, 30 s idle, plain HTTP.
  auto base = LoadConfigFromString(kBase, "base", Offline());
  ASSERT_TRUE(base.has_value()) << Dump(base.error());
  EXPECT_EQ(base->api.max_connections, 1000);
  EXPECT_EQ(base->api.idle_timeout, 30s);
  EXPECT_FALSE(base->api.tls.has_value());

  // Line 40 is the token; the keys go right after it, on lines 41 and on.
  const auto with = [](const std::string& lines) {
    return WithLine(40, "    - {name: ops, role: admin, token: {env: RA_TOKEN}}\n" + lines);
  };
  auto set = LoadConfigFromString(with("  max_connections: 40\n  idle_timeout: 4s\n"
                                       "  tls: {certificate_file: /etc/ra/api.pem, "
                                       "key_file: /etc/ra/api.key}"),
                                  "t", Offline());
  ASSERT_TRUE(set.has_value()) << Dump(set.error());
  EXPECT_EQ(set->api.max_connections, 40);
  EXPECT_EQ(set->api.idle_timeout, 4s);
  ASSERT_TRUE(set->api.tls.has_value());
  EXPECT_EQ(set->api.tls->certificate_file, "/etc/ra/api.pem");
  EXPECT_EQ(set->api.tls->key_file, "/etc/ra/api.key");

  // Every problem, each with its path and line.
  auto bad = LoadConfigFromString(with("  max_connections: 0\n  idle_timeout: 0s\n"
                                       "  tls: {certificate_file: /etc/ra/api.pem, cert: x}"),
                                  "t", Offline());
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(FindProblem(bad.error(), "api.max_connections", 41, ""), nullptr) << Dump(bad.error());
  EXPECT_NE(FindProblem(bad.error(), "api.idle_timeout", 42, ""), nullptr) << Dump(bad.error());
  EXPECT_NE(FindProblem(bad.error(), "api.tls.cert", 43, "unknown"), nullptr) << Dump(bad.error());
  EXPECT_NE(FindProblem(bad.error(), "api.tls.key_file", 43, "missing required field"), nullptr)
      << Dump(bad.error());
}

TEST(Config, TokensMustDiffer) {
  std::string text = WithLine(40, R"yaml(    - {name: ops, role: admin, token: {env: RA_TOKEN}}
    - {name: bot, role: read-only, token: {env: RA_BOT}})yaml");
  LoadOptions options;
  options.env = FakeEnv({{"RA_TOKEN", "same-value-0123456789"},
                         {"RA_BOT", "same-value-0123456789"},
                         {"OS_PASSWORD", "x"},
                         {"LB_PASSWORD", "y"}});
  auto config = LoadConfigFromString(text, "t", options);
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(FindProblem(config.error(), "api.tokens[1].token", 41,
                        "token 'bot' has the same value as token 'ops'"),
            nullptr)
      << Dump(config.error());
  for (const auto& p : config.error()) {
    EXPECT_EQ(p.message.find("same-value"), std::string::npos);
  }
}

TEST(Config, CloudsYamlReferenceMustNameAnExistingEntry) {
  TempDir dir;
  const std::string file =
      dir.Write("clouds.yaml", "clouds:\n  prod-ru:\n    auth: {password: not-shown}\n  lab: {}\n");
  // Line 3 (auth:) becomes the reference; the inline auth lines 4-7 go.
  auto lines = Lines(WithLine(3, "    clouds_yaml: {cloud: prod-rus, file: " + file + "}"));
  lines.erase(lines.begin() + 3, lines.begin() + 7);
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  LoadOptions options;
  options.env = FakeEnv({{"LB_PASSWORD", "x"}, {"RA_TOKEN", "0123456789abcdef0123"}});
  auto config = LoadConfigFromString(text, "t", options);
  ASSERT_FALSE(config.has_value());
  ASSERT_EQ(config.error().size(), 1u) << Dump(config.error());
  EXPECT_NE(FindProblem(config.error(), "clouds.prod.clouds_yaml", 3,
                        "cloud 'prod-rus' is not in " + file +
                            " (it has: prod-ru, lab) (did you mean 'prod-ru'?)"),
            nullptr)
      << Dump(config.error());
  EXPECT_EQ(config.error()[0].message.find("not-shown"), std::string::npos);

  text.replace(text.find("prod-rus"), 8, "prod-ru");
  config = LoadConfigFromString(text, "t", options);
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(config->clouds[0].clouds_yaml->cloud, "prod-ru");
}

TEST(Config, ResolveSecretReadsFileOrEnvAndRegistersIt) {
  log::ResetForTesting();
  TempDir dir;
  SecretRef file_ref{dir.Write("pw", "file-secret-value\r\n"), ""};
  auto secret = ResolveSecret(file_ref);
  ASSERT_TRUE(secret.has_value()) << secret.error().message;
  EXPECT_EQ(secret->Reveal(), "file-secret-value");
  EXPECT_EQ(log::Redact("x file-secret-value y"), "x *** y");

  SecretRef env_ref{"", "RA_TEST_SECRET"};
  auto from_env = ResolveSecret(env_ref, FakeEnv({{"RA_TEST_SECRET", "env-secret-value\n"}}));
  ASSERT_TRUE(from_env.has_value());
  EXPECT_EQ(from_env->Reveal(), "env-secret-value");

  auto unset = ResolveSecret(env_ref, FakeEnv({}));
  ASSERT_FALSE(unset.has_value());
  EXPECT_EQ(unset.error().kind, ErrorKind::kConfig);
  EXPECT_EQ(unset.error().message, "environment variable RA_TEST_SECRET is not set");

  auto missing = ResolveSecret(SecretRef{dir.path() + "/nope", ""});
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("does not exist"), std::string::npos);

  // Neither a directory nor a device that never ends (nor a FIFO that would block) is read.
  for (const std::string& path : {dir.path(), std::string("/dev/zero")}) {
    auto odd = ResolveSecret(SecretRef{path, ""});
    ASSERT_FALSE(odd.has_value()) << path;
    EXPECT_EQ(odd.error().message, "secret file " + path + " is not a regular file");
  }
  auto big = ResolveSecret(SecretRef{dir.Write("big", std::string(100 * 1024, 'x')), ""});
  ASSERT_FALSE(big.has_value());
  EXPECT_NE(big.error().message.find("larger than 64 KiB"), std::string::npos);
  log::ResetForTesting();
}

TEST(Config, MergeKeysAndExtensionKeysShareSettings) {
  const std::string text =
      std::string("x-defaults: &replica\n  flavor: m1.large\n  image: pg15\n") +
      WithLine(22, "      <<: *replica\n      flavor: m1.xlarge");
  auto config = LoadConfigFromString(text, "t", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(config->clusters[0].replica.flavor, "m1.xlarge");  // written beside the merge: wins
  EXPECT_EQ(config->clusters[0].replica.image, "pg15");
}

TEST(Config, StructuralProblemsOfTheWholeFile) {
  struct Case {
    std::string text;
    int line;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"", 1, "the configuration is empty"},
           {"# only a comment\n", 1, "the configuration is empty"},
           {"- a\n- b\n", 1, "expected a mapping of sections"},
           {"just text\n", 1, "expected a mapping of sections"},
           {"a: [1, 2\n", 2, "YAML syntax error"},
           {std::string(kBase) + "---\nclusters: []\n", 42, "several YAML documents"},
       }) {
    SCOPED_TRACE(c.text);
    auto config = LoadConfigFromString(c.text, "t", Offline());
    ASSERT_FALSE(config.has_value());
    EXPECT_NE(FindProblem(config.error(), "", c.line, c.message), nullptr) << Dump(config.error());
  }
}

TEST(Config, SurvivesMangledInput) {
  // Many one-byte mutations, deletions and truncations of a valid file: problems, never a crash
  // (this test earns its keep under ASan and UBSan).
  const std::string base =
      ReadText(std::string(RA_SOURCE_DIR) + "/examples/replica-autoscaler.yaml");
  ASSERT_FALSE(base.empty());
  std::mt19937 rng(42);
  const std::string alphabet = ":-[]{}&*!|>'\"#,? \n\tab0~";
  for (int i = 0; i < 400; ++i) {
    std::string text = base;
    const size_t pos = rng() % text.size();
    switch (i % 3) {
      case 0:
        text[pos] = alphabet[rng() % alphabet.size()];
        break;
      case 1:
        text.erase(pos, 1 + rng() % 20);
        break;
      default:
        text = text.substr(0, pos);
    }
    auto config = LoadConfigFromString(text, "t", Offline());
    if (!config) {
      for (const auto& p : config.error()) {
        EXPECT_EQ(p.message.find("internal error"), std::string::npos) << p.message;
      }
    }
  }
  for (const std::string& text : {
           std::string("a: &x [*x]\n"),
           std::string(200, '['),
           std::string("clusters: !!binary aGVsbG8=\n"),
           std::string("clusters:\n  - &c {name: a}\n  - *c\n"),
           std::string("\xff\xfe\x00garbage", 10),
           std::string("max_replicas: 99999999999999999999999\n"),
       }) {
    auto config = LoadConfigFromString(text, "t", Offline());
    EXPECT_FALSE(config.has_value());
  }
}

TEST(Config, SuggestsOnlyCloseWords) {
  const std::vector<std::string> keys = {"flavor", "image", "networks", "max_replicas"};
  EXPECT_EQ(internal::Suggest("flavour", keys), "flavor");
  EXPECT_EQ(internal::Suggest("Image", keys), "image");
  EXPECT_EQ(internal::Suggest("max-replicas", keys), "max_replicas");
  EXPECT_EQ(internal::Suggest("zones", keys), std::nullopt);
  EXPECT_EQ(internal::Suggest("timeout", keys), std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// tests/fixtures/config: each invalid-*.yaml ends with "# expect: LINE PATH: message-start"
// lines naming every problem `validate` must report; every valid-*.yaml must load.

struct Expectation {
  int line = 0;
  std::string path;
  std::string message;
};

std::vector<Expectation> ReadExpectations(const std::string& text) {
  std::vector<Expectation> out;
  const std::string prefix = "# expect: ";
  for (const std::string& l : Lines(text)) {
    if (!l.starts_with(prefix)) continue;
    Expectation e;
    std::istringstream in(l.substr(prefix.size()));
    in >> e.line >> e.path;
    if (!e.path.empty()) e.path.pop_back();  // the ':' after the path
    if (e.path == "-") e.path.clear();
    std::getline(in, e.message);
    e.message.erase(0, e.message.find_first_not_of(' '));
    out.push_back(e);
  }
  return out;
}

std::vector<std::string> Fixtures(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(RA_SOURCE_DIR) + "/tests/fixtures/config")) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(prefix) && name.ends_with(".yaml")) out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ConfigFixtures, ValidFilesLoad) {
  const auto files = Fixtures("valid-");
  ASSERT_GE(files.size(), 2u);
  for (const std::string& file : files) {
    auto config = LoadConfig(file, Offline());
    EXPECT_TRUE(config.has_value()) << file << "\n" << (config ? "" : Dump(config.error()));
  }
}

TEST(ConfigFixtures, InvalidFilesReportExactlyTheExpectedProblems) {
  const auto files = Fixtures("invalid-");
  ASSERT_GE(files.size(), 5u);
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    const auto expected = ReadExpectations(ReadText(file));
    ASSERT_FALSE(expected.empty()) << "a fixture without '# expect:' lines tests nothing";
    auto config = LoadConfig(file, Offline());
    ASSERT_FALSE(config.has_value());
    EXPECT_EQ(config.error().size(), expected.size()) << Dump(config.error());
    for (const Expectation& e : expected) {
      EXPECT_NE(FindProblem(config.error(), e.path, e.line, e.message), nullptr)
          << "missing: " << e.line << " " << e.path << ": " << e.message << "\ngot:\n"
          << Dump(config.error());
    }
  }
}

TEST(ConfigFixtures, NoLiteralSecretIsEchoed) {
  const std::string file =
      std::string(RA_SOURCE_DIR) + "/tests/fixtures/config/invalid-secrets.yaml";
  for (bool json : {false, true}) {
    ValidateOptions options;
    options.file = file;
    options.json = json;
    options.no_secret_check = true;
    std::ostringstream out, err;
    EXPECT_EQ(RunValidate(options, out, err), 1);
    // Every literal in the fixture contains "Literal-".
    EXPECT_EQ(out.str().find("Literal-"), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("literal secret"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// the command

TEST(ValidateCommand, PrintsEveryProblemAndExitsOne) {
  TempDir dir;
  const std::string file = dir.Write("bad.yaml", WithLine(29, "    max_replicas: 0"));
  ValidateOptions options;
  options.file = file;
  options.no_secret_check = true;
  std::ostringstream out, err;
  EXPECT_EQ(RunValidate(options, out, err), 1);
  EXPECT_EQ(out.str(), file + ":29:19: clusters[0].max_replicas: must be between 1 and 1000, got " +
                           "0\n" + file + ": 1 problem\n");
}

TEST(ValidateCommand, SummarisesAValidFile) {
  ValidateOptions options;
  options.file = std::string(RA_SOURCE_DIR) + "/examples/replica-autoscaler.yaml";
  options.no_secret_check = true;
  std::ostringstream out, err;
  EXPECT_EQ(RunValidate(options, out, err), 0);
  EXPECT_EQ(out.str(), "ok: 1 cluster, 1 cloud, 1 load balancer, 2 policies, 2 API tokens\n");
}

TEST(ValidateCommand, JsonOutput) {
  TempDir dir;
  ValidateOptions options;
  options.file = dir.Write("bad.yaml", WithLine(22, "      flavour: m1.large"));
  options.json = true;
  options.no_secret_check = true;
  std::ostringstream out, err;
  EXPECT_EQ(RunValidate(options, out, err), 1);
  auto doc = nlohmann::json::parse(out.str());
  EXPECT_EQ(doc["valid"], false);
  ASSERT_EQ(doc["problems"].size(), 2u) << doc.dump();
  EXPECT_EQ(doc["problems"][0]["path"], "clusters[0].replica.flavor");
  EXPECT_EQ(doc["problems"][1]["path"], "clusters[0].replica.flavour");
  EXPECT_EQ(doc["problems"][1]["line"], 22);
  EXPECT_EQ(doc["problems"][1]["column"], 7);
}

TEST(ValidateCommand, UnreadableFileIsAUsageError) {
  ValidateOptions options;
  options.file = "/nonexistent/replica-autoscaler.yaml";
  std::ostringstream out, err;
  EXPECT_EQ(RunValidate(options, out, err), 2);
  EXPECT_NE(err.str().find("cannot read /nonexistent/replica-autoscaler.yaml"), std::string::npos);
  EXPECT_TRUE(out.str().empty());
}

// The built binary, next to this test binary (both go to <build>/bin): exit codes as scripts
// see them, including command-line mistakes (2), which RunValidate never sees.
TEST(ValidateBinary, ExitCodes) {
  const auto self = std::filesystem::read_symlink("/proc/self/exe");
  const std::string binary = (self.parent_path() / "replica-autoscaler").string();
  if (!std::filesystem::exists(binary)) GTEST_SKIP() << binary << " is not built";
  const std::string fixtures = std::string(RA_SOURCE_DIR) + "/tests/fixtures/config/";
  auto run = [&](const std::string& args) {
    const std::string command = "'" + binary + "' " + args + " >/dev/null 2>&1";
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(run("--version"), 0);
  EXPECT_EQ(run("validate --no-secret-check '" + fixtures + "valid-minimal.yaml'"), 0);
  EXPECT_EQ(run("validate --no-secret-check '" + fixtures + "valid-full.yaml'"), 0);
  for (const std::string& file : Fixtures("invalid-")) {
    EXPECT_EQ(run("validate --no-secret-check '" + file + "'"), 1) << file;
  }
  EXPECT_EQ(run("validate --json --no-secret-check '" + fixtures + "invalid-types.yaml'"), 1);
  EXPECT_EQ(run("validate /nonexistent.yaml"), 2);
  EXPECT_EQ(run("validate"), 2);
  EXPECT_EQ(run("validate --frobnicate x.yaml"), 2);
  EXPECT_EQ(run("no-such-command"), 2);
}

// Problem messages echo values, and a value may hold any bytes: the JSON output must still be
// one valid document (nlohmann::json throws on invalid UTF-8 unless told otherwise).
TEST(ValidateCommand, JsonOutputSurvivesInvalidUtf8) {
  TempDir dir;
  ValidateOptions options;
  options.file = dir.Write("bad.yaml", WithLine(28,
                                                "    min_replicas: \xff\xfe"
                                                "1\n    min_repl\xff"
                                                "cas: 1"));
  options.json = true;
  options.no_secret_check = true;
  std::ostringstream out, err;
  EXPECT_EQ(RunValidate(options, out, err), 1);
  auto doc = nlohmann::json::parse(out.str(), nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(doc.is_discarded()) << out.str();
  EXPECT_EQ(doc["valid"], false);
  EXPECT_GE(doc["problems"].size(), 2u) << doc.dump();
}

// A password holding '/', '?' or '#' ends the URL's authority early, so the '@' check on the
// authority misses it; no later problem may echo the URL either.
TEST(Config, UrlWithCredentialsIsNeverEchoed) {
  const std::string literal = "Hunter2-Sup3r-Secret";
  for (const std::string& password : {"p/" + literal, "p?" + literal, "p#" + literal}) {
    SCOPED_TRACE(password);
    auto config = LoadConfigFromString(
        WithLine(15, "  url: http://user:" + password + "@vm.example:8428"), "t", Offline());
    ASSERT_FALSE(config.has_value());
    ASSERT_NE(FindProblem(config.error(), "metrics.url", 15, ""), nullptr) << Dump(config.error());
    EXPECT_EQ(Dump(config.error()).find(literal), std::string::npos) << Dump(config.error());
  }
}

// The Prometheus source refuses these headers when the service starts; validate must say so
// first, with the header's path, and never echo a smuggled value.
TEST(Config, MetricsHeadersAreCheckedLikeTheSourceChecksThem) {
  struct Case {
    std::string headers;
    std::string path;
    int line;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"    X-Scope-OrgID: \"t1\\r\\nAuthorization: Bearer Literal-Sekrit\"",
       "metrics.headers.X-Scope-OrgID", 17, "line break"},
      {"    X-Tenant: a\n    X-Tenant: b", "metrics.headers.X-Tenant", 18, "duplicate"},
      {"    X-Tenant: a\n    x-tenant: b", "metrics.headers.x-tenant", 18, "duplicate"},
      {"    \"bad name\": x", "metrics.headers[\"bad name\"]", 17, "not a valid header name"},
      {"    ? [a]\n    : v", "metrics.headers", 17, "header names"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.headers);
    auto config = LoadConfigFromString(
        WithLine(15, "  url: http://vm.example:8428\n  headers:\n" + c.headers), "t", Offline());
    ASSERT_FALSE(config.has_value());
    EXPECT_NE(FindProblem(config.error(), c.path, c.line, c.message), nullptr)
        << Dump(config.error());
    EXPECT_EQ(Dump(config.error()).find("Literal-Sekrit"), std::string::npos);
  }
}

// Where credentials belong, a plain value in place of a mapping or list is likely the secret
// itself: the problem says what is wrong without quoting it.
TEST(Config, ScalarsWhereCredentialsBelongAreNotEchoed) {
  const std::string literal = "Literal-Sekrit-42";
  struct Case {
    int line;
    std::string text;
    std::string path;
    int problem_line;
  };
  const std::vector<Case> cases = {
      {15, "  url: http://vm.example:8428\n  auth: Bearer " + literal, "metrics.auth", 16},
      {15, "  url: http://vm.example:8428\n  headers: X-Api-Key " + literal, "metrics.headers", 16},
      {40, "    - {name: ops, role: admin, token: {env: RA_TOKEN}}\n    - " + literal,
       "api.tokens[1]", 41},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto config = LoadConfigFromString(WithLine(c.line, c.text), "t", Offline());
    ASSERT_FALSE(config.has_value());
    EXPECT_NE(FindProblem(config.error(), c.path, c.problem_line, "not shown"), nullptr)
        << Dump(config.error());
    EXPECT_EQ(Dump(config.error()).find(literal), std::string::npos) << Dump(config.error());
  }
}

// HTTP basic auth joins user and password with ':', so a user holding one cannot log in (the
// Prometheus source refuses it at start-up; the Data Plane API would answer 401): validate says so.
TEST(Config, BasicAuthUsernamesWithoutColon) {
  auto lb = LoadConfigFromString(WithLine(12, "    username: \"admin:x\""), "t", Offline());
  ASSERT_FALSE(lb.has_value());
  EXPECT_NE(FindProblem(lb.error(), "load_balancers.lb.username", 12, "':'"), nullptr)
      << Dump(lb.error());
  auto config = LoadConfigFromString(
      WithLine(15,
               "  url: http://vm.example:8428\n"
               "  auth: {type: basic, username: \"svc:x\", password: {env: VM_PASSWORD}}"),
      "t", Offline());
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(FindProblem(config.error(), "metrics.auth.username", 16, "':'"), nullptr)
      << Dump(config.error());
}

// /dev/zero never ends: reading it whole exhausted memory and aborted.
TEST(ValidateCommand, EndlessInputIsRefusedUnread) {
  ValidateOptions options;
  options.file = "/dev/zero";
  std::ostringstream out, err;
  EXPECT_EQ(RunValidate(options, out, err), 2);
  EXPECT_NE(err.str().find("larger than 16 MiB"), std::string::npos) << err.str();
  auto loaded = LoadConfig("/dev/zero", Offline());
  ASSERT_FALSE(loaded.has_value());
  EXPECT_NE(Dump(loaded.error()).find("larger than 16 MiB"), std::string::npos);
}

}  // namespace
}  // namespace ra::config
