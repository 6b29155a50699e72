#include "config/config.h"

#include <arpa/inet.h>
#include <cctz/time_zone.h>
#include <fmt/format.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "config/config_reader.h"
#include "core/duration.h"
#include "core/url.h"

namespace ra::config {

using internal::Context;
using internal::DidYouMean;
using internal::Located;
using internal::MapReader;

namespace {

constexpr int kMaxReplicasLimit = 1000;

std::string Plural(size_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool Matches(std::string_view text, bool (*ok)(char)) {
  return !text.empty() && std::all_of(text.begin(), text.end(), ok);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

// HTTP's token characters (RFC 9110): anything else in a header name breaks the request.
bool IsHeaderNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsDnsLabelChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

bool LooksSecretName(std::string_view name) {
  std::string normalized(name);
  for (char& c : normalized) {
    c = c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return log::IsSecretName(normalized);
}

// Cluster names go into server names, volume names and Nova tags.
bool IsClusterName(std::string_view name) {
  return name.size() <= 32 && Matches(name, IsDnsLabelChar) && name.front() != '-' &&
         name.back() != '-';
}

/// The fields of a `name: {…}` map (clouds, load balancers) in document order.
std::vector<std::pair<std::string, Located>> NamedEntries(Context& ctx, const Located& at) {
  std::vector<std::pair<std::string, Located>> out;
  if (!at.node.IsDefined() || at.node.IsNull()) return out;
  if (!at.node.IsMap()) {
    ctx.Add(at, "expected a mapping of name: settings, got " + internal::Describe(at.node));
    return out;
  }
  std::set<std::string> seen;
  for (auto it = at.node.begin(); it != at.node.end(); ++it) {
    if (!it->first.IsScalar()) {
      ctx.Add(at.path, it->first.Mark(), "names must be plain words");
      continue;
    }
    const std::string name = it->first.Scalar();
    Located loc;
    loc.node = it->second;
    loc.path = internal::ChildPath(at.path, name);
    loc.key_mark = it->first.Mark();
    loc.mark =
        (it->second.IsNull() || it->second.Mark().line < 0) ? loc.key_mark : it->second.Mark();
    if (!seen.insert(name).second) {
      ctx.Add(loc.path, loc.key_mark, fmt::format("'{}' is defined twice", name));
      continue;
    }
    if (!Matches(name, IsNameChar) || name.size() > 64) {
      ctx.Add(loc.path, loc.key_mark,
              "names are letters, digits, '_', '-' and '.' (at most 64 characters)");
    }
    out.emplace_back(name, std::move(loc));
  }
  return out;
}

void ReadHttp(const MapReader& m, HttpOptions* http) {
  m.Bool("verify_tls", &http->verify_tls);
  if (m.Path("ca_bundle", &http->ca_bundle)) m.ctx().NoteFile(http->ca_bundle, *m.Get("ca_bundle"));
  if (auto t = m.Get("timeouts")) {
    MapReader tm(m.ctx(), *t, {"connect", "request"});
    tm.Dur("connect", &http->connect_timeout, 100ms);
    tm.Dur("request", &http->total_timeout, 100ms);
  }
}

std::optional<int> ReadTimeOfDay(Context& ctx, const Located& at, bool is_end) {
  auto text = internal::ReadString(ctx, at);
  if (!text) return std::nullopt;
  int h = -1, m = -1;
  const std::string& s = *text;
  const size_t colon = s.find(':');
  if (colon != std::string::npos && colon >= 1 && colon <= 2 && s.size() == colon + 3 &&
      std::all_of(s.begin(), s.begin() + colon, IsDigit) &&
      std::all_of(s.begin() + colon + 1, s.end(), IsDigit)) {
    h = std::stoi(s.substr(0, colon));
    m = std::stoi(s.substr(colon + 1));
  }
  if (h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && (m != 0 || !is_end))) {
    ctx.Add(at, fmt::format("expected a time of day HH:MM between 00:00 and 23:59{}, got {}",
                            is_end ? " (or 24:00)" : "", internal::Describe(at.node)));
    return std::nullopt;
  }
  // 24:00 as an end is midnight: end <= start means the window runs past midnight.
  return (h * 60 + m) % 1440;
}

// Days a window starts on: mon..sun, full names, weekdays, weekends, daily, ranges "mon-fri",
// as one word, a comma-separated string or a list.
std::optional<std::array<bool, 7>> ReadDays(Context& ctx, const Located& at) {
  static const std::vector<std::string> kShort = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  static const std::vector<std::string> kLong = {"monday", "tuesday",  "wednesday", "thursday",
                                                 "friday", "saturday", "sunday"};
  auto day_index = [&](std::string word) -> int {
    for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (int i = 0; i < 7; ++i) {
      if (word == kShort[i] || word == kLong[i]) return i;
    }
    return -1;
  };
  std::vector<std::pair<std::string, Located>> words;
  auto split = [&](const std::string& text, const Located& where) {
    std::string word;
    for (char c : text + ",") {
      if (c == ',') {
        const auto b = word.find_first_not_of(" \t");
        const auto e = word.find_last_not_of(" \t");
        words.emplace_back(b == std::string::npos ? "" : word.substr(b, e - b + 1), where);
        word.clear();
      } else {
        word += c;
      }
    }
  };
  if (at.node.IsSequence()) {
    auto items = internal::ReadList(ctx, at);
    if (!items) return std::nullopt;
    if (items->empty()) {
      ctx.Add(at, "must list at least one day");
      return std::nullopt;
    }
    bool ok = true;
    for (const Located& item : *items) {
      auto s = internal::ReadString(ctx, item);
      if (!s) {
        ok = false;
        continue;
      }
      split(*s, item);
    }
    if (!ok) return std::nullopt;
  } else {
    auto s = internal::ReadString(ctx, at);
    if (!s) return std::nullopt;
    split(*s, at);
  }
  std::array<bool, 7> days{};
  bool ok = true;
  std::vector<std::string> vocabulary = kShort;
  vocabulary.insert(vocabulary.end(), kLong.begin(), kLong.end());
  for (const char* w : {"weekdays", "weekends", "daily"}) vocabulary.emplace_back(w);
  for (const auto& [word, where] : words) {
    std::string lower = word;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "weekdays") {
      for (int i = 0; i < 5; ++i) days[i] = true;
      continue;
    }
    if (lower == "weekends") {
      days[5] = days[6] = true;
      continue;
    }
    if (lower == "daily" || lower == "everyday" || lower == "all") {
      days.fill(true);
      continue;
    }
    const size_t dash = lower.find_first_of("-.");
    if (dash != std::string::npos) {
      const size_t after = lower.find_first_not_of("-.", dash);
      const int from = day_index(lower.substr(0, dash));
      const int to = after == std::string::npos ? -1 : day_index(lower.substr(after));
      if (from >= 0 && to >= 0) {
        for (int i = from;; i = (i + 1) % 7) {
          days[i] = true;
          if (i == to) break;
        }
        continue;
      }
    }
    const int i = day_index(lower);
    if (i >= 0) {
      days[i] = true;
      continue;
    }
    ctx.Add(where, fmt::format("unknown day '{}'{}; use mon, tue, wed, thu, fri, sat, sun, "
                               "weekdays, weekends, daily, a range such as mon-fri, or a list",
                               word, DidYouMean(lower, vocabulary)));
    ok = false;
  }
  if (!ok) return std::nullopt;
  return days;
}

/// The placeholders in `text` ("{cluster}"), or a problem for an unclosed brace.
std::optional<std::vector<std::string>> Placeholders(Context& ctx, const Located& at,
                                                     const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = text.find('{', pos)) != std::string::npos) {
    const size_t close = text.find('}', pos);
    if (close == std::string::npos) {
      ctx.Add(at, "unclosed '{' in template " + internal::Describe(at.node));
      return std::nullopt;
    }
    out.push_back(text.substr(pos + 1, close - pos - 1));
    pos = close + 1;
  }
  return out;
}

std::string Render(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values) {
    const std::string token = "{" + key + "}";
    for (size_t pos = text.find(token); pos != std::string::npos; pos = text.find(token, pos)) {
      text.replace(pos, token.size(), value);
      pos += value.size();
    }
  }
  return text;
}

class Parser {
 public:
  explicit Parser(Context& ctx) : ctx_(ctx) {}

  Config Parse(const YAML::Node& root, std::string_view name);

 private:
  void ParseClouds(const Located& at);
  std::optional<CloudAuth> ParseCloudAuth(const Located& at);
  void ParseLoadBalancers(const Located& at);
  void ParseMetrics(const Located& at);
  void ParseClusters(const Located& at);
  std::optional<Cluster> ParseCluster(const Located& at);
  void ParsePrimary(const Located& at, Cluster& c);
  void ParseReplica(const Located& at, Cluster& c, const Cloud* cloud);
  void ParsePostgres(const Located& at, Cluster& c);
  void ParseClusterLoadBalancers(const Located& at, MapReader& m, Cluster& c);
  void ParseClusterLoadBalancer(const Located& at, Cluster& c, ClusterLoadBalancer& lb);
  void ParsePolicies(const Located& at, Cluster& c);
  std::optional<policies::Policy> ParsePolicy(const Located& at, const Cluster& c);
  std::optional<policies::StepScaling> ParseStepScaling(const Located& at);
  std::optional<policies::Scheduled> ParseSchedule(const Located& at, const std::string& policy,
                                                   const Cluster& c);
  void ParseBehavior(const Located& at, policies::Behavior& b);
  void ParseScalingRules(const Located& at, policies::ScalingRules& r);
  void ParseMissingData(const Located& at, Cluster& c);
  void ParseSnapshots(const Located& at, Cluster& c);
  void ParseDns(const Located& at, Cluster& c);
  void ParsePlacement(const Located& at, Cluster& c);
  void ParseSlo(const Located& at, Cluster& c);
  void ParseTimeouts(const Located& at, Cluster& c);
  void ParseApi(const std::optional<Located>& at, const Located& root);
  void ParseLoop(const Located& at);
  void ParseJournal(const Located& at);
  void ParseLogging(const Located& at);
  void ParseHa(const Located& at);
  void ParseTestOnly(const Located& at);
  void CheckEnvironment();
  void CheckCloudsYaml();
  void CheckTokens();

