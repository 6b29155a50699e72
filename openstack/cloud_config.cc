#include "openstack/cloud_config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/duration.h"

extern char** environ;

namespace ra::openstack {

namespace {

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorKind::kConfig, "cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool Truthy(std::string v) {
  for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

// Deep-merges `over` into `base` (secure.yaml into clouds.yaml).
YAML::Node Merge(YAML::Node base, const YAML::Node& over) {
  if (!over.IsMap() || !base.IsMap()) return over;
  for (const auto& item : over) {
    const std::string key = item.first.as<std::string>();
    if (base[key]) {
      base[key] = Merge(base[key], item.second);
    } else {
      base[key] = item.second;
    }
  }
  return base;
}

Result<AuthType> ParseAuthType(const std::string& text, const std::string& where) {
  if (text.empty() || text == "password" || text == "v3password") return AuthType::kPassword;
  if (text == "v3applicationcredential" || text == "application_credential") {
    return AuthType::kApplicationCredential;
  }
  return Fail(ErrorKind::kConfig,
              fmt::format("{}: auth_type '{}' is not supported (password, v3password, "
                          "v3applicationcredential)",
                          where, text));
}

const std::map<std::string, std::string>& ServiceOfOverride() {
  // clouds.yaml key prefix -> the service type the client asks for.
  static const std::map<std::string, std::string> kMap{{"compute", "compute"},
                                                       {"volume", "block-storage"},
                                                       {"block_storage", "block-storage"},
                                                       {"volumev3", "block-storage"},
                                                       {"dns", "dns"}};
  return kMap;
}

}  // namespace

std::vector<std::string> DefaultSearchPath(const std::string& home) {
  std::vector<std::string> out{"./clouds.yaml"};
  if (!home.empty()) out.push_back(home + "/.config/openstack/clouds.yaml");
  out.push_back("/etc/openstack/clouds.yaml");
  return out;
}

CloudConfigSources SystemCloudConfigSources() {
  CloudConfigSources sources;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    const size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    std::string key(kv.substr(0, eq));
    if (key.starts_with("OS_") || key == "HOME") sources.env[key] = std::string(kv.substr(eq + 1));
  }
  sources.search_path = DefaultSearchPath(sources.env.count("HOME") ? sources.env.at("HOME") : "");
  return sources;
}

