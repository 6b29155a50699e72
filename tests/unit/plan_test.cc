#include <gtest/gtest.h>
#include <stdlib.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/plan_cli.h"

namespace ra::autoscaler {
namespace {

// One cluster whose only policy is a schedule active all day, every day: plan needs neither a
// metrics section nor the network. `window` is the window's name.
std::string ScheduleOnlyConfig(const std::string& window) {
  return R"yaml(clouds:
  prod:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: svc
      project_name: orders
      password: {env: OS_PASSWORD}
load_balancers:
  lb:
    url: https://lb.example:5555
    username: admin
    password: {env: LB_PASSWORD}
clusters:
  - name: orders
    cloud: prod
    primary: {static: {host: 10.0.0.5}}
    donor: {server: orders-pg-2}
    replica: {flavor: m1.large, image: pg15, networks: [db-net]}
    postgres: {user: monitor}
    load_balancer: {name: lb, backend: pg_ro}
    min_replicas: 1
    max_replicas: 5
    policies:
      - name: office
        schedule:
          time_zone: UTC
          windows:
            - {name: )yaml" +
         window + R"yaml(, days: daily, start: "00:00", end: "00:00", min_replicas: 2}
api:
  tokens:
    - {name: ops, role: admin, token: {env: RA_TOKEN}}
)yaml";
}

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    std::string pattern = (std::filesystem::temp_directory_path() / "ra-plan-XXXXXX").string();
    const int fd = mkstemp(pattern.data());
    if (fd >= 0) close(fd);
    path_ = pattern;
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(PlanCommand, ScheduleOnlyClusterNeedsNoMetricsSection) {
  TempFile file(ScheduleOnlyConfig("office-hours"));
  PlanOptions options;
  options.config_file = file.path();
  options.json = true;
  std::ostringstream out, err;
  ASSERT_EQ(RunPlan(options, out, err), 0) << err.str();
  auto doc = nlohmann::json::parse(out.str());
  ASSERT_EQ(doc["clusters"].size(), 1u);
  EXPECT_EQ(doc["clusters"][0]["current"], 1);
  EXPECT_EQ(doc["clusters"][0]["desired"], 2);
}

}  // namespace
}  // namespace ra::autoscaler