  Context& ctx_;
  Config cfg_;
  // Names declared, even when their settings are invalid, so that a broken cloud does not also
  // show up as "undefined" in every cluster that uses it.
  std::vector<std::string> cloud_names_;
  std::vector<std::string> lb_names_;
  struct CloudsYamlUse {
    CloudsYamlRef ref{};
    Located at{};
  };
  std::vector<CloudsYamlUse> clouds_yaml_uses_;
  struct TokenUse {
    std::string name{};
    SecretRef ref{};
    Located at{};
  };
  std::vector<TokenUse> token_uses_;
  std::optional<Located> first_metric_policy_;
  std::map<std::string, std::string> backends_;  // "lb/backend" -> cluster
};

Config Parser::Parse(const YAML::Node& root, std::string_view name) {
  cfg_.source = std::string(name);
  Located top;
  top.node = root;
  top.mark = root.Mark();
  top.key_mark = root.Mark();
  // Validating the top level declares the sections; each is then read in dependency order
  // (clouds and load balancers before the clusters that name them).
  MapReader m(ctx_, top,
              {"clouds", "load_balancers", "metrics", "clusters", "api", "loop", "journal",
               "logging", "ha", "test_only", "x-*"});
  if (auto at = m.Get("clouds")) ParseClouds(*at);
  if (auto at = m.Get("load_balancers")) ParseLoadBalancers(*at);
  if (auto at = m.Get("metrics")) ParseMetrics(*at);
  if (auto at = m.Require("clusters", " (a list of clusters to scale)")) ParseClusters(*at);
  ParseApi(m.Get("api"), top);
  if (auto at = m.Get("loop")) ParseLoop(*at);
  if (auto at = m.Get("journal")) ParseJournal(*at);
  if (auto at = m.Get("logging")) ParseLogging(*at);
  if (auto at = m.Get("ha")) ParseHa(*at);
  if (auto at = m.Get("test_only")) ParseTestOnly(*at);

  if (first_metric_policy_ && !m.Has("metrics")) {
    ctx_.Add(first_metric_policy_->path, first_metric_policy_->key_mark,
             "this policy queries metrics, but there is no 'metrics' section saying where "
             "(add metrics: {url: http://victoriametrics:8428})");
  }
  if (ctx_.options().check_environment) CheckEnvironment();
  return std::move(cfg_);
}

// ---------------------------------------------------------------------------------------------
// clouds

void Parser::ParseClouds(const Located& at) {
  auto entries = NamedEntries(ctx_, at);
  for (auto& [name, loc] : entries) {
    cloud_names_.push_back(name);
    MapReader m(ctx_, loc,
                {"clouds_yaml", "auth", "region", "interface", "verify_tls", "ca_bundle",
                 "endpoint_overrides", "availability_zones", "profile", "rate_limit",
                 "max_attempts", "timeouts"});
    if (!m.ok()) continue;
    Cloud cloud;
    cloud.name = name;
    const size_t before = ctx_.count();
    const bool has_ref = m.Has("clouds_yaml"), has_auth = m.Has("auth");
    if (has_ref == has_auth) {
      ctx_.Add(loc.path, loc.key_mark,
               has_ref ? "give either clouds_yaml or auth, not both"
                       : "missing credentials: add clouds_yaml: {cloud: NAME} (an entry of "
                         "clouds.yaml) or an inline auth: section");
    }
    if (auto ref_at = m.Get("clouds_yaml")) {
      MapReader r(ctx_, *ref_at, {"cloud", "file"});
      CloudsYamlRef ref;
      const bool ok = r.String("cloud", &ref.cloud, true);
      r.Path("file", &ref.file);
      if (ok && r.ok()) {
        cloud.clouds_yaml = ref;
        clouds_yaml_uses_.push_back(CloudsYamlUse{ref, *ref_at});
      }
    }
    if (auto auth_at = m.Get("auth")) cloud.auth = ParseCloudAuth(*auth_at);
    std::string text;
    if (m.String("region", &text)) cloud.region = text;
    std::string interface;
    if (m.Enum<std::string>("interface", &interface,
                            {{"public", "public"}, {"internal", "internal"}, {"admin", "admin"}})) {
      cloud.interface = interface;
    }
    bool verify = true;
    if (m.Bool("verify_tls", &verify)) cloud.verify_tls = verify;
    if (m.Path("ca_bundle", &text)) {
      cloud.ca_bundle = text;
      ctx_.NoteFile(text, *m.Get("ca_bundle"));
    }
    if (auto eo = m.Get("endpoint_overrides")) {
      MapReader e(ctx_, *eo, {"compute", "volumev3", "block-storage", "dns", "image", "network"});
      for (const std::string& service : e.Keys()) {
        std::string url;
        if (e.Url(service, &url)) cloud.endpoint_overrides[service] = url;
      }
      if (e.Has("volumev3") && e.Has("block-storage")) {
        ctx_.Add(eo->path, eo->key_mark,
                 "volumev3 and block-storage name the same service; give one of them");
      }
    }
    m.StringList("availability_zones", &cloud.availability_zones);
    m.Enum<CloudProfile>(
        "profile", &cloud.profile,
        {{"openstack", CloudProfile::kOpenStack}, {"sbercloud", CloudProfile::kSberCloud}});
    if (auto rl = m.Get("rate_limit")) {
      MapReader r(ctx_, *rl, {"requests_per_second", "burst"});
      r.Number("requests_per_second", &cloud.requests_per_second, 0, 10000);
      r.Int("burst", &cloud.burst, 1, 10000);
    }
    m.Int("max_attempts", &cloud.max_attempts, 1, 20);
    if (auto t = m.Get("timeouts")) {
      MapReader tm(ctx_, *t, {"connect", "request"});
      tm.Dur("connect", &cloud.connect_timeout, 100ms);
      tm.Dur("request", &cloud.request_timeout, 100ms);
    }
    if (ctx_.count() == before) cfg_.clouds.push_back(std::move(cloud));
  }
}

std::optional<CloudAuth> Parser::ParseCloudAuth(const Located& at) {
  MapReader m(ctx_, at,
              {"auth_url", "type", "user_id", "username", "user_domain_id", "user_domain_name",
               "password", "project_id", "project_name", "project_domain_id", "project_domain_name",
               "domain_id", "domain_name", "application_credential_id",
               "application_credential_name", "application_credential_secret"},
              {"password", "application_credential_secret"});
  if (!m.ok()) return std::nullopt;
  const size_t before = ctx_.count();
  CloudAuth a;
  m.Url("auth_url", &a.auth_url, true);
  const bool type_ok =
      m.Enum<CloudAuthType>("type", &a.type,
                            {{"password", CloudAuthType::kPassword},
                             {"application_credential", CloudAuthType::kApplicationCredential}}) ||
      !m.Has("type");
  for (auto [key, field] : std::initializer_list<std::pair<const char*, std::string*>>{
           {"user_id", &a.user_id},
           {"username", &a.username},
           {"user_domain_id", &a.user_domain_id},
           {"user_domain_name", &a.user_domain_name},
           {"project_id", &a.project_id},
           {"project_name", &a.project_name},
           {"project_domain_id", &a.project_domain_id},
           {"project_domain_name", &a.project_domain_name},
           {"domain_id", &a.domain_id},
           {"domain_name", &a.domain_name},
           {"application_credential_id", &a.application_credential_id},
           {"application_credential_name", &a.application_credential_name}}) {
    m.String(key, field);
  }
  if (a.user_domain_id.empty() && a.user_domain_name.empty()) a.user_domain_name = "Default";
  auto unused = [&](const char* key, const char* why) {
    if (auto v = m.Get(key)) ctx_.Add(v->path, v->key_mark, why);
  };
  if (!type_ok) {
    // Which credentials are needed depends on the type; still catch literal secrets.
    m.Secret("password", &a.password);
    m.Secret("application_credential_secret", &a.application_credential_secret);
  } else if (a.type == CloudAuthType::kPassword) {
    m.Secret("password", &a.password, true);
    if (!m.Has("username") && !m.Has("user_id")) {
      ctx_.Add(at.path, at.key_mark, "password auth needs username (or user_id)");
    }
    if (!m.Has("project_id") && !m.Has("project_name") && !m.Has("domain_id") &&
        !m.Has("domain_name")) {
      ctx_.Add(at.path, at.key_mark,
               "password auth needs a scope: project_name (or project_id); an unscoped token "
               "has no service catalog");
    }
    for (const char* key : {"application_credential_id", "application_credential_name",
                            "application_credential_secret"}) {
      unused(key, "only used with type: application_credential");
    }
  } else {
    m.Secret("application_credential_secret", &a.application_credential_secret, true);
    if (!m.Has("application_credential_id") && !m.Has("application_credential_name")) {
      ctx_.Add(at.path, at.key_mark,
               "application credential auth needs application_credential_id (or "
               "application_credential_name with username)");
    } else if (!m.Has("application_credential_id") && !m.Has("username") && !m.Has("user_id")) {
      ctx_.Add(at.path, at.key_mark,
               "application_credential_name needs username (or user_id) to say whose it is");
    }
    unused("password",
           "only used with type: password (an application credential has its own "
           "secret)");
  }
  if (ctx_.count() != before) return std::nullopt;
  return a;
}

// ---------------------------------------------------------------------------------------------
// load balancers and metrics

void Parser::ParseLoadBalancers(const Located& at) {
  for (auto& [name, loc] : NamedEntries(ctx_, at)) {
    lb_names_.push_back(name);
    MapReader m(
        ctx_, loc,
        {"url", "api_version", "username", "password", "verify_tls", "ca_bundle", "timeouts",
         "version_conflict_retries", "transient_retries", "reload_timeout", "type"},
        {"password"});
    if (!m.ok()) continue;
    const size_t before = ctx_.count();
    LoadBalancer lb;
    lb.name = name;
    // Absent means haproxy_dataplane, so configurations written before `type` stay valid.
    m.Enum<LoadBalancerType>("type", &lb.type,
                             {{"haproxy_dataplane", LoadBalancerType::kHaproxyDataplane}});
    if (m.Url("url", &lb.url, true)) {
      for (const char* suffix : {"/v2", "/v3", "/v2/", "/v3/"}) {
        if (lb.url.ends_with(suffix)) {
          ctx_.Add(*m.Get("url"),
                   "give the Data Plane API's base URL without /v2 or /v3; the version is set "
                   "by api_version");
        }
      }
    }
    m.Enum<DataPlaneApiVersion>("api_version", &lb.api_version,
                                {{"auto", DataPlaneApiVersion::kAuto},
                                 {"v2", DataPlaneApiVersion::kV2},
                                 {"v3", DataPlaneApiVersion::kV3}});
    // The Data Plane API takes HTTP basic auth, which joins user and password with ':'.
    if (m.String("username", &lb.username, true) && lb.username.find(':') != std::string::npos) {
      ctx_.Add(*m.Get("username"), "must not contain ':' (HTTP basic auth)");
    }
    m.Secret("password", &lb.password, true);
    ReadHttp(m, &lb.http);
    m.Int("version_conflict_retries", &lb.version_conflict_retries, 0, 20);
    m.Int("transient_retries", &lb.transient_retries, 0, 10);
    m.Dur("reload_timeout", &lb.reload_timeout, 1s);
    if (ctx_.count() == before) cfg_.load_balancers.push_back(std::move(lb));
  }
}

