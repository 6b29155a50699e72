// `replica-autoscaler plan` as an operator runs it: the built binary against a real
// VictoriaMetrics holding the sandbox's sample load (a surge at the end).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/integration/metrics_harness.h"
#include "tests/support/process.h"

namespace ra::testing {
namespace {

using namespace std::chrono_literals;

const std::string kBinary = std::string(RA_BINARY_DIR) + "/bin/replica-autoscaler";

// Starts VictoriaMetrics once for the suite and loads the sample with its default end (a minute
// ago), so "now" is just after the surge's peak and 40 minutes ago was quiet.
class PlanItest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto started = VictoriaMetricsServer::Start({});
    ASSERT_TRUE(started.has_value()) << started.error().message;
    vm_ = started->release();
    auto loaded = RunCommand(
        {"/usr/bin/python3", std::string(RA_SOURCE_DIR) + "/tests/sandbox/metrics/load_sample.py",
         "--url", vm_->base_url()},
        60s);
    ASSERT_EQ(loaded.status, 0) << loaded.output << vm_->LogTail();
    dir_ = new TempDir("ra-plan");
    config_ = WriteConfig(vm_->base_url(), "plan-demo.yaml");
  }
  static void TearDownTestSuite() {
    delete vm_;
    vm_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  // The demo's configuration with the metrics URL pointed at `url`.
  static std::string WriteConfig(const std::string& url, const std::string& name) {
    std::string text = ReadFile(std::string(RA_SOURCE_DIR) + "/tests/sandbox/plan-demo.yaml");
    const std::string from = "http://127.0.0.1:18428";
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos);
    if (at != std::string::npos) text.replace(at, from.size(), url);
    const std::string path = dir_->path() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  static nlohmann::json PlanJson(const std::vector<std::string>& extra, int want_status = 0) {
    std::vector<std::string> argv = {kBinary, "plan", "--config", config_, "--json"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    CommandResult r = RunCommand(argv, 60s);
    EXPECT_EQ(r.status, want_status) << r.output;
    const size_t brace = r.output.find('{');
    if (brace == std::string::npos) return nullptr;
    return nlohmann::json::parse(r.output.substr(brace), nullptr, false);
  }

  static nlohmann::json Policy(const nlohmann::json& cluster, const std::string& name) {
    for (const auto& p : cluster["policies"]) {
      if (p["name"] == name) return p;
    }
    return nullptr;
  }

  static inline VictoriaMetricsServer* vm_ = nullptr;
  static inline TempDir* dir_ = nullptr;
  static inline std::string config_;
};

TEST_F(PlanItest, SurgeWantsMoreReplicas) {
  nlohmann::json plan = PlanJson({"--current", "2"});
  ASSERT_TRUE(plan.is_object());
  const auto& orders = plan["clusters"][0];
  EXPECT_EQ(orders["cluster"], "orders");
  EXPECT_EQ(orders["current"], 2);
  // ~100 sessions per replica against a target of 50 over 2 replicas.
  EXPECT_EQ(Policy(orders, "sessions-per-replica")["verdict"], "scale_up");
  EXPECT_EQ(Policy(orders, "sessions-per-replica")["desired"], 4);
  EXPECT_EQ(orders["desired"], 4);
  // The series that does not exist is reported, and holds rather than scaling in.
  EXPECT_EQ(Policy(orders, "cpu-missing")["verdict"], "no_data");
  EXPECT_NE(orders["reason"].get<std::string>().find("sessions-per-replica"), std::string::npos);
}

TEST_F(PlanItest, QuietTimeHoldsBecauseAMetricIsMissing) {
  nlohmann::json plan = PlanJson({"--current", "2", "--ago", "40m"});
  ASSERT_TRUE(plan.is_object());
  const auto& orders = plan["clusters"][0];
  // ~25 sessions per replica wants 1, but cpu-missing has no data: never scale in on it.
  EXPECT_EQ(Policy(orders, "sessions-per-replica")["verdict"], "scale_down");
  EXPECT_EQ(orders["desired"], 2);
}

TEST_F(PlanItest, PrintsATableForPeople) {
  CommandResult r = RunCommand({kBinary, "plan", "--config", config_, "--current", "2"}, 60s);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("cluster orders: current 2 (--current), desired 4"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("sessions-per-replica"), std::string::npos);
  EXPECT_NE(r.output.find("business-hours"), std::string::npos);
}

TEST_F(PlanItest, UnreachableMetricsHoldEveryCluster) {
  const std::string config =
      WriteConfig("http://127.0.0.1:" + std::to_string(FreePort()), "down.yaml");
  CommandResult r =
      RunCommand({kBinary, "plan", "--config", config, "--current", "3", "--json"}, 60s);
  ASSERT_EQ(r.status, 0) << r.output;
  auto plan = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  const auto& orders = plan["clusters"][0];
  EXPECT_EQ(orders["desired"], 3);
  EXPECT_EQ(Policy(orders, "sessions-per-replica")["verdict"], "no_data");
}

TEST_F(PlanItest, RejectsBadArguments) {
  EXPECT_EQ(RunCommand({kBinary, "plan", "--config", config_, "--ago", "forty"}, 30s).status, 2);
  EXPECT_EQ(RunCommand({kBinary, "plan", "--config", config_, "--cluster", "nope"}, 30s).status, 2);
  EXPECT_EQ(RunCommand({kBinary, "plan", "--config", "/nonexistent.yaml"}, 30s).status, 2);
}

TEST_F(PlanItest, InvalidConfigurationIsNamed) {
  const std::string bad = dir_->path() + "/bad.yaml";
  std::ofstream(bad) << "clusters:\n  - name: x\n    max_replicas: -1\n";
  CommandResult r = RunCommand({kBinary, "plan", "--config", bad}, 30s);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("max_replicas"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace ra::testing
