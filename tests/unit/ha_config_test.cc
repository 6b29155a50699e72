// The `ha` section: several instances on one etcd lease.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace ra::config {
namespace {

using namespace std::chrono_literals;

constexpr const char* kClusters = R"yaml(clouds:
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
api:
  tokens:
    - {name: ops, role: admin, token: {env: RA_TOKEN}}
)yaml";

ConfigResult Load(const std::string& ha) {
  LoadOptions options;
  options.check_environment = false;
  return LoadConfigFromString(std::string(kClusters) + ha, "test.yaml", options);
}

std::string Problems(const ConfigResult& r) {
  std::string out;
  if (r) return out;
  for (const ConfigProblem& p : r.error()) out += p.path + ": " + p.message + "\n";
  return out;
}

TEST(HaConfigTest, AbsentMeansOneInstance) {
  ConfigResult r = Load("");
  ASSERT_TRUE(r) << Problems(r);
  EXPECT_FALSE(r->ha);
}

TEST(HaConfigTest, FullSectionIsRead) {
  ConfigResult r = Load(R"yaml(ha:
  etcd:
    endpoints: [https://etcd-1:2379/, http://etcd-2:2379]
    tls: {ca_file: /etc/ra/ca.pem, cert_file: /etc/ra/c.pem, key_file: /etc/ra/c.key}
    auth: {username: ra, password: {env: ETCD_PASSWORD}}
  lease_ttl: 3s
  key_prefix: /ra/prod/
  instance: ra-1
)yaml");
  ASSERT_TRUE(r) << Problems(r);
  ASSERT_TRUE(r->ha);
  const HaConfig& ha = *r->ha;
  EXPECT_EQ(ha.etcd.endpoints,
            (std::vector<std::string>{"https://etcd-1:2379", "http://etcd-2:2379"}));
  EXPECT_EQ(ha.etcd.ca_file, "/etc/ra/ca.pem");
  EXPECT_EQ(ha.etcd.key_file, "/etc/ra/c.key");
  EXPECT_EQ(ha.etcd.username, "ra");
  EXPECT_EQ(ha.etcd.password.env, "ETCD_PASSWORD");
  EXPECT_EQ(ha.lease_ttl, 3s);
  EXPECT_EQ(ha.key_prefix, "/ra/prod");
  EXPECT_EQ(ha.instance, "ra-1");
}

TEST(HaConfigTest, DefaultsAndTheHostName) {
  ConfigResult r = Load("ha: {etcd: {endpoints: [http://127.0.0.1:2379]}}\n");
  ASSERT_TRUE(r) << Problems(r);
  EXPECT_EQ(r->ha->lease_ttl, 10s);
  EXPECT_EQ(r->ha->key_prefix, "/replica-autoscaler");
  EXPECT_FALSE(r->ha->instance.empty());
}

TEST(HaConfigTest, ErrorsNameTheirPath) {
  const std::string p = Problems(Load(R"yaml(ha:
  etcd:
    endpoints: [etcd-1:2379]
    tls: {cert_file: /etc/ra/c.pem}
    auth: {username: ra, password: hunter2xyz}
  lease_ttl: 1500ms
  key_prefix: ra
  leader: x
)yaml"));
  EXPECT_NE(p.find("ha.etcd.endpoints[0]"), std::string::npos) << p;
  EXPECT_NE(p.find("ha.etcd.tls"), std::string::npos) << p;
  EXPECT_NE(p.find("ha.etcd.auth.password"), std::string::npos) << p;
  EXPECT_NE(p.find("ha.lease_ttl"), std::string::npos) << p;
  EXPECT_NE(p.find("ha.key_prefix"), std::string::npos) << p;
  EXPECT_NE(p.find("ha.leader"), std::string::npos) << p;
  EXPECT_EQ(p.find("hunter2xyz"), std::string::npos) << "a literal password is never echoed: " << p;
}

TEST(HaConfigTest, EndpointsAreRequired) {
  const std::string p = Problems(Load("ha: {etcd: {}}\n"));
  EXPECT_NE(p.find("ha.etcd"), std::string::npos) << p;
  EXPECT_NE(p.find("endpoints"), std::string::npos) << p;
}

}  // namespace
}  // namespace ra::config