void Parser::ParseMetrics(const Located& at) {
  MapReader m(ctx_, at,
              {"url", "auth", "headers", "timeout", "verify_tls", "ca_bundle", "connect_timeout"});
  if (!m.ok()) return;
  MetricsSourceConfig ms;
  const size_t before = ctx_.count();
  m.Url("url", &ms.url, true);
  if (auto a = m.Get("auth")) {
    MapReader am(ctx_, *a, {"type", "username", "password", "token"}, {"password", "token"});
    if (am.ok()) {
      auto type_at = am.Require("type", " (basic or bearer)");
      if (type_at) {
        if (auto t = internal::ReadEnum<MetricsAuthType>(
                ctx_, *type_at,
                {{"basic", MetricsAuthType::kBasic}, {"bearer", MetricsAuthType::kBearer}})) {
          ms.auth = *t;
        }
      }
      if (ms.auth == MetricsAuthType::kBasic) {
        // HTTP basic auth joins user and password with ':'; the source refuses one in the user.
        if (am.String("username", &ms.username, true) &&
            ms.username.find(':') != std::string::npos) {
          ctx_.Add(*am.Get("username"), "must not contain ':' (HTTP basic auth)");
        }
        am.Secret("password", &ms.password, true);
        if (auto t = am.Get("token")) ctx_.Add(t->path, t->key_mark, "only used with type: bearer");
      } else if (ms.auth == MetricsAuthType::kBearer) {
        am.Secret("token", &ms.token, true);
        for (const char* key : {"username", "password"}) {
          if (auto t = am.Get(key)) ctx_.Add(t->path, t->key_mark, "only used with type: basic");
        }
      }
    }
  }
  if (auto h = m.Get("headers")) {
    // Header names are free-form: read the mapping's own pairs.
    if (h->node.IsMap()) {
      std::map<std::string, int> seen;  // lower-case name -> line: names ignore case
      for (auto it = h->node.begin(); it != h->node.end(); ++it) {
        Located v;
        v.node = it->second;
        v.key_mark = it->first.Mark();
        v.mark = v.key_mark;
        if (!it->first.IsScalar()) {
          ctx_.Add(h->path, v.key_mark,
                   "header names must be plain words, got " + internal::Describe(it->first));
          continue;
        }
        const std::string key = it->first.Scalar();
        v.path = internal::ChildPath(h->path, key);
        std::string lower = key;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (lower == "authorization" || LooksSecretName(key) || lower == "cookie") {
          ctx_.Add(v,
                   "a header carrying credentials is a literal secret and not allowed here; "
                   "use auth: {type: bearer, token: {file: PATH}} or basic auth (the value is "
                   "not shown)");
          continue;
        }
        if (lower == "content-type") {
          ctx_.Add(v, "Content-Type is set by the client");
          continue;
        }
        if (!Matches(key, IsHeaderNameChar)) {
          ctx_.Add(v, "not a valid header name (letters, digits and -_.!#$%&'*+^`|~): " +
                          internal::Describe(it->first));
          continue;
        }
        if (auto [first, fresh] = seen.emplace(lower, v.key_mark.line + 1); !fresh) {
          ctx_.Add(v, fmt::format("duplicate header '{}' (first at line {}; header names ignore "
                                  "case)",
                                  key, first->second));
          continue;
        }
        auto s = internal::ReadString(ctx_, v, true);
        if (!s) continue;
        // A line break would smuggle further headers (a credential among them) into requests.
        if (s->find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
          ctx_.Add(v,
                   "the value contains a line break or NUL, which would inject headers (the "
                   "value is not shown)");
          continue;
        }
        ms.headers[key] = *s;
      }
    } else if (!h->node.IsNull()) {
      ctx_.Add(*h, "expected a mapping of header: value, got " + internal::DescribeValue(*h));
    }
  }
  m.Dur("timeout", &ms.timeout, 100ms);
  m.Dur("connect_timeout", &ms.http.connect_timeout, 100ms);
  m.Bool("verify_tls", &ms.http.verify_tls);
  if (m.Path("ca_bundle", &ms.http.ca_bundle))
    ctx_.NoteFile(ms.http.ca_bundle, *m.Get("ca_bundle"));
  ms.http.total_timeout = ms.timeout;
  if (ctx_.count() == before) cfg_.metrics = std::move(ms);
}

// ---------------------------------------------------------------------------------------------
// clusters

void Parser::ParseClusters(const Located& at) {
  auto items = internal::ReadList(ctx_, at);
  if (!items) return;
  if (items->empty()) {
    ctx_.Add(at, "at least one cluster is required");
    return;
  }
  std::map<std::string, int> names;  // name -> line
  for (const Located& item : *items) {
    std::optional<Cluster> c = ParseCluster(item);
    if (!c) continue;
    cfg_.clusters.push_back(std::move(*c));
  }
  // Unique names, checked on the raw items so that a cluster with other problems still counts.
  for (const Located& item : *items) {
    if (!item.node.IsMap()) continue;
    for (auto it = item.node.begin(); it != item.node.end(); ++it) {
      if (!it->first.IsScalar() || it->first.Scalar() != "name" || !it->second.IsScalar()) continue;
      const std::string name = it->second.Scalar();
      auto [pos, fresh] = names.emplace(name, it->second.Mark().line + 1);
      if (!fresh) {
        ctx_.Add(
            internal::ChildPath(item.path, "name"), it->second.Mark(),
            fmt::format("cluster '{}' is defined twice (first at line {})", name, pos->second));
      }
    }
  }
}

std::optional<Cluster> Parser::ParseCluster(const Located& at) {
  MapReader m(ctx_, at,
              {"name", "cloud", "primary", "donor", "replica", "postgres", "load_balancer",
               "load_balancer_quorum", "min_replicas", "max_replicas", "policies", "behavior",
               "missing_data", "snapshots", "dns", "timeouts", "placement", "slo"});
  if (!m.ok()) return std::nullopt;
  if (at.node.IsNull()) {
    ctx_.Add(at, "empty cluster: expected name, cloud, primary, donor, replica, ...");
    return std::nullopt;
  }
  const size_t before = ctx_.count();
  Cluster c;
  if (m.String("name", &c.name, true) && !IsClusterName(c.name)) {
    ctx_.Add(*m.Get("name"),
             "cluster names are lower-case letters, digits and '-' (at most 32, not starting or "
             "ending with '-'), since they go into server names and tags; got " +
                 internal::Describe(m.Get("name")->node));
    c.name.clear();
  }
  const Cloud* cloud = nullptr;
  if (m.String("cloud", &c.cloud, true)) {
    if (std::find(cloud_names_.begin(), cloud_names_.end(), c.cloud) == cloud_names_.end()) {
      ctx_.Add(*m.Get("cloud"),
               fmt::format("cloud '{}' is not defined under clouds{}{}", c.cloud,
                           cloud_names_.empty() ? " (there is no clouds section)"
                                                : " (defined: " + Join(cloud_names_) + ")",
                           DidYouMean(c.cloud, cloud_names_)));
    }
    cloud = cfg_.FindCloud(c.cloud);
  }
  if (auto p = m.Require("primary", " (static: {host: ...} or patroni: {members: [...]})")) {
    ParsePrimary(*p, c);
  }
  if (auto d = m.Require("donor", " (the replica whose data volume is snapshotted)")) {
    MapReader dm(ctx_, *d, {"server", "volume"});
    dm.String("server", &c.donor.server, true);
    dm.String("volume", &c.donor.volume);
  }
  if (auto r = m.Require("replica", " (flavor, image, networks, ...)")) ParseReplica(*r, c, cloud);
  if (auto p = m.Require("postgres", " (at least user: for the replication-lag probes)")) {
    ParsePostgres(*p, c);
  }
  if (auto lb = m.Require("load_balancer", " (name and backend, or a list of them)")) {
    ParseClusterLoadBalancers(*lb, m, c);
  }

  auto& pol = c.policy;
  const bool min_ok = m.Int("min_replicas", &pol.min_replicas, 0, kMaxReplicasLimit);
  const bool max_ok = m.Int("max_replicas", &pol.max_replicas, 1, kMaxReplicasLimit, true);
  if ((min_ok || !m.Has("min_replicas")) && max_ok && pol.min_replicas > pol.max_replicas) {
    const Located where = min_ok ? *m.Get("min_replicas") : *m.Get("max_replicas");
    ctx_.Add(where, fmt::format("min_replicas ({}) is greater than max_replicas ({})",
                                pol.min_replicas, pol.max_replicas));
  }
  const bool bounds_ok =
      (min_ok || !m.Has("min_replicas")) && max_ok && pol.min_replicas <= pol.max_replicas;
  if (!bounds_ok) pol.max_replicas = -1;  // tells the checks below that the bounds are unknown
  if (auto p = m.Get("policies")) ParsePolicies(*p, c);
  if (auto b = m.Get("behavior")) ParseBehavior(*b, pol.behavior);
  if (auto md = m.Get("missing_data")) ParseMissingData(*md, c);
  if (auto s = m.Get("snapshots")) ParseSnapshots(*s, c);
  if (auto d = m.Get("dns")) ParseDns(*d, c);
  if (auto t = m.Get("timeouts")) ParseTimeouts(*t, c);
  if (auto p = m.Get("placement")) ParsePlacement(*p, c);
  if (auto s = m.Get("slo")) ParseSlo(*s, c);

  if (ctx_.count() != before) return std::nullopt;
  return c;
}