Result<OpenStackOptions> ParseCloudsYaml(const std::string& yaml_text, const std::string& cloud,
                                         const std::string& origin,
                                         const std::string& secure_yaml_text) {
  OpenStackOptions o;
  const std::string where = fmt::format("{}: clouds.{}", origin, cloud);
  try {
    YAML::Node root = YAML::Load(yaml_text);
    if (!secure_yaml_text.empty()) root = Merge(root, YAML::Load(secure_yaml_text));
    if (!root.IsMap() || !root["clouds"] || !root["clouds"].IsMap()) {
      return Fail(ErrorKind::kConfig, origin + ": no 'clouds' mapping");
    }
    YAML::Node c = root["clouds"][cloud];
    if (!c || !c.IsMap()) {
      std::string names;
      for (const auto& item : root["clouds"]) {
        names += (names.empty() ? "" : ", ") + item.first.as<std::string>();
      }
      return Fail(ErrorKind::kConfig, fmt::format("{}: no cloud named '{}' (clouds: {})", origin,
                                                  cloud, names.empty() ? "none" : names));
    }
    auto str = [](const YAML::Node& n, const char* key) -> std::string {
      return n[key] && n[key].IsScalar() ? n[key].as<std::string>() : std::string();
    };
    if (c["auth_type"]) {
      auto type = ParseAuthType(str(c, "auth_type"), where + ".auth_type");
      if (!type) return Fail(type.error());
      o.auth.type = *type;
    }
    if (c["auth"]) {
      YAML::Node a = c["auth"];
      if (!a.IsMap()) return Fail(ErrorKind::kConfig, where + ".auth: must be a mapping");
      static const std::set<std::string> kKnown{"auth_url",
                                                "username",
                                                "user_id",
                                                "password",
                                                "user_domain_name",
                                                "user_domain_id",
                                                "project_name",
                                                "project_id",
                                                "tenant_name",
                                                "tenant_id",
                                                "project_domain_name",
                                                "project_domain_id",
                                                "domain_name",
                                                "domain_id",
                                                "application_credential_id",
                                                "application_credential_name",
                                                "application_credential_secret"};
      for (const auto& item : a) {
        const std::string key = item.first.as<std::string>();
        if (!kKnown.count(key)) {
          return Fail(ErrorKind::kConfig, fmt::format("{}.auth.{}: unknown key", where, key));
        }
        if (!item.second.IsScalar()) {
          return Fail(ErrorKind::kConfig, fmt::format("{}.auth.{}: must be a string", where, key));
        }
      }
      o.auth.auth_url = str(a, "auth_url");
      o.auth.username = str(a, "username");
      o.auth.user_id = str(a, "user_id");
      if (!str(a, "password").empty()) o.auth.password = Secret(str(a, "password"));
      o.auth.user_domain_name = str(a, "user_domain_name");
      o.auth.user_domain_id = str(a, "user_domain_id");
      o.auth.project_name = str(a, "project_name");
      if (o.auth.project_name.empty()) o.auth.project_name = str(a, "tenant_name");
      o.auth.project_id = str(a, "project_id");
      if (o.auth.project_id.empty()) o.auth.project_id = str(a, "tenant_id");
      o.auth.project_domain_name = str(a, "project_domain_name");
      o.auth.project_domain_id = str(a, "project_domain_id");
      o.auth.domain_name = str(a, "domain_name");
      o.auth.domain_id = str(a, "domain_id");
      o.auth.application_credential_id = str(a, "application_credential_id");
      o.auth.application_credential_name = str(a, "application_credential_name");
      if (!str(a, "application_credential_secret").empty()) {
        o.auth.application_credential_secret = Secret(str(a, "application_credential_secret"));
      }
      if (!c["auth_type"] && (!o.auth.application_credential_id.empty() ||
                              !o.auth.application_credential_name.empty())) {
        o.auth.type = AuthType::kApplicationCredential;
      }
    }
    if (c["region_name"]) o.region_name = str(c, "region_name");
    if (c["regions"] && c["regions"].IsSequence() && o.region_name.empty() &&
        c["regions"].size() > 0) {
      YAML::Node first = c["regions"][0];
      o.region_name = first.IsMap() ? str(first, "name") : first.as<std::string>();
    }
    if (c["interface"]) o.interface = str(c, "interface");
    if (c["endpoint_type"] && !c["interface"]) o.interface = str(c, "endpoint_type");
    if (o.interface == "publicURL") o.interface = "public";
    if (o.interface == "internalURL") o.interface = "internal";
    if (c["identity_api_version"] && str(c, "identity_api_version") != "3") {
      return Fail(ErrorKind::kConfig,
                  where + ".identity_api_version: only Keystone v3 is supported");
    }
    if (c["verify"]) o.http.verify_tls = c["verify"].as<bool>();
    if (c["insecure"]) o.http.verify_tls = !c["insecure"].as<bool>();
    if (c["cacert"]) o.http.ca_bundle = str(c, "cacert");
    for (const auto& [prefix, service] : ServiceOfOverride()) {
      const std::string key = prefix + "_endpoint_override";
      if (c[key]) o.endpoint_overrides[service] = str(c, key.c_str());
    }
    if (c["compute_api_version"]) {
      const std::string v = str(c, "compute_api_version");
      if (v.find('.') != std::string::npos) o.compute_microversion = v;
    }
    if (c["volume_api_version"]) {
      const std::string v = str(c, "volume_api_version");
      if (v.find('.') != std::string::npos) o.volume_microversion = v;
    }
    if (c["api_timeout"]) {
      o.http.total_timeout = std::chrono::seconds(c["api_timeout"].as<int>());
    }
  } catch (const YAML::Exception& e) {
    return Fail(ErrorKind::kConfig, fmt::format("{}: {}", where, e.what()));
  }
  return o;
}

