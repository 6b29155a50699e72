// `load_balancer:` as one mapping or a list, and `load_balancer_quorum`.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace ra::config {
namespace {

// The cluster's load_balancer (and what else a test adds) goes last but one.
std::string Base(const std::string& balancer) {
  return R"yaml(clouds:
  prod:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: svc
      project_name: orders
      password: {env: OS_PASSWORD}
load_balancers:
  lb1:
    url: https://lb1.example:5555
    username: admin
    password: {env: LB_PASSWORD}
  lb2:
    url: https://lb2.example:5555
    username: admin
    password: {env: LB_PASSWORD}
api:
  tokens:
    - {name: ops, role: admin, token: {env: RA_TOKEN}}
clusters:
  - name: orders
    cloud: prod
    primary: {static: {host: 10.0.0.5}}
    donor: {server: orders-pg-2}
    replica:
      flavor: m1.large
      image: pg15
      networks: [db-net]
    postgres: {user: monitor}
)yaml" + balancer +
         "    max_replicas: 5\n";
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

bool Has(const ConfigProblems& problems, const std::string& path, const std::string& text) {
  for (const auto& p : problems) {
    if (p.path == path && p.message.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(MultiLbConfig, OneMappingIsStillOneBalancerWithQuorumOne) {
  auto config = LoadConfigFromString(Base("    load_balancer: {name: lb1, backend: pg_ro}\n"), "t",
                                     Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  const Cluster& c = config->clusters[0];
  ASSERT_EQ(c.balancers.size(), 1u);
  EXPECT_EQ(c.balancers[0].name, "lb1");
  EXPECT_EQ(c.load_balancer.name, "lb1");
  EXPECT_EQ(c.load_balancer.backend, "pg_ro");
  EXPECT_EQ(c.balancer_quorum, 1);
}

TEST(MultiLbConfig, AListKeepsItsOrderAndTheQuorumDefaultsToAll) {
  auto config = LoadConfigFromString(Base("    load_balancer:\n"
                                          "      - {name: lb1, backend: pg_ro}\n"
                                          "      - {name: lb2, backend: pg_ro, weight: 50}\n"),
                                     "t", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  const Cluster& c = config->clusters[0];
  ASSERT_EQ(c.balancers.size(), 2u);
  EXPECT_EQ(c.balancers[0].name, "lb1");
  EXPECT_EQ(c.balancers[1].name, "lb2");
  EXPECT_EQ(c.balancers[1].weight, 50);
  EXPECT_EQ(c.balancers[1].server_port, 5432);
  EXPECT_EQ(c.load_balancer.name, "lb1");
  EXPECT_EQ(c.balancer_quorum, 2);
}

TEST(MultiLbConfig, QuorumMayBeLowerThanTheCount) {
  auto config = LoadConfigFromString(Base("    load_balancer:\n"
                                          "      - {name: lb1, backend: pg_ro}\n"
                                          "      - {name: lb2, backend: pg_ro}\n"
                                          "    load_balancer_quorum: 1\n"),
                                     "t", Offline());
  ASSERT_TRUE(config.has_value()) << Dump(config.error());
  EXPECT_EQ(config->clusters[0].balancer_quorum, 1);
}

TEST(MultiLbConfig, ProblemsNameTheirPath) {
  auto above = LoadConfigFromString(Base("    load_balancer:\n"
                                         "      - {name: lb1, backend: pg_ro}\n"
                                         "      - {name: lb2, backend: pg_ro}\n"
                                         "    load_balancer_quorum: 3\n"),
                                    "t", Offline());
  ASSERT_FALSE(above.has_value());
  EXPECT_TRUE(Has(above.error(), "clusters[0].load_balancer_quorum", "more than the 2"))
      << Dump(above.error());

  auto zero = LoadConfigFromString(Base("    load_balancer: {name: lb1, backend: pg_ro}\n"
                                        "    load_balancer_quorum: 0\n"),
                                   "t", Offline());
  ASSERT_FALSE(zero.has_value());
  EXPECT_TRUE(Has(zero.error(), "clusters[0].load_balancer_quorum", "")) << Dump(zero.error());

  auto twice = LoadConfigFromString(Base("    load_balancer:\n"
                                         "      - {name: lb1, backend: pg_ro}\n"
                                         "      - {name: lb1, backend: pg_other}\n"),
                                    "t", Offline());
  ASSERT_FALSE(twice.has_value());
  EXPECT_TRUE(Has(twice.error(), "clusters[0].load_balancer[1].name", "listed twice"))
      << Dump(twice.error());

  auto unknown = LoadConfigFromString(Base("    load_balancer:\n"
                                           "      - {name: lb1, backend: pg_ro}\n"
                                           "      - {name: lb3, backend: pg_ro}\n"),
                                      "t", Offline());
  ASSERT_FALSE(unknown.has_value());
  EXPECT_TRUE(Has(unknown.error(), "clusters[0].load_balancer[1].name", "'lb3' is not defined"))
      << Dump(unknown.error());

  auto ports =
      LoadConfigFromString(Base("    load_balancer:\n"
                                "      - {name: lb1, backend: pg_ro}\n"
                                "      - {name: lb2, backend: pg_ro, server_port: 6432}\n"),
                           "t", Offline());
  ASSERT_FALSE(ports.has_value());
  EXPECT_TRUE(Has(ports.error(), "clusters[0].load_balancer[1].server_port", "differs"))
      << Dump(ports.error());

  auto empty = LoadConfigFromString(Base("    load_balancer: []\n"), "t", Offline());
  ASSERT_FALSE(empty.has_value());
  EXPECT_TRUE(Has(empty.error(), "clusters[0].load_balancer", "at least one"))
      << Dump(empty.error());
}

}  // namespace
}  // namespace ra::config