void Parser::ParsePrimary(const Located& at, Cluster& c) {
  MapReader m(ctx_, at, {"static", "patroni"});
  if (!m.ok()) return;
  const bool has_static = m.Has("static"), has_patroni = m.Has("patroni");
  if (has_static == has_patroni) {
    ctx_.Add(at.path, at.key_mark,
             has_static ? "give either static or patroni, not both"
                        : "say how to find the primary: static: {host: ..., port: 5432} or "
                          "patroni: {members: [http://...:8008]}");
    return;
  }
  if (has_static) {
    MapReader s(ctx_, *m.Get("static"), {"host", "port"});
    StaticPrimary p;
    if (s.String("host", &p.host, true) && !p.host.empty() && !IsPlainHost(p.host)) {
      // Written into every replica's primary_conninfo by its first boot.
      ctx_.Add(*s.Get("host"), fmt::format("'{}' is not a host name or address (letters, digits "
                                           "and . : _ - only)",
                                           p.host));
    }
    s.Int("port", &p.port, 1, 65535);
    c.primary = p;
  } else {
    MapReader p(ctx_, *m.Get("patroni"), {"members", "verify_tls", "ca_bundle", "timeouts"});
    PatroniPrimary pp;
    if (auto members = p.Require("members", " (the Patroni REST API URLs of every member)")) {
      if (auto items = internal::ReadList(ctx_, *members)) {
        if (items->empty()) ctx_.Add(*members, "must list at least one Patroni member");
        for (const Located& item : *items) {
          if (auto url = internal::ReadUrl(ctx_, item)) {
            if (std::find(pp.members.begin(), pp.members.end(), *url) != pp.members.end()) {
              ctx_.Add(item, fmt::format("'{}' is listed twice", *url));
            }
            pp.members.push_back(*url);
          }
        }
      }
    }
    ReadHttp(p, &pp.http);
    c.primary = pp;
  }
}

void Parser::ParseReplica(const Located& at, Cluster& c, const Cloud* cloud) {
  MapReader m(ctx_, at,
              {"flavor", "image", "networks", "security_groups", "zones", "volume_type",
               "volume_size", "key_name", "name_template", "tags", "metadata"});
  if (!m.ok()) return;
  ReplicaTemplate& r = c.replica;
  m.String("flavor", &r.flavor, true);
  m.String("image", &r.image, true);
  if (m.Require("networks", " (names or ids of the networks replicas attach to)")) {
    m.StringList("networks", &r.networks, false);
  }
  m.StringList("security_groups", &r.security_groups);
  if (m.StringList("zones", &r.zones) && cloud && !cloud->availability_zones.empty()) {
    const auto& azs = cloud->availability_zones;
    std::set<std::string> reported;
    const auto items = internal::ReadList(ctx_, *m.Get("zones"));
    for (const Located& item : *items) {
      const std::string zone = item.node.Scalar();
      if (std::find(azs.begin(), azs.end(), zone) == azs.end() && reported.insert(zone).second) {
        ctx_.Add(item, fmt::format("zone '{}' is not in cloud '{}' availability_zones ({}){}", zone,
                                   cloud->name, Join(azs), DidYouMean(zone, azs)));
      }
    }
  }
  m.String("volume_type", &r.volume_type);
  int size = 0;
  if (m.Int("volume_size", &size, 1, 65536)) r.volume_size_gib = size;
  m.String("key_name", &r.key_name);
  if (m.String("name_template", &r.name_template)) {
    const Located t = *m.Get("name_template");
    if (auto ph = Placeholders(ctx_, t, r.name_template)) {
      bool ok = true;
      for (const std::string& p : *ph) {
        if (p != "cluster" && p != "id" && p != "zone") {
          ctx_.Add(t, fmt::format("unknown placeholder '{{{}}}' in name_template; use {{cluster}}, "
                                  "{{id}} and {{zone}}",
                                  p));
          ok = false;
        }
      }
      if (std::find(ph->begin(), ph->end(), "id") == ph->end()) {
        ctx_.Add(t, "name_template must contain {id}, or every replica would get the same name");
        ok = false;
      }
      if (ok) {
        // The longest name the template can produce must be a valid host name.
        const std::string sample = Render(
            r.name_template,
            {{"cluster", c.name.empty() ? "cluster" : c.name}, {"id", "abcdef"}, {"zone", "zone"}});
        if (sample.size() > 63 || !Matches(sample, IsDnsLabelChar) || sample.front() == '-') {
          ctx_.Add(t, fmt::format("name_template gives names like '{}', which is not a host name "
                                  "(lower-case letters, digits and '-', at most 63 characters)",
                                  sample));
        }
      }
    }
  }
  if (m.StringList("tags", &r.tags)) {
    const auto items = internal::ReadList(ctx_, *m.Get("tags"));
    for (const Located& item : *items) {
      const std::string tag = item.node.Scalar();
      if (LooksSecretName(tag.substr(0, tag.find_first_of("=:")))) {
        ctx_.Add(item,
                 "tags are visible to every user of the project; a literal secret "
                 "is not allowed here (the value is not shown)");
      } else if (tag.size() > 60 || tag.find_first_of("/,") != std::string::npos) {
        ctx_.Add(item, fmt::format("Nova tags are at most 60 characters without '/' or ',';"
                                   " got '{}'",
                                   tag));
      }
    }
  }
  if (auto md = m.Get("metadata")) {
    if (md->node.IsMap()) {
      for (auto it = md->node.begin(); it != md->node.end(); ++it) {
        Located v;
        v.node = it->second;
        v.key_mark = it->first.Mark();
        v.mark = v.key_mark;
        const std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
        v.path = internal::ChildPath(md->path, key);
        if (key.empty() || key.size() > 255) {
          ctx_.Add(v, "metadata keys are 1 to 255 characters");
          continue;
        }
        if (LooksSecretName(key)) {
          ctx_.Add(v,
                   "server metadata is visible to every user of the project; a literal secret "
                   "is not allowed here (the value is not shown)");
          continue;
        }
        if (r.metadata.count(key)) {
          ctx_.Add(v, fmt::format("duplicate key '{}'", key));
          continue;
        }
        auto s = internal::ReadString(ctx_, v, true);
        if (!s) continue;
        if (s->size() > 255) {
          ctx_.Add(v, "metadata values are at most 255 characters");
          continue;
        }
        r.metadata[key] = *s;
      }
    } else if (!md->node.IsNull()) {
      ctx_.Add(*md, "expected a mapping of key: value, got " + internal::Describe(md->node));
    }
  }
}

void Parser::ParsePostgres(const Located& at, Cluster& c) {
  MapReader m(ctx_, at,
              {"port", "user", "password", "dbname", "sslmode", "connect_timeout", "max_lag_bytes",
               "max_lag_time", "max_receiver_silence"},
              {"password"});
  if (!m.ok()) return;
  PostgresProbe& p = c.postgres;
  m.Int("port", &p.port, 1, 65535);
  m.String("user", &p.user, true);
  m.Secret("password", &p.password);
  m.String("dbname", &p.dbname);
  m.Enum<std::string>("sslmode", &p.sslmode,
                      {{"disable", "disable"},
                       {"allow", "allow"},
                       {"prefer", "prefer"},
                       {"require", "require"},
                       {"verify-ca", "verify-ca"},
                       {"verify-full", "verify-full"}});
  m.Dur("connect_timeout", &p.connect_timeout, 1s);
  m.Size("max_lag_bytes", &p.max_lag_bytes, 1);
  m.Dur("max_lag_time", &p.max_lag_time, 1s);
  m.Dur("max_receiver_silence", &p.max_receiver_silence, 1s);
}

// One mapping (a single balancer, as before) or a list of them; then the quorum, which is only
// meaningful against the list's length.
void Parser::ParseClusterLoadBalancers(const Located& at, MapReader& cluster_map, Cluster& c) {
  if (at.node.IsSequence()) {
    auto items = internal::ReadList(ctx_, at);
    if (items && items->empty()) ctx_.Add(at, "must list at least one load balancer");
    std::map<std::string, std::string> seen;  // name -> path of its first entry
    for (const Located& item : items.value_or(std::vector<Located>{})) {
      ClusterLoadBalancer lb;
      ParseClusterLoadBalancer(item, c, lb);
      if (!lb.name.empty()) {
        auto [pos, fresh] = seen.emplace(lb.name, item.path);
        if (!fresh) {
          ctx_.Add(internal::ChildPath(item.path, "name"), item.mark,
                   fmt::format("load balancer '{}' is listed twice (first at {})", lb.name,
                               pos->second));
          continue;
        }
      }
      c.balancers.push_back(std::move(lb));
    }
  } else {
    ClusterLoadBalancer lb;
    ParseClusterLoadBalancer(at, c, lb);
    c.balancers.push_back(std::move(lb));
  }
  if (!c.balancers.empty()) c.load_balancer = c.balancers.front();
  // The actuator admits a replica at one address and port into every balancer.
  for (size_t i = 1; i < c.balancers.size(); ++i) {
    if (c.balancers[i].server_port != c.balancers[0].server_port) {
      ctx_.Add(internal::ChildPath(internal::IndexPath(at.path, i), "server_port"), at.mark,
               fmt::format("server_port {} differs from the first load balancer's {}: a replica "
                           "is admitted at one port into every balancer",
                           c.balancers[i].server_port, c.balancers[0].server_port));
    }
  }
  const int count = static_cast<int>(c.balancers.size());
  c.balancer_quorum = std::max(count, 1);
  int quorum = 0;
  if (cluster_map.Int("load_balancer_quorum", &quorum, 1, 64)) {
    if (count > 0 && quorum > count) {
      ctx_.Add(*cluster_map.Get("load_balancer_quorum"),
               fmt::format("load_balancer_quorum {} is more than the {} load balancer{} listed",
                           quorum, count, count == 1 ? "" : "s"));
    } else {
      c.balancer_quorum = quorum;
    }
  }
}