Result<void> ApplyEnvironment(const std::map<std::string, std::string>& env, OpenStackOptions& o) {
  auto get = [&](const char* key) -> std::string {
    auto it = env.find(key);
    return it == env.end() ? std::string() : it->second;
  };
  auto set = [&](const char* key, std::string& field) {
    if (std::string v = get(key); !v.empty()) field = v;
  };
  if (std::string t = get("OS_AUTH_TYPE"); !t.empty()) {
    auto type = ParseAuthType(t, "OS_AUTH_TYPE");
    if (!type) return Fail(type.error());
    o.auth.type = *type;
  }
  set("OS_AUTH_URL", o.auth.auth_url);
  set("OS_USERNAME", o.auth.username);
  set("OS_USER_ID", o.auth.user_id);
  if (std::string v = get("OS_PASSWORD"); !v.empty()) o.auth.password = Secret(v);
  set("OS_USER_DOMAIN_NAME", o.auth.user_domain_name);
  set("OS_USER_DOMAIN_ID", o.auth.user_domain_id);
  set("OS_TENANT_NAME", o.auth.project_name);
  set("OS_PROJECT_NAME", o.auth.project_name);
  set("OS_TENANT_ID", o.auth.project_id);
  set("OS_PROJECT_ID", o.auth.project_id);
  set("OS_PROJECT_DOMAIN_NAME", o.auth.project_domain_name);
  set("OS_PROJECT_DOMAIN_ID", o.auth.project_domain_id);
  set("OS_DOMAIN_NAME", o.auth.domain_name);
  set("OS_DOMAIN_ID", o.auth.domain_id);
  set("OS_APPLICATION_CREDENTIAL_ID", o.auth.application_credential_id);
  set("OS_APPLICATION_CREDENTIAL_NAME", o.auth.application_credential_name);
  if (std::string v = get("OS_APPLICATION_CREDENTIAL_SECRET"); !v.empty()) {
    o.auth.application_credential_secret = Secret(v);
    if (get("OS_AUTH_TYPE").empty()) o.auth.type = AuthType::kApplicationCredential;
  }
  set("OS_REGION_NAME", o.region_name);
  set("OS_INTERFACE", o.interface);
  set("OS_ENDPOINT_TYPE", o.interface);
  if (o.interface == "publicURL") o.interface = "public";
  if (o.interface == "internalURL") o.interface = "internal";
  set("OS_CACERT", o.http.ca_bundle);
  if (std::string v = get("OS_INSECURE"); !v.empty()) o.http.verify_tls = !Truthy(v);
  if (std::string v = get("OS_COMPUTE_API_VERSION"); v.find('.') != std::string::npos) {
    o.compute_microversion = v;
  }
  if (std::string v = get("OS_VOLUME_API_VERSION"); v.find('.') != std::string::npos) {
    o.volume_microversion = v;
  }
  if (std::string v = get("OS_IDENTITY_API_VERSION"); !v.empty() && v != "3") {
    return Fail(ErrorKind::kConfig, "OS_IDENTITY_API_VERSION: only Keystone v3 is supported");
  }
  return {};
}

namespace {

// "2.52" -> {2, 52}; {-1,-1} on anything else.
std::pair<int, int> Microversion(const std::string& v) {
  int major = -1;
  int minor = -1;
  char dot = 0;
  std::istringstream in(v);
  if (!(in >> major >> dot >> minor) || dot != '.' || !in.eof()) return {-1, -1};
  return {major, minor};
}

}  // namespace

