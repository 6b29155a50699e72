#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "openstack/cloud_config.h"

namespace ra::openstack {
namespace {

constexpr const char* kClouds = R"(
clouds:
  lab:
    auth:
      auth_url: https://keystone.lab:5000/v3
      username: demo
      password: lab-password-123
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: internal
    verify: false
  sber:
    auth_type: v3password
    auth:
      auth_url: https://iam.ru-moscow-1.hc.sbercloud.ru/v3
      username: ops
      domain_name: acme
      user_domain_name: acme
      project_name: ru-moscow-1
    region_name: ru-moscow-1
    compute_endpoint_override: https://ecs.ru-moscow-1.hc.sbercloud.ru/v2.1/{project_id}
    volume_endpoint_override: https://evs.ru-moscow-1.hc.sbercloud.ru/v3/{project_id}
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.lab:5000
      application_credential_id: ac-1
      application_credential_secret: appcred-secret-123
)";

constexpr const char* kSecure = R"(
clouds:
  sber:
    auth:
      password: sber-password-456
)";

class TempFiles {
 public:
  TempFiles() {
    dir_ = std::filesystem::temp_directory_path() /
           ("ra-os-config-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
  }
  ~TempFiles() { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& rel, const std::string& text) {
    auto path = dir_ / rel;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path.string();
  }
  std::string Path(const std::string& rel) const { return (dir_ / rel).string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
};

TEST(CloudsYaml, ReadsAPasswordCloud) {
  auto o = ParseCloudsYaml(kClouds, "lab", "clouds.yaml");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->auth.type, AuthType::kPassword);
  EXPECT_EQ(o->auth.auth_url, "https://keystone.lab:5000/v3");
  EXPECT_EQ(o->auth.username, "demo");
  EXPECT_EQ(o->auth.password.Reveal(), "lab-password-123");
  EXPECT_EQ(o->auth.project_domain_name, "Default");
  EXPECT_EQ(o->region_name, "RegionOne");
  EXPECT_EQ(o->interface, "internal");
  EXPECT_FALSE(o->http.verify_tls);
  EXPECT_TRUE(ValidateOptions(*o));
}

TEST(CloudsYaml, SecureYamlIsMergedAndOverridesAreRead) {
  auto o = ParseCloudsYaml(kClouds, "sber", "clouds.yaml", kSecure);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->auth.password.Reveal(), "sber-password-456");
  EXPECT_EQ(o->endpoint_overrides.at("compute"),
            "https://ecs.ru-moscow-1.hc.sbercloud.ru/v2.1/{project_id}");
  EXPECT_EQ(o->endpoint_overrides.at("block-storage"),
            "https://evs.ru-moscow-1.hc.sbercloud.ru/v3/{project_id}");
  EXPECT_TRUE(ValidateOptions(*o));
}

TEST(CloudsYaml, ApplicationCredential) {
  auto o = ParseCloudsYaml(kClouds, "appcred", "clouds.yaml");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->auth.type, AuthType::kApplicationCredential);
  EXPECT_EQ(o->auth.application_credential_secret.Reveal(), "appcred-secret-123");
  EXPECT_TRUE(ValidateOptions(*o));
}

TEST(CloudsYaml, ClearErrors) {
  auto missing = ParseCloudsYaml(kClouds, "nope", "/etc/openstack/clouds.yaml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::kConfig);
  EXPECT_NE(missing.error().message.find("no cloud named 'nope'"), std::string::npos);
  EXPECT_NE(missing.error().message.find("lab"), std::string::npos);

  auto unknown = ParseCloudsYaml("clouds: {x: {auth: {auth_url: u, pasword: p}}}", "x", "f");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("auth.pasword: unknown key"), std::string::npos);

  auto type = ParseCloudsYaml("clouds: {x: {auth_type: token, auth: {}}}", "x", "f");
  ASSERT_FALSE(type);
  EXPECT_NE(type.error().message.find("auth_type 'token'"), std::string::npos);

  auto broken = ParseCloudsYaml("clouds: [", "x", "f");
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().kind, ErrorKind::kConfig);
}

TEST(CloudConfig, SearchPathOrderAndEnvironmentOnTop) {
  TempFiles files;
  const std::string first = files.Path("cwd/clouds.yaml");
  const std::string second = files.Write("home/.config/openstack/clouds.yaml", kClouds);
  CloudConfigSources sources;
  sources.search_path = {first, second, files.Path("etc/clouds.yaml")};
  sources.env = {
      {"OS_CLOUD", "lab"}, {"OS_REGION_NAME", "RegionTwo"}, {"OS_PASSWORD", "env-pw-789"}};
  auto o = LoadCloudConfig("", sources);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->auth.username, "demo");
  EXPECT_EQ(o->region_name, "RegionTwo");
  EXPECT_EQ(o->auth.password.Reveal(), "env-pw-789");

  // OS_CLIENT_CONFIG_FILE wins over the search path.
  const std::string other = files.Write("other.yaml",
                                        "clouds:\n  lab:\n    auth:\n      auth_url: https://o/v3\n"
                                        "      username: u\n      password: pw-other\n"
                                        "      project_id: p1\n");
  sources.env["OS_CLIENT_CONFIG_FILE"] = other;
  sources.env.erase("OS_PASSWORD");
  o = LoadCloudConfig("lab", sources);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->auth.auth_url, "https://o/v3");
}

TEST(CloudConfig, EnvironmentAlone) {
  CloudConfigSources sources;
  sources.env = {{"OS_AUTH_URL", "https://keystone.lab/v3"},
                 {"OS_APPLICATION_CREDENTIAL_ID", "ac-9"},
                 {"OS_APPLICATION_CREDENTIAL_SECRET", "env-appcred-secret"},
                 {"OS_INTERFACE", "internalURL"},
                 {"OS_INSECURE", "true"}};
  auto o = LoadCloudConfig("", sources);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->auth.type, AuthType::kApplicationCredential);
  EXPECT_EQ(o->interface, "internal");
  EXPECT_FALSE(o->http.verify_tls);
}

TEST(CloudConfig, MissingPiecesAreNamed) {
  CloudConfigSources sources;
  sources.env = {{"OS_AUTH_URL", "https://k/v3"}, {"OS_USERNAME", "u"}, {"OS_PASSWORD", "pw-xyz1"}};
  auto o = LoadCloudConfig("", sources);
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().message.find("project"), std::string::npos) << o.error().message;

  sources.search_path = {"/nonexistent/clouds.yaml"};
  o = LoadCloudConfig("lab", sources);
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().message.find("/nonexistent/clouds.yaml"), std::string::npos);

  sources.env["OS_PROJECT_ID"] = "p";
  sources.env["OS_COMPUTE_API_VERSION"] = "2.40";
  o = LoadCloudConfig("", sources);
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().message.find("2.52"), std::string::npos);
}

TEST(CloudConfig, DefaultSearchPathIsTheCliOne) {
  EXPECT_EQ(DefaultSearchPath("/home/u"),
            (std::vector<std::string>{"./clouds.yaml", "/home/u/.config/openstack/clouds.yaml",
                                      "/etc/openstack/clouds.yaml"}));
}

}  // namespace
}  // namespace ra::openstack