void Parser::ParseClusterLoadBalancer(const Located& at, Cluster& c, ClusterLoadBalancer& lb) {
  MapReader m(ctx_, at, {"name", "backend", "server_port", "weight", "check"});
  if (!m.ok()) return;
  if (m.String("name", &lb.name, true) &&
      std::find(lb_names_.begin(), lb_names_.end(), lb.name) == lb_names_.end()) {
    ctx_.Add(*m.Get("name"),
             fmt::format("load balancer '{}' is not defined under load_balancers{}{}", lb.name,
                         lb_names_.empty() ? " (there is no load_balancers section)"
                                           : " (defined: " + Join(lb_names_) + ")",
                         DidYouMean(lb.name, lb_names_)));
  }
  if (m.String("backend", &lb.backend, true)) {
    auto ok_char = [](char ch) { return IsNameChar(ch) || ch == ':'; };
    if (!std::all_of(lb.backend.begin(), lb.backend.end(), ok_char)) {
      ctx_.Add(*m.Get("backend"),
               "HAProxy backend names are letters, digits, '_', '-', '.' and "
               "':'; got " +
                   internal::Describe(m.Get("backend")->node));
    } else if (!lb.name.empty()) {
      auto [pos, fresh] = backends_.emplace(lb.name + "/" + lb.backend, c.name);
      if (!fresh) {
        ctx_.Add(*m.Get("backend"),
                 fmt::format("backend '{}' of load balancer '{}' is already used by cluster '{}'; "
                             "two clusters would remove each other's servers",
                             lb.backend, lb.name, pos->second));
      }
    }
  }
  lb.server_port = c.postgres.port;
  m.Int("server_port", &lb.server_port, 1, 65535);
  m.Int("weight", &lb.weight, 0, 256);
  if (auto ch = m.Get("check")) {
    MapReader cm(ctx_, *ch, {"enabled", "port", "interval", "fall", "rise"});
    cm.Bool("enabled", &lb.check.enabled);
    int port = 0;
    if (cm.Int("port", &port, 1, 65535)) lb.check.port = port;
    cm.Dur("interval", &lb.check.interval, 100ms);
    cm.Int("fall", &lb.check.fall, 1, 100);
    cm.Int("rise", &lb.check.rise, 1, 100);
  }
}

void Parser::ParsePolicies(const Located& at, Cluster& c) {
  auto items = internal::ReadList(ctx_, at);
  if (!items) return;
  std::map<std::string, int> names;
  for (const Located& item : *items) {
    auto p = ParsePolicy(item, c);
    // Names are checked on the raw entry so that duplicates are found even in broken policies.
    if (item.node.IsMap()) {
      for (auto it = item.node.begin(); it != item.node.end(); ++it) {
        if (it->first.IsScalar() && it->first.Scalar() == "name" && it->second.IsScalar()) {
          auto [pos, fresh] = names.emplace(it->second.Scalar(), it->second.Mark().line + 1);
          if (!fresh) {
            ctx_.Add(internal::ChildPath(item.path, "name"), it->second.Mark(),
                     fmt::format("policy name '{}' is used twice in this cluster (first at line "
                                 "{})",
                                 it->second.Scalar(), pos->second));
          }
        }
      }
    }
    if (p) c.policy.policies.push_back(std::move(*p));
  }
}

std::optional<policies::Policy> Parser::ParsePolicy(const Located& at, const Cluster& c) {
  MapReader m(ctx_, at, {"name", "target_tracking", "step_scaling", "schedule"});
  if (!m.ok()) return std::nullopt;
  const size_t before = ctx_.count();
  policies::Policy p;
  if (m.String("name", &p.name, true) && !Matches(p.name, IsNameChar)) {
    ctx_.Add(*m.Get("name"), "policy names are letters, digits, '_', '-' and '.'; got " +
                                 internal::Describe(m.Get("name")->node));
  }
  std::vector<std::string> kinds;
  for (const char* k : {"target_tracking", "step_scaling", "schedule"}) {
    if (m.Has(k)) kinds.emplace_back(k);
  }
  if (kinds.size() != 1) {
    ctx_.Add(at.path, at.key_mark,
             kinds.empty() ? "a policy needs one of target_tracking, step_scaling or schedule"
                           : "a policy has exactly one of target_tracking, step_scaling or "
                             "schedule; this one has " +
                                 Join(kinds) + " (make them separate policies)");
    return std::nullopt;
  }
  if (auto tt = m.Get("target_tracking")) {
    if (!first_metric_policy_) first_metric_policy_ = *tt;
    MapReader t(ctx_, *tt, {"query", "target", "value", "tolerance"});
    policies::TargetTracking rule;
    t.String("query", &rule.query, true);
    t.Number("target", &rule.target, 0, std::numeric_limits<double>::max(), true, true);
    t.Enum<policies::ValueKind>("value", &rule.value_kind,
                                {{"per_replica", policies::ValueKind::kPerReplica},
                                 {"total", policies::ValueKind::kTotal}});
    if (auto tol = t.Get("tolerance")) {
      // "10%" is how people say it; accept it beside the fraction.
      Located number = *tol;
      double scale = 1;
      if (tol->node.IsScalar() && tol->node.Scalar().ends_with("%")) {
        const std::string& text = tol->node.Scalar();
        number.node = YAML::Node(text.substr(0, text.size() - 1));
        scale = 0.01;
      }
      auto v = internal::ReadNumber(ctx_, number, 0, std::numeric_limits<double>::max());
      if (v) *v *= scale;
      if (v && *v >= 1) {
        ctx_.Add(*tol, fmt::format("tolerance is a fraction below 1 (0.1 = 10 %), got {:g}", *v));
      } else if (v) {
        rule.tolerance = *v;
      }
    }
    p.rule = rule;
  } else if (auto ss = m.Get("step_scaling")) {
    if (!first_metric_policy_) first_metric_policy_ = *ss;
    if (auto rule = ParseStepScaling(*ss)) p.rule = *rule;
  } else if (auto sc = m.Get("schedule")) {
    if (auto rule = ParseSchedule(*sc, p.name, c)) p.rule = *rule;
  }
  if (ctx_.count() != before) return std::nullopt;
  return p;
}