Result<void> ValidateOptions(const OpenStackOptions& o) {
  if (o.auth.auth_url.empty()) return Fail(ErrorKind::kConfig, "auth_url is not set");
  if (!o.auth.auth_url.starts_with("http://") && !o.auth.auth_url.starts_with("https://")) {
    return Fail(ErrorKind::kConfig,
                fmt::format("auth_url '{}' must start with http:// or https://", o.auth.auth_url));
  }
  if (o.auth.type == AuthType::kPassword) {
    if (o.auth.username.empty() && o.auth.user_id.empty()) {
      return Fail(ErrorKind::kConfig, "password auth needs username or user_id");
    }
    if (o.auth.password.empty()) return Fail(ErrorKind::kConfig, "password auth needs password");
    if (o.auth.project_id.empty() && o.auth.project_name.empty() && o.auth.domain_id.empty() &&
        o.auth.domain_name.empty()) {
      return Fail(ErrorKind::kConfig,
                  "password auth needs project_id or project_name (or a domain scope)");
    }
  } else {
    if (o.auth.application_credential_id.empty() && o.auth.application_credential_name.empty()) {
      return Fail(ErrorKind::kConfig,
                  "application credential auth needs application_credential_id or _name");
    }
    if (o.auth.application_credential_secret.empty()) {
      return Fail(ErrorKind::kConfig, "application credential auth needs its secret");
    }
  }
  if (o.interface != "public" && o.interface != "internal" && o.interface != "admin") {
    return Fail(ErrorKind::kConfig,
                fmt::format("interface '{}' must be public, internal or admin", o.interface));
  }
  auto [cmaj, cmin] = Microversion(o.compute_microversion);
  if (!o.compute_microversion.empty() && (cmaj != 2 || cmin < 52)) {
    return Fail(ErrorKind::kConfig,
                fmt::format("compute microversion '{}' must be 2.52 or later (tags at boot)",
                            o.compute_microversion));
  }
  auto [vmaj, vmin] = Microversion(o.volume_microversion);
  if (!o.volume_microversion.empty() && (vmaj != 3 || vmin < 22)) {
    return Fail(ErrorKind::kConfig,
                fmt::format("volume microversion '{}' must be 3.22 or later (snapshot list by "
                            "metadata)",
                            o.volume_microversion));
  }
  for (const auto& [service, url] : o.endpoint_overrides) {
    if (!url.starts_with("http://") && !url.starts_with("https://")) {
      return Fail(
          ErrorKind::kConfig,
          fmt::format("endpoint override for '{}' ('{}') must be an http(s) URL", service, url));
    }
  }
  if (o.retry.max_attempts < 1) return Fail(ErrorKind::kConfig, "retry max_attempts must be >= 1");
  if (o.requests_per_second < 0) {
    return Fail(ErrorKind::kConfig, "requests_per_second must not be negative");
  }
  return {};
}

Result<OpenStackOptions> LoadCloudConfig(const std::string& cloud_arg,
                                         const CloudConfigSources& sources) {
  auto env = [&](const char* key) -> std::string {
    auto it = sources.env.find(key);
    return it == sources.env.end() ? std::string() : it->second;
  };
  std::string cloud = cloud_arg.empty() ? env("OS_CLOUD") : cloud_arg;
  std::vector<std::string> candidates;
  if (std::string file = env("OS_CLIENT_CONFIG_FILE"); !file.empty()) {
    candidates.push_back(file);
  } else {
    candidates = sources.search_path;
  }
  std::string found;
  for (const std::string& path : candidates) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) {
      found = path;
      break;
    }
  }
  OpenStackOptions options;
  if (!cloud.empty()) {
    if (found.empty()) {
      std::string tried;
      for (const auto& p : candidates) tried += (tried.empty() ? "" : ", ") + p;
      return Fail(
          ErrorKind::kConfig,
          fmt::format("cloud '{}' asked for, but no clouds.yaml found (tried: {})", cloud, tried));
    }
    auto text = ReadWholeFile(found);
    if (!text) return Fail(text.error());
    std::string secure;
    const std::string secure_path =
        (std::filesystem::path(found).parent_path() / "secure.yaml").string();
    std::error_code ec;
    if (std::filesystem::is_regular_file(secure_path, ec)) {
      auto s = ReadWholeFile(secure_path);
      if (!s) return Fail(s.error());
      secure = *s;
    }
    auto parsed = ParseCloudsYaml(*text, cloud, found, secure);
    if (!parsed) return Fail(parsed.error());
    options = std::move(*parsed);
  }
  if (auto ok = ApplyEnvironment(sources.env, options); !ok) return Fail(ok.error());
  if (auto ok = ValidateOptions(options); !ok) {
    return Fail(
        ErrorKind::kConfig,
        fmt::format("{}{}", cloud.empty() ? "OS_* environment: " : "cloud '" + cloud + "': ",
                    ok.error().message));
  }
  return options;
}

}  // namespace ra::openstack