std::optional<policies::StepScaling> Parser::ParseStepScaling(const Located& at) {
  MapReader m(ctx_, at, {"query", "steps"});
  if (!m.ok()) return std::nullopt;
  policies::StepScaling rule;
  m.String("query", &rule.query, true);
  auto steps_at = m.Require("steps", " (a list of {lower, upper, change})");
  if (!steps_at) return std::nullopt;
  auto items = internal::ReadList(ctx_, *steps_at);
  if (!items) return std::nullopt;
  if (items->empty()) {
    ctx_.Add(*steps_at, "must list at least one step");
    return std::nullopt;
  }
  std::vector<std::pair<policies::Step, Located>> parsed;
  for (const Located& item : *items) {
    MapReader s(ctx_, item, {"lower", "upper", "change", "change_percent", "exact"});
    if (!s.ok()) continue;
    const size_t before = ctx_.count();
    policies::Step step;
    double v = 0;
    constexpr double kInf = std::numeric_limits<double>::max();
    if (s.Number("lower", &v, -kInf, kInf)) step.lower = v;
    if (s.Number("upper", &v, -kInf, kInf)) step.upper = v;
    if (!s.Has("lower") && !s.Has("upper")) {
      ctx_.Add(item.path, item.key_mark,
               "a step needs lower, upper or both (the band lower <= value < upper)");
    }
    if (step.lower && step.upper && *step.lower >= *step.upper) {
      ctx_.Add(*s.Get("upper"), fmt::format("upper ({:g}) must be greater than lower ({:g})",
                                            *step.upper, *step.lower));
    }
    std::vector<std::string> kinds;
    for (const char* k : {"change", "change_percent", "exact"}) {
      if (s.Has(k)) kinds.emplace_back(k);
    }
    if (kinds.size() != 1) {
      ctx_.Add(item.path, item.key_mark,
               kinds.empty() ? "a step needs one of change (replicas to add, negative to "
                               "remove), change_percent or exact"
                             : "a step has exactly one of change, change_percent or exact; this "
                               "one has " +
                                   Join(kinds));
    } else if (kinds[0] == "change") {
      if (auto x =
              internal::ReadInt(ctx_, *s.Get("change"), -kMaxReplicasLimit, kMaxReplicasLimit)) {
        step.type = policies::AdjustmentType::kChangeCount;
        step.adjustment = static_cast<double>(*x);
      }
    } else if (kinds[0] == "change_percent") {
      if (s.Number("change_percent", &v, -100, 10000)) {
        step.type = policies::AdjustmentType::kPercentChange;
        step.adjustment = v;
      }
    } else {
      int exact = 0;
      if (s.Int("exact", &exact, 0, kMaxReplicasLimit)) {
        step.type = policies::AdjustmentType::kExactCount;
        step.adjustment = exact;
      }
    }
    if (ctx_.count() == before) parsed.emplace_back(step, item);
  }
  // Bands must not overlap: sorted by lower bound, each must end where (or before) the next
  // starts.
  std::vector<size_t> order(parsed.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  constexpr double kPosInf = std::numeric_limits<double>::infinity();
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return parsed[a].first.lower.value_or(kNegInf) < parsed[b].first.lower.value_or(kNegInf);
  });
  auto band = [](const policies::Step& s) {
    return fmt::format("[{}, {})", s.lower ? fmt::format("{:g}", *s.lower) : "-inf",
                       s.upper ? fmt::format("{:g}", *s.upper) : "+inf");
  };
  bool ok = parsed.size() == items->size();
  for (size_t k = 1; k < order.size(); ++k) {
    const auto& prev = parsed[order[k - 1]];
    const auto& next = parsed[order[k]];
    if (prev.first.upper.value_or(kPosInf) > next.first.lower.value_or(kNegInf)) {
      const auto& later = order[k] > order[k - 1] ? next : prev;
      const auto& earlier = order[k] > order[k - 1] ? prev : next;
      ctx_.Add(later.second, fmt::format("step band {} overlaps step band {} at line {}; bands "
                                         "must not overlap (lower is inclusive, upper exclusive)",
                                         band(later.first), band(earlier.first),
                                         earlier.second.key_mark.line + 1));
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  for (auto& [step, loc] : parsed) rule.steps.push_back(step);
  return rule;
}

std::optional<policies::Scheduled> Parser::ParseSchedule(const Located& at,
                                                         const std::string& policy,
                                                         const Cluster& c) {
  MapReader m(ctx_, at, {"time_zone", "windows"});
  if (!m.ok()) return std::nullopt;
  const size_t before = ctx_.count();
  policies::Scheduled rule;
  if (m.String("time_zone", &rule.time_zone)) {
    cctz::time_zone tz;
    if (!cctz::load_time_zone(rule.time_zone, &tz)) {
      ctx_.Add(*m.Get("time_zone"),
               fmt::format("unknown time zone '{}': use an IANA name such as Europe/Moscow or "
                           "UTC (is tzdata installed?)",
                           rule.time_zone));
    }
  }
  auto windows_at = m.Require("windows", " (a list of {days, start, end, min_replicas})");
  if (!windows_at) return std::nullopt;
  auto items = internal::ReadList(ctx_, *windows_at);
  if (!items) return std::nullopt;
  if (items->empty()) ctx_.Add(*windows_at, "must list at least one window");
  std::set<std::string> names;
  for (size_t i = 0; i < items->size(); ++i) {
    const Located& item = (*items)[i];
    MapReader w(ctx_, item, {"name", "days", "start", "end", "min_replicas"});
    if (!w.ok()) continue;
    policies::ScheduleWindow win;
    win.name = fmt::format("{}#{}", policy, i + 1);
    if (w.String("name", &win.name) && !names.insert(win.name).second) {
      ctx_.Add(*w.Get("name"), fmt::format("window name '{}' is used twice", win.name));
    }
    if (auto d = w.Get("days")) {
      if (auto days = ReadDays(ctx_, *d)) win.days = *days;
    } else {
      win.days.fill(true);
    }
    if (auto s = w.Require("start", " (HH:MM local time)")) {
      if (auto v = ReadTimeOfDay(ctx_, *s, false)) win.start_minute = *v;
    }
    if (auto e = w.Require("end",
                           " (HH:MM local time; an end before the start runs past "
                           "midnight)")) {
      if (auto v = ReadTimeOfDay(ctx_, *e, true)) win.end_minute = *v;
    }
    if (w.Int("min_replicas", &win.min_replicas, 0, kMaxReplicasLimit, true) &&
        c.policy.max_replicas >= 0 && win.min_replicas > c.policy.max_replicas) {
      ctx_.Add(*w.Get("min_replicas"),
               fmt::format("the window's min_replicas ({}) is greater than the cluster's "
                           "max_replicas ({})",
                           win.min_replicas, c.policy.max_replicas));
    }
    rule.windows.push_back(win);
  }
  if (ctx_.count() != before) return std::nullopt;
  return rule;
}

void Parser::ParseBehavior(const Located& at, policies::Behavior& b) {
  MapReader m(ctx_, at, {"scale_up", "scale_down"});
  if (auto u = m.Get("scale_up")) ParseScalingRules(*u, b.scale_up);
  if (auto d = m.Get("scale_down")) ParseScalingRules(*d, b.scale_down);
}

void Parser::ParseScalingRules(const Located& at, policies::ScalingRules& r) {
  MapReader m(ctx_, at, {"stabilization_window", "select", "limits"});
  if (!m.ok()) return;
  m.Dur("stabilization_window", &r.stabilization_window);
  m.Enum<policies::SelectPolicy>("select", &r.select,
                                 {{"max", policies::SelectPolicy::kMax},
                                  {"min", policies::SelectPolicy::kMin},
                                  {"disabled", policies::SelectPolicy::kDisabled}});
  auto limits_at = m.Get("limits");
  if (!limits_at) return;
  auto items = internal::ReadList(ctx_, *limits_at);
  if (!items) return;
  std::vector<policies::RateLimit> limits;
  for (const Located& item : *items) {
    MapReader l(ctx_, item, {"replicas", "percent", "period"});
    if (!l.ok()) continue;
    policies::RateLimit limit;
    const bool has_r = l.Has("replicas"), has_p = l.Has("percent");
    if (has_r == has_p) {
      ctx_.Add(item.path, item.key_mark,
               has_r ? "a limit has either replicas or percent, not both"
                     : "a limit needs replicas (at most N replicas per period) or percent");
      continue;
    }
    if (has_r) {
      limit.type = policies::RateLimit::Type::kReplicas;
      if (!l.Int("replicas", &limit.value, 1, kMaxReplicasLimit)) continue;
    } else {
      limit.type = policies::RateLimit::Type::kPercent;
      if (!l.Int("percent", &limit.value, 1, 10000)) continue;
    }
    if (l.Has("period") && !l.Dur("period", &limit.period, 1s)) continue;
    limits.push_back(limit);
  }
  r.limits = limits;
}

void Parser::ParseMissingData(const Located& at, Cluster& c) {
  MapReader m(ctx_, at, {"action", "fallback_replicas", "max_age"});
  if (!m.ok()) return;
  policies::MissingData& md = c.policy.missing_data;
  const bool action_ok =
      m.Enum<policies::MissingDataAction>("action", &md.action,
                                          {{"hold", policies::MissingDataAction::kHold},
                                           {"fallback", policies::MissingDataAction::kFallback}});
  m.Dur("max_age", &md.max_age, 1s);
  if (!action_ok && m.Has("action")) return;
  if (md.action == policies::MissingDataAction::kFallback) {
    if (m.Int("fallback_replicas", &md.fallback_replicas, 0, kMaxReplicasLimit, true) &&
        c.policy.max_replicas >= 0 &&
        (md.fallback_replicas < c.policy.min_replicas ||
         md.fallback_replicas > c.policy.max_replicas)) {
      ctx_.Add(*m.Get("fallback_replicas"),
               fmt::format("fallback_replicas ({}) must be between min_replicas ({}) and "
                           "max_replicas ({})",
                           md.fallback_replicas, c.policy.min_replicas, c.policy.max_replicas));
    }
  } else if (auto f = m.Get("fallback_replicas")) {
    ctx_.Add(f->path, f->key_mark,
             "fallback_replicas is only used with action: fallback (the action is hold)");
  }
}

void Parser::ParseSnapshots(const Located& at, Cluster& c) {
  MapReader m(ctx_, at, {"interval", "keep", "max_age", "wal_retention"});
  if (!m.ok()) return;
  Snapshots& s = c.snapshots;
  const bool interval_ok = m.Dur("interval", &s.interval, 1min) || !m.Has("interval");
  m.Int("keep", &s.keep, 1, 100);
  const bool age_ok = m.Dur("max_age", &s.max_age, 1min) || !m.Has("max_age");
  Duration wal{};
  if (m.Dur("wal_retention", &wal, 1min)) s.wal_retention = wal;
  if (interval_ok && age_ok && s.interval > s.max_age) {
    const Located where = m.Has("interval") ? *m.Get("interval") : *m.Get("max_age");
    ctx_.Add(where, fmt::format("snapshots are taken every {} but may be at most {} old, so "
                                "there would be times with no usable snapshot: make interval "
                                "shorter than max_age",
                                FormatDuration(s.interval), FormatDuration(s.max_age)));
  }
  if (age_ok && s.wal_retention && s.max_age > *s.wal_retention) {
    const Located where = m.Has("max_age") ? *m.Get("max_age") : *m.Get("wal_retention");
    ctx_.Add(where, fmt::format("max_age ({}) exceeds wal_retention ({}): a replica built from "
                                "an older snapshot could not catch up, since the WAL it needs "
                                "is gone",
                                FormatDuration(s.max_age), FormatDuration(*s.wal_retention)));
  }
}

void Parser::ParseDns(const Located& at, Cluster& c) {
  MapReader m(ctx_, at, {"zone", "ttl", "record"});
  if (!m.ok()) return;
  Dns d;
  if (m.String("zone", &d.zone, true) && !d.zone.ends_with(".")) {
    ctx_.Add(*m.Get("zone"),
             fmt::format("a Designate zone name ends with a dot: write '{}.'", d.zone));
  }
  m.Int("ttl", &d.ttl, 1, 604800);
  if (m.String("record", &d.record_template)) {
    const Located t = *m.Get("record");
    if (auto ph = Placeholders(ctx_, t, d.record_template)) {
      for (const std::string& p : *ph) {
        if (p != "name" && p != "cluster") {
          ctx_.Add(t, fmt::format("unknown placeholder '{{{}}}' in record; use {{name}} and "
                                  "{{cluster}}",
                                  p));
        }
      }
      if (std::find(ph->begin(), ph->end(), "name") == ph->end()) {
        ctx_.Add(t, "record must contain {name}, or every replica would get the same record");
      }
    }
  }
  c.dns = d;
}

void Parser::ParsePlacement(const Located& at, Cluster& c) {
  MapReader m(ctx_, at, {"prefer", "max_latency", "samples"});
  if (!m.ok()) return;
  Placement& p = c.placement;
  m.Enum<Placement::Prefer>(
      "prefer", &p.prefer,
      {{"spread", Placement::Prefer::kSpread}, {"latency", Placement::Prefer::kLatency}});
  // Latencies are fractions of a millisecond on a LAN: any positive duration is a threshold.
  Duration max_latency{};
  if (m.Dur("max_latency", &max_latency)) {
    if (max_latency <= Duration(0)) {
      ctx_.Add(*m.Get("max_latency"),
               "max_latency must be greater than 0 (zones at or under it are preferred)");
    } else {
      p.max_latency = max_latency;
    }
  }
  m.Int("samples", &p.samples, 1, 1000);
}

void Parser::ParseSlo(const Located& at, Cluster& c) {
  MapReader m(ctx_, at, {"time_to_serve_budget", "replay_lag_alert"});
  if (!m.ok()) return;
  // Thresholds the alert rules compare with: 0 would make every replica (or every lag) alert.
  const auto positive = [&](std::string_view key, Duration* out, std::string_view why) {
    Duration d{};
    if (!m.Dur(key, &d)) return;
    if (d <= Duration(0)) {
      ctx_.Add(*m.Get(key), fmt::format("{} must be greater than 0 ({})", key, why));
      return;
    }
    *out = d;
  };
  positive("time_to_serve_budget", &c.slo.time_to_serve_budget,
           "a replica not serving this long after the decision to create it is alerted on");
  positive("replay_lag_alert", &c.slo.replay_lag_alert,
           "a serving replica whose replay lag stays above it is alerted on");
}

void Parser::ParseTimeouts(const Located& at, Cluster& c) {
  MapReader m(ctx_, at,
              {"snapshot_create", "volume_create", "server_build", "postgres_start", "catch_up",
               "lagging", "drain", "delete"});
  PhaseTimeouts& t = c.timeouts;
  m.Dur("snapshot_create", &t.snapshot_create, 1s);
  m.Dur("volume_create", &t.volume_create, 1s);
  m.Dur("server_build", &t.server_build, 1s);
  m.Dur("postgres_start", &t.postgres_start, 1s);
  m.Dur("catch_up", &t.catch_up, 1s);
  m.Dur("lagging", &t.lagging, 1s);
  m.Dur("drain", &t.drain, 1s);
  m.Dur("delete", &t.delete_, 1s);
}

// ---------------------------------------------------------------------------------------------
// service

bool ParseListen(const std::string& text, std::string* host, int* port) {
  std::string h, p;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find("]:");
    if (close == std::string::npos) return false;
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
    in6_addr a6{};
    if (inet_pton(AF_INET6, h.c_str(), &a6) != 1) return false;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    in_addr a4{};
    const bool ip = inet_pton(AF_INET, h.c_str(), &a4) == 1;
    const bool hostname =
        std::all_of(h.begin(), h.end(),
                    [](char c) {
                      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
                    }) &&
        std::any_of(h.begin(), h.end(),
                    [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; });
    if (!ip && !hostname) return false;
  }
  if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), IsDigit)) return false;
  const int n = std::stoi(p);
  if (n < 1 || n > 65535) return false;
  *host = h;
  *port = n;
  return true;
}

void Parser::ParseApi(const std::optional<Located>& at, const Located& root) {
  if (!at) {
    ctx_.Add("api", root.key_mark,
             "missing required section 'api' (listen address and at least one admin token)");
    return;
  }
  MapReader m(ctx_, *at, {"listen", "tokens", "max_connections", "idle_timeout", "tls"});
  if (!m.ok()) return;
  ApiConfig& api = cfg_.api;
  m.Int("max_connections", &api.max_connections, 1, 100000);
  m.Dur("idle_timeout", &api.idle_timeout, 1s);
  if (auto tls_at = m.Get("tls")) {
    MapReader t(ctx_, *tls_at, {"certificate_file", "key_file"});
    if (t.ok()) {
      ApiTls tls;
      const bool has_cert = t.Require("certificate_file", " (a PEM file)").has_value() &&
                            t.Path("certificate_file", &tls.certificate_file);
      const bool has_key =
          t.Require("key_file", " (a PEM file)").has_value() && t.Path("key_file", &tls.key_file);
      if (has_cert) ctx_.NoteFile(tls.certificate_file, *t.Get("certificate_file"));
      if (has_key) ctx_.NoteFile(tls.key_file, *t.Get("key_file"));
      if (has_cert && has_key) api.tls = std::move(tls);
    }
  }
  if (m.String("listen", &api.listen) && !ParseListen(api.listen, &api.host, &api.port)) {
    ctx_.Add(*m.Get("listen"),
             "expected HOST:PORT such as 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080, got " +
                 internal::Describe(m.Get("listen")->node));
  }
  auto tokens_at = m.Require("tokens", " (at least one {name, role: admin, token: {file: ...}})");
  if (!tokens_at) return;
  auto items = internal::ReadList(ctx_, *tokens_at);
  if (!items) return;
  std::map<std::string, int> names;
  bool admin = false, all_ok = true;
  for (const Located& item : *items) {
    MapReader t(ctx_, item, {"name", "role", "token"}, {"token"});
    if (!t.ok()) {
      all_ok = false;
      continue;
    }
    const size_t before = ctx_.count();
    ApiToken token;
    if (t.String("name", &token.name, true)) {
      auto [pos, fresh] = names.emplace(token.name, t.Get("name")->mark.line + 1);
      if (!fresh) {
        ctx_.Add(*t.Get("name"), fmt::format("token name '{}' is used twice (first at line {})",
                                             token.name, pos->second));
      }
    }
    t.Enum<TokenRole>("role", &token.role,
                      {{"admin", TokenRole::kAdmin}, {"read-only", TokenRole::kReadOnly}}, true);
    if (t.Secret("token", &token.token, true)) {
      token_uses_.push_back(TokenUse{token.name, token.token, *t.Get("token")});
    }
    if (ctx_.count() != before) {
      all_ok = false;
      continue;
    }
    admin = admin || token.role == TokenRole::kAdmin;
    api.tokens.push_back(std::move(token));
  }
  if (all_ok && !admin) {
    ctx_.Add(tokens_at->path, tokens_at->key_mark,
             "at least one token with role: admin is required (scale, pause and "
             "resume need one)");
  }
}

void Parser::ParseLoop(const Located& at) {
  MapReader m(ctx_, at,
              {"interval", "jitter", "follow_transitions", "follow_min_delay", "follow_fraction",
               "follow_rate_share"});
  const bool interval_ok = m.Dur("interval", &cfg_.loop.interval, 1s) || !m.Has("interval");
  m.Bool("follow_transitions", &cfg_.loop.follow_transitions);
  m.Dur("follow_min_delay", &cfg_.loop.follow_min_delay, 50ms);
  m.Number("follow_fraction", &cfg_.loop.follow_fraction, 0.01, 1);
  m.Number("follow_rate_share", &cfg_.loop.follow_rate_share, 0.05, 1);
  if (m.Dur("jitter", &cfg_.loop.jitter) && interval_ok && cfg_.loop.jitter >= cfg_.loop.interval) {
    ctx_.Add(*m.Get("jitter"),
             fmt::format("jitter ({}) must be shorter than the interval ({})",
                         FormatDuration(cfg_.loop.jitter), FormatDuration(cfg_.loop.interval)));
  }
}

void Parser::ParseJournal(const Located& at) {
  MapReader m(ctx_, at, {"path", "max_size", "keep"});
  m.Path("path", &cfg_.journal.path);
  m.Size("max_size", &cfg_.journal.max_size_bytes, int64_t{1} << 20);
  m.Int("keep", &cfg_.journal.keep, 1, 1000);
}

void Parser::ParseLogging(const Located& at) {
  MapReader m(ctx_, at, {"level", "path"});
  m.Enum<log::Level>("level", &cfg_.logging.level,
                     {{"debug", log::Level::kDebug},
                      {"info", log::Level::kInfo},
                      {"warn", log::Level::kWarn},
                      {"error", log::Level::kError}});
  m.Path("path", &cfg_.logging.path);
}

void Parser::ParseTestOnly(const Located& at) {
  MapReader m(ctx_, at, {"probe_double"});
  m.Bool("probe_double", &cfg_.test_only.probe_double);
}

void Parser::ParseHa(const Located& at) {
  MapReader m(ctx_, at, {"etcd", "lease_ttl", "key_prefix", "instance"});
  if (!m.ok()) return;
  HaConfig ha;
  if (auto e = m.Require("etcd", " (endpoints: [https://etcd-1:2379, ...])")) {
    MapReader em(ctx_, *e, {"endpoints", "tls", "auth"});
    if (em.ok()) {
      if (em.StringList("endpoints", &ha.etcd.endpoints, false)) {
        const Located list = *em.Get("endpoints");
        for (size_t i = 0; i < ha.etcd.endpoints.size(); ++i) {
          std::string& url = ha.etcd.endpoints[i];
          if (!url.starts_with("http://") && !url.starts_with("https://")) {
            ctx_.Add(fmt::format("{}[{}]", list.path, i), list.mark,
                     fmt::format("'{}' is not an http:// or https:// URL of etcd's gateway", url));
          }
          while (url.ends_with("/")) url.pop_back();
        }
      } else if (!em.Has("endpoints")) {
        ctx_.Add(e->path, e->key_mark, "missing required field 'endpoints'");
      }
      if (auto t = em.Get("tls")) {
        MapReader tm(ctx_, *t, {"ca_file", "cert_file", "key_file"});
        tm.Path("ca_file", &ha.etcd.ca_file);
        tm.Path("cert_file", &ha.etcd.cert_file);
        tm.Path("key_file", &ha.etcd.key_file);
        if (ha.etcd.cert_file.empty() != ha.etcd.key_file.empty()) {
          ctx_.Add(t->path, t->key_mark, "cert_file and key_file go together");
        }
      }
      if (auto a = em.Get("auth")) {
        MapReader am(ctx_, *a, {"username", "password"}, {"password"});
        am.String("username", &ha.etcd.username, true);
        am.Secret("password", &ha.etcd.password, true);
      }
    }
  }
  if (m.Dur("lease_ttl", &ha.lease_ttl, 2s) && ha.lease_ttl % 1s != Duration(0)) {
    ctx_.Add(*m.Get("lease_ttl"), "must be whole seconds (etcd's lease TTL is in seconds)");
  }
  if (m.String("key_prefix", &ha.key_prefix) && !ha.key_prefix.starts_with("/")) {
    ctx_.Add(*m.Get("key_prefix"), "must start with '/'");
  }
  while (ha.key_prefix.size() > 1 && ha.key_prefix.ends_with("/")) ha.key_prefix.pop_back();
  if (!m.String("instance", &ha.instance)) {
    char host[256] = {0};
    if (::gethostname(host, sizeof host - 1) == 0) ha.instance = host;
  }
  if (ha.instance.empty()) {
    ctx_.Add(at.path, at.key_mark, "instance is empty and the host name could not be read");
  }
  cfg_.ha = std::move(ha);
}

// ---------------------------------------------------------------------------------------------
// what exists only on the service's machine

std::string ErrnoText(int err) { return std::strerror(err); }

void Parser::CheckEnvironment() {
  for (const auto& use : ctx_.secrets()) {
    auto value = ResolveSecret(use.ref, ctx_.options().env);
    if (!value) {
      ctx_.Add(use.path, use.mark, value.error().message);
    } else if (value->Reveal().find('\n') != std::string::npos) {
      ctx_.Add(use.path, use.mark,
               fmt::format("{} holds more than one line; it should hold the secret alone",
                           use.ref.Describe()));
    }
  }
  for (const auto& use : ctx_.files()) {
    std::error_code ec;
    if (!std::filesystem::exists(use.file, ec)) {
      ctx_.Add(use.path, use.mark, fmt::format("file {} does not exist", use.file));
    } else if (!std::filesystem::is_regular_file(use.file, ec)) {
      ctx_.Add(use.path, use.mark, fmt::format("{} is not a regular file", use.file));
    } else if (std::ifstream in(use.file); !in) {
      ctx_.Add(use.path, use.mark, fmt::format("cannot read {}: {}", use.file, ErrnoText(errno)));
    }
  }
  CheckCloudsYaml();
  CheckTokens();
}

void Parser::CheckCloudsYaml() {
  for (const auto& use : clouds_yaml_uses_) {
    std::vector<std::string> candidates;
    if (!use.ref.file.empty()) {
      candidates.push_back(use.ref.file);
    } else if (auto f = ctx_.options().env("OS_CLIENT_CONFIG_FILE"); f && !f->empty()) {
      candidates.push_back(*f);
    } else {
      // Like the openstack CLI: the working directory's clouds.yaml, not the config's folder.
      std::error_code ec;
      candidates.push_back((std::filesystem::current_path(ec) / "clouds.yaml").string());
      if (auto home = ctx_.options().env("HOME"); home && !home->empty()) {
        candidates.push_back(*home + "/.config/openstack/clouds.yaml");
      }
      candidates.push_back("/etc/openstack/clouds.yaml");
    }
    std::string found;
    std::error_code ec;
    for (const auto& c : candidates) {
      if (std::filesystem::is_regular_file(c, ec)) {
        found = c;
        break;
      }
    }
    if (found.empty()) {
      ctx_.Add(use.at.path, use.at.key_mark,
               candidates.size() == 1
                   ? fmt::format("clouds.yaml file {} does not exist", candidates[0])
                   : fmt::format("no clouds.yaml found (looked at {}); give its file:",
                                 Join(candidates)));
      continue;
    }
    std::ifstream in(found);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      ctx_.Add(use.at.path, use.at.key_mark,
               fmt::format("cannot read {}: {}", found, ErrnoText(errno)));
      continue;
    }
    try {
      YAML::Node doc = YAML::Load(text.str());
      YAML::Node clouds = doc.IsMap() ? doc["clouds"] : YAML::Node();
      if (!clouds.IsMap()) {
        ctx_.Add(use.at.path, use.at.key_mark, fmt::format("{} has no 'clouds:' mapping", found));
        continue;
      }
      std::vector<std::string> names;
      for (auto it = clouds.begin(); it != clouds.end(); ++it) {
        if (it->first.IsScalar()) names.push_back(it->first.Scalar());
      }
      if (std::find(names.begin(), names.end(), use.ref.cloud) == names.end()) {
        ctx_.Add(
            use.at.path, use.at.key_mark,
            fmt::format("cloud '{}' is not in {} (it has: {}){}", use.ref.cloud, found,
                        names.empty() ? "none" : Join(names), DidYouMean(use.ref.cloud, names)));
      }
    } catch (const YAML::Exception& e) {
      // The message carries a position, never the file's values.
      ctx_.Add(use.at.path, use.at.key_mark,
               fmt::format("{} is not valid YAML: line {}: {}", found, e.mark.line + 1, e.msg));
    }
  }
}

void Parser::CheckTokens() {
  constexpr size_t kMinTokenLength = 16;
  std::map<std::string, std::string> seen;  // value -> token name
  for (const auto& use : token_uses_) {
    auto value = ResolveSecret(use.ref, ctx_.options().env);
    if (!value) continue;  // already reported
    if (value->Reveal().size() < kMinTokenLength) {
      ctx_.Add(use.at.path, use.at.mark,
               fmt::format("the token in {} is shorter than {} characters; generate one with "
                           "`openssl rand -hex 32`",
                           use.ref.Describe(), kMinTokenLength));
      continue;
    }
    auto [pos, fresh] = seen.emplace(value->Reveal(), use.name);
    if (!fresh) {
      ctx_.Add(use.at.path, use.at.mark,
               fmt::format("token '{}' has the same value as token '{}'; each client needs its "
                           "own",
                           use.name, pos->second));
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string SecretRef::Describe() const {
  if (!file.empty()) return "file " + file;
  if (!env.empty()) return "environment variable " + env;
  return "no reference";
}

std::optional<std::string> ProcessEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

Result<Secret> ResolveSecret(const SecretRef& ref, const EnvLookup& env) {
  std::string value;
  if (!ref.file.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(ref.file, ec)) {
      return Fail(ErrorKind::kConfig, fmt::format("secret file {} does not exist", ref.file));
    }
    // Opening a FIFO would block and /dev/zero would never end: regular files only, bounded.
    if (!std::filesystem::is_regular_file(ref.file, ec)) {
      return Fail(ErrorKind::kConfig,
                  fmt::format("secret file {} is not a regular file", ref.file));
    }
    constexpr std::uintmax_t kMaxSecretFile = 64 * 1024;
    if (std::filesystem::file_size(ref.file, ec) > kMaxSecretFile) {
      return Fail(ErrorKind::kConfig,
                  fmt::format("secret file {} is larger than 64 KiB; it should hold the secret "
                              "alone",
                              ref.file));
    }
    std::ifstream in(ref.file, std::ios::binary);
    if (!in) {
      return Fail(ErrorKind::kConfig,
                  fmt::format("cannot read secret file {}: {}", ref.file, ErrnoText(errno)));
    }
    value.resize(kMaxSecretFile + 1);
    in.read(value.data(), static_cast<std::streamsize>(value.size()));
    value.resize(static_cast<size_t>(in.gcount()));
  } else if (!ref.env.empty()) {
    std::optional<std::string> v;
    if (env) v = env(ref.env);
    if (!v) {
      return Fail(ErrorKind::kConfig, fmt::format("environment variable {} is not set", ref.env));
    }
    value = *v;
  } else {
    return Fail(ErrorKind::kConfig, "no secret reference given");
  }
  if (value.ends_with("\n")) {
    value.pop_back();
    if (value.ends_with("\r")) value.pop_back();
  }
  if (value.empty()) {
    return Fail(ErrorKind::kConfig, fmt::format("{} is empty", ref.Describe()));
  }
  return Secret(std::move(value));
}

const Cloud* Config::FindCloud(std::string_view name) const {
  for (const Cloud& c : clouds) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

const LoadBalancer* Config::FindLoadBalancer(std::string_view name) const {
  for (const LoadBalancer& lb : load_balancers) {
    if (lb.name == name) return &lb;
  }
  return nullptr;
}

const Cluster* Config::FindCluster(std::string_view name) const {
  for (const Cluster& c : clusters) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

ConfigResult LoadConfigFromString(std::string_view text, std::string_view name,
                                  const LoadOptions& options) {
  Context ctx(options, text);
  auto fail = [&]() -> ConfigResult {
    auto problems = std::move(ctx.problems());
    std::stable_sort(problems.begin(), problems.end(),
                     [](const ConfigProblem& a, const ConfigProblem& b) {
                       return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                     });
    return tl::unexpected(std::move(problems));
  };
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    // yaml-cpp stops at the first syntax error; nothing after it can be trusted.
    std::string hint;
    if (e.mark.line >= 0) {
      // YAML forbids tabs in indentation, and yaml-cpp's message does not say so.
      std::istringstream lines{std::string(text)};
      std::string line;
      for (int i = 0; i <= e.mark.line && std::getline(lines, line); ++i) {
      }
      const size_t indent_end = line.find_first_not_of(" \t");
      if (line.substr(0, indent_end).find('\t') != std::string::npos) {
        hint = " (this line is indented with a tab; YAML allows only spaces)";
      }
    }
    ctx.Add("", e.mark, "YAML syntax error: " + e.msg + hint);
    return fail();
  }
  const YAML::Mark start;  // line 1, column 1
  if (docs.empty() || (docs.size() == 1 && docs[0].IsNull())) {
    ctx.Add("", start, "the configuration is empty");
    return fail();
  }
  if (docs.size() > 1) {
    ctx.Add("", docs[1].Mark().line >= 0 ? docs[1].Mark() : start,
            "the file holds several YAML documents ('---'); the configuration is one");
  }
  if (!docs[0].IsMap()) {
    ctx.Add("", docs[0].Mark().line >= 0 ? docs[0].Mark() : start,
            "expected a mapping of sections (clouds:, clusters:, api:, ...), got " +
                internal::Describe(docs[0]));
    return fail();
  }
  Config config;
  try {
    Parser parser(ctx);
    config = parser.Parse(docs[0], name);
  } catch (const std::exception& e) {
    // A library surprise must not crash validation; it is reported like any other problem.
    ctx.Add("", start, std::string("internal error while reading the configuration: ") + e.what());
  }
  if (ctx.count() > 0) return fail();
  return config;
}

ConfigResult LoadConfig(const std::string& path, LoadOptions options) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return tl::unexpected(ConfigProblems{{"", 0, 0, path + " is a directory, not a file"}});
  }
  if (!in) {
    return tl::unexpected(
        ConfigProblems{{"", 0, 0, fmt::format("cannot read {}: {}", path, ErrnoText(errno))}});
  }
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigBytes) {
    return tl::unexpected(ConfigProblems{
        {"", 0, 0, fmt::format("{} is larger than 16 MiB; not a configuration", path)}});
  }
  if (options.base_dir.empty()) {
    options.base_dir = std::filesystem::path(path).parent_path().string();
    if (options.base_dir.empty()) options.base_dir = ".";
  }
  return LoadConfigFromString(text, path, options);
}

std::string FormatProblem(const ConfigProblem& problem, std::string_view file) {
  std::string out(file);
  if (problem.line > 0) out += fmt::format(":{}:{}", problem.line, problem.column);
  out += ": ";
  if (!problem.path.empty()) out += problem.path + ": ";
  return out + problem.message;
}

std::string Summarize(const Config& config) {
  size_t policies = 0;
  for (const Cluster& c : config.clusters) policies += c.policy.policies.size();
  return fmt::format("{}, {}, {}, {}, {}", Plural(config.clusters.size(), "cluster", "clusters"),
                     Plural(config.clouds.size(), "cloud", "clouds"),
                     Plural(config.load_balancers.size(), "load balancer", "load balancers"),
                     Plural(policies, "policy", "policies"),
                     Plural(config.api.tokens.size(), "API token", "API tokens"));
}

std::string_view ToString(TokenRole role) {
  return role == TokenRole::kAdmin ? "admin" : "read-only";
}

std::string_view ToString(LoadBalancerType type) {
  switch (type) {
    case LoadBalancerType::kHaproxyDataplane:
      return "haproxy_dataplane";
  }
  return "haproxy_dataplane";
}

std::string_view ToString(DataPlaneApiVersion version) {
  switch (version) {
    case DataPlaneApiVersion::kAuto:
      return "auto";
    case DataPlaneApiVersion::kV2:
      return "v2";
    case DataPlaneApiVersion::kV3:
      return "v3";
  }
  return "auto";
}

}  // namespace ra::config
