#include "api/api_server.h"

#include <cpprest/http_listener.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>

#include "core/duration.h"
#include "core/log.h"
#include "core/time_format.h"

namespace ra::autoscaler {

namespace {

using nlohmann::json;

json TimeOrNull(const std::optional<TimePoint>& t) {
  return t ? json(FormatTime(*t)) : json(nullptr);
}

// Whole seconds from `from` to `now`, null when either is unknown (a zero TimePoint means the
// cloud did not say) or when `from` is in the future (clock skew between us and the cloud).
json AgeSeconds(TimePoint from, const std::optional<TimePoint>& now) {
  if (!now || from == TimePoint{} || from > *now) return nullptr;
  return std::chrono::duration_cast<std::chrono::seconds>(*now - from).count();
}

}  // namespace

json StatusJson(const ClusterStatus& status, std::optional<TimePoint> now) {
  // Without a `now`, ages are measured at the last cycle, which is when the figures were true.
  if (!now) now = status.last_cycle_at;
  json out = json::object();
  out["name"] = status.name;
  out["desired"] = status.desired;
  out["active"] = status.active;
  out["serving"] = status.serving;
  out["min_replicas"] = status.min_replicas;
  out["max_replicas"] = status.max_replicas;
  out["paused"] = status.paused;
  out["paused_reason"] = status.paused_reason;
  if (status.manual) {
    out["manual_override"] = {{"replicas", status.manual->replicas},
                              {"expires_at", TimeOrNull(status.manual->expires_at)},
                              {"reason", status.manual->reason}};
  } else {
    out["manual_override"] = nullptr;
  }
  if (status.decision) {
    const policies::Decision& d = *status.decision;
    json policies = json::array();
    for (const policies::Verdict& v : d.verdicts) {
      policies.push_back({{"name", v.policy},
                          {"verdict", policies::ToString(v.kind)},
                          {"desired", v.desired ? json(*v.desired) : json(nullptr)},
                          {"reason", v.reason}});
    }
    out["last_decision"] = {{"current", d.current},
                            {"recommended", d.recommended},
                            {"desired", d.desired},
                            {"override_active", d.override_active},
                            {"reason", d.reason},
                            {"decided_at", TimeOrNull(status.decided_at)},
                            {"policies", std::move(policies)}};
  } else {
    out["last_decision"] = nullptr;
  }
  out["plan_reason"] = status.plan_reason;
  json replicas = json::array();
  for (const ReplicaView& r : status.replicas) {
    replicas.push_back(
        {{"name", r.name},
         {"phase", ToString(r.phase)},
         {"zone", r.zone},
         {"address", r.address},
         {"lag_bytes", r.lag_bytes ? json(*r.lag_bytes) : json(nullptr)},
         {"lag_seconds", r.lag_seconds ? json(*r.lag_seconds) : json(nullptr)},
         {"sessions", r.sessions},
         {"age_seconds", AgeSeconds(r.created, now)},
         {"phase_since",
          r.phase_since == TimePoint{} ? json(nullptr) : json(FormatTime(r.phase_since))},
         {"detail", r.detail}});
  }
  out["replicas"] = std::move(replicas);
  json blocked = json::array();
  for (const Blocked& b : status.blocked) {
    blocked.push_back({{"action", ToString(b.kind)}, {"replica", b.replica}, {"reason", b.reason}});
  }
  out["blocked"] = std::move(blocked);
  out["last_cycle_at"] = TimeOrNull(status.last_cycle_at);
  out["last_error"] = status.last_error;
  out["primary"] = status.primary;
  if (status.newest_snapshot) {
    const openstack::SnapshotFacts& s = *status.newest_snapshot;
    out["newest_snapshot"] = {{"id", s.id},
                              {"name", s.name},
                              {"status", s.status},
                              {"created", TimeOrNull(s.created)},
                              {"age_seconds", s.created ? AgeSeconds(*s.created, now) : nullptr}};
  } else {
    out["newest_snapshot"] = nullptr;
  }
  return out;
}

json EventJson(const Event& event) { return ToJson(event); }

namespace {

namespace http = web::http;
using http::experimental::listener::http_listener;
using http::experimental::listener::http_listener_config;

constexpr size_t kMaxBody = 64 * 1024;
constexpr size_t kDefaultEventLimit = 100;
constexpr size_t kMaxEventLimit = 1000;

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

Digest Sha256(const std::string& text) {
  Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d.data());
  return d;
}

/// An answer to send. Built by the handlers; only Impl::Handle touches cpprestsdk's response.
struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body{};
  std::vector<std::pair<std::string, std::string>> headers{};
};

Reply JsonReply(int status, const json& body) {
  // Messages quote what clients sent, which may be any bytes: never throw on invalid UTF-8.
  return Reply{status,
               "application/json",
               body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
               {}};
}

std::string_view ErrorCode(int status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 503:
      return "unavailable";
    default:
      return "internal";
  }
}

Reply ErrorReply(int status, const std::string& message) {
  return JsonReply(status, {{"error", {{"code", ErrorCode(status)}, {"message", message}}}});
}

Reply FromError(const Error& error) {
  if (error.kind == ErrorKind::kNotLeader) {
    // ha: a follower answers reads and refuses writes; the message names the leader to ask.
    return JsonReply(
        503, {{"error", {{"code", "not_leader"}, {"message", log::Redact(error.message)}}}});
  }
  int status = 500;
  switch (error.kind) {
    case ErrorKind::kNotFound:
      status = 404;
      break;
    case ErrorKind::kBadRequest:
      status = 400;
      break;
    case ErrorKind::kConflict:
      status = 409;
      break;
    case ErrorKind::kTransient:  // e.g. an override whose save failed: nothing changed, retry
      status = 503;
      break;
    default:
      break;
  }
  return ErrorReply(status, log::Redact(error.message));
}

/// A failed check of a request: the reply to give instead.
struct Rejection {
  Reply reply;
};

std::string_view JsonTypeName(const json& value) {
  if (value.is_number_integer()) return "an integer";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_boolean()) return "a boolean";
  if (value.is_null()) return "null";
  if (value.is_array()) return "an array";
  return "an object";
}

/// The body as a JSON object holding only `allowed` fields. An empty body is {} when
/// `body_optional`.
tl::expected<json, Rejection> ParseObject(const std::string& body,
                                          const std::set<std::string>& allowed,
                                          bool body_optional) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (body_optional) return json::object();
    return tl::unexpected(Rejection{ErrorReply(400, "body: expected a JSON object, got nothing")});
  }
  json parsed;
  try {
    parsed = json::parse(body);
  } catch (const json::parse_error& e) {
    return tl::unexpected(Rejection{
        ErrorReply(400, "body: not valid JSON (at byte " + std::to_string(e.byte) + ")")});
  }
  if (!parsed.is_object()) {
    return tl::unexpected(Rejection{
        ErrorReply(400, "body: expected a JSON object, got " + std::string(JsonTypeName(parsed)))});
  }
  for (const auto& [key, value] : parsed.items()) {
    if (!allowed.count(key)) {
      std::string known;
      for (const std::string& a : allowed) known += (known.empty() ? "" : ", ") + a;
      return tl::unexpected(Rejection{
          ErrorReply(400, "body: unknown field '" + key + "'" +
                              (known.empty() ? std::string(" (this route takes no fields)")
                                             : " (known: " + known + ")"))});
    }
  }
  return parsed;
}

tl::expected<std::string, Rejection> OptionalString(const json& object, const std::string& field) {
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return tl::unexpected(Rejection{
        ErrorReply(400, field + ": expected a string, got " + std::string(JsonTypeName(*it)))});
  }
  return it->get<std::string>();
}

/// Whether `method` is one of `allow` ("PUT, DELETE").
bool Allows(const std::string& allow, const std::string& method) {
  size_t start = 0;
  while (start < allow.size()) {
    size_t end = allow.find(", ", start);
    if (end == std::string::npos) end = allow.size();
    if (allow.compare(start, end - start, method) == 0) return true;
    start = end + 2;
  }
  return false;
}

/// Splits "/v1/clusters/a%2Fb" into decoded segments {"v1", "clusters", "a/b"}.
tl::expected<std::vector<std::string>, Rejection> PathSegments(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string segment = path.substr(start, end - start);
    if (!segment.empty()) {
      try {
        out.push_back(web::uri::decode(segment));
      } catch (const std::exception&) {
        return tl::unexpected(Rejection{ErrorReply(400, "path: bad percent-encoding")});
      }
    }
    start = end + 1;
  }
  return out;
}

/// Whether host:port can be bound now (SO_REUSEADDR, as the listener binds).
Result<void> ProbeBind(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) return Fail(ErrorKind::kConfig, gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, &freeaddrinfo);
  const int fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
  if (fd < 0) return Fail(ErrorKind::kConfig, std::strerror(errno));
  const int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  const int bound = bind(fd, found->ai_addr, found->ai_addrlen);
  const int err = errno;
  close(fd);
  if (bound != 0) return Fail(ErrorKind::kConfig, std::strerror(err));
  return {};
}

}  // namespace

struct ApiServer::Impl {
  config::ApiConfig config;
  std::vector<std::pair<ResolvedToken, Digest>> tokens;
  ServiceControl& control;
  prometheus::Registry& registry;
  const Clock& clock;

  std::mutex mu{};
  std::unique_ptr<http_listener> listener{};

  Impl(config::ApiConfig c, std::vector<ResolvedToken> t, ServiceControl& ctl,
       prometheus::Registry& reg, const Clock& clk)
      : config(std::move(c)), control(ctl), registry(reg), clock(clk) {
    for (ResolvedToken& token : t) {
      Digest d = Sha256(token.value.Reveal());
      tokens.emplace_back(std::move(token), d);
    }
  }

  void Handle(http::http_request request);
  Reply Route(http::http_request& request, const std::string& method, const std::string& path);

  /// The token the request carries, or the 401 to give.
  tl::expected<const ResolvedToken*, Rejection> Authenticate(const http::http_request& request);
  tl::expected<std::string, Rejection> ReadBody(http::http_request& request);

  Reply Healthz();
  Reply Readyz();
  Reply Metrics();
  Reply Clusters();
  Reply Cluster(const std::string& name);
  Reply Events(const std::string& query);
  Reply PutOverride(const std::string& name, const std::string& body, const ResolvedToken& who);
  Reply Pause(const std::string& name, const std::string& body, const ResolvedToken& who);
};

tl::expected<const ResolvedToken*, Rejection> ApiServer::Impl::Authenticate(
    const http::http_request& request) {
  const auto unauthorized = [](const std::string& message, bool invalid) {
    Reply reply = ErrorReply(401, message);
    reply.headers.emplace_back(
        "WWW-Authenticate", invalid ? "Bearer realm=\"replica-autoscaler\", error=\"invalid_token\""
                                    : "Bearer realm=\"replica-autoscaler\"");
    return tl::unexpected(Rejection{std::move(reply)});
  };
  std::string header;
  if (!request.headers().match("Authorization", header) || header.empty()) {
    return unauthorized("a bearer token is required (Authorization: Bearer TOKEN)", false);
  }
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() ||
      !std::equal(kScheme.begin(), kScheme.end(), header.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      })) {
    return unauthorized("the Authorization header must use the Bearer scheme", false);
  }
  std::string presented = header.substr(kScheme.size());
  while (!presented.empty() && presented.front() == ' ') presented.erase(0, 1);
  while (!presented.empty() && presented.back() == ' ') presented.pop_back();
  // Hashing first makes every comparison the same length, and every token is compared, so the
  // time taken says nothing about which token (or how much of one) matched.
  const Digest digest = Sha256(presented);
  const ResolvedToken* match = nullptr;
  for (const auto& [token, expected] : tokens) {
    if (CRYPTO_memcmp(digest.data(), expected.data(), digest.size()) == 0 && !token.value.empty()) {
      match = &token;
    }
  }
  if (match == nullptr) return unauthorized("the bearer token is not valid", true);
  return match;
}

tl::expected<std::string, Rejection> ApiServer::Impl::ReadBody(http::http_request& request) {
  const auto too_large = [] {
    return tl::unexpected(Rejection{
        ErrorReply(413, "body: larger than " + std::to_string(kMaxBody / 1024) + " KiB")});
  };
  if (request.headers().content_length() > kMaxBody) return too_large();
  // Read at most one byte past the limit, so a chunked body cannot make us buffer it all.
  concurrency::streams::streambuf<uint8_t> stream = request.body().streambuf();
  std::string body;
  std::array<uint8_t, 8192> chunk{};
  while (body.size() <= kMaxBody) {
    const size_t want = std::min(chunk.size(), kMaxBody + 1 - body.size());
    const size_t n = stream.getn(chunk.data(), want).get();
    if (n == 0) break;
    body.append(reinterpret_cast<const char*>(chunk.data()), n);
  }
  if (body.size() > kMaxBody) return too_large();
  return body;
}

Reply ApiServer::Impl::Healthz() {
  const Health health = control.GetHealth();
  if (!health.last_successful_cycle) {
    return JsonReply(503, {{"status", "failing"},
                           {"reason", "no cycle has completed without an error yet"},
                           {"last_successful_cycle", nullptr}});
  }
  const TimePoint now = clock.Now();
  const Duration age = std::chrono::duration_cast<Duration>(now - *health.last_successful_cycle);
  if (age > health.max_cycle_age) {
    return JsonReply(503,
                     {{"status", "failing"},
                      {"reason", "the last successful cycle was " + FormatDuration(age) +
                                     " ago, more than " + FormatDuration(health.max_cycle_age)},
                      {"last_successful_cycle", FormatTime(*health.last_successful_cycle)}});
  }
  return JsonReply(200, {{"status", "ok"},
                         {"last_successful_cycle", FormatTime(*health.last_successful_cycle)}});
}

Reply ApiServer::Impl::Readyz() {
  const Health health = control.GetHealth();
  if (!health.ready) {
    return JsonReply(503, {{"status", "not_ready"},
                           {"reason", "the service has not completed its first cycle"}});
  }
  json body{{"status", "ready"}};
  if (health.leading) {
    // ha: both instances are ready (the follower answers reads); only the leader acts.
    body["leading"] = *health.leading;
    body["instance"] = health.instance;
    body["leader"] = health.leader.empty() ? json(nullptr) : json(health.leader);
  }
  return JsonReply(200, body);
}

Reply ApiServer::Impl::Metrics() {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return Reply{200, "text/plain; version=0.0.4; charset=utf-8", out.str(), {}};
}

Reply ApiServer::Impl::Clusters() {
  json list = json::array();
  const TimePoint now = clock.Now();
  for (const std::string& name : control.ClusterNames()) {
    auto status = control.Status(name);
    if (status) list.push_back(StatusJson(*status, now));
  }
  return JsonReply(200, {{"clusters", std::move(list)}});
}

Reply ApiServer::Impl::Cluster(const std::string& name) {
  auto status = control.Status(name);
  if (!status) return FromError(status.error());
  return JsonReply(200, StatusJson(*status, clock.Now()));
}

Reply ApiServer::Impl::Events(const std::string& query) {
  std::map<std::string, std::string> params;
  try {
    for (const auto& [key, value] : web::uri::split_query(query)) {
      params[web::uri::decode(key)] = web::uri::decode(value);
    }
  } catch (const std::exception&) {
    return ErrorReply(400, "query: bad percent-encoding");
  }
  std::string cluster;
  size_t limit = kDefaultEventLimit;
  std::optional<TimePoint> since;
  for (const auto& [key, value] : params) {
    if (key == "cluster") {
      cluster = value;
    } else if (key == "limit") {
      size_t used = 0;
      long long n = 0;
      try {
        n = std::stoll(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != value.size() || value.empty() || n < 1 ||
          n > static_cast<long long>(kMaxEventLimit)) {
        return ErrorReply(400, "limit: expected an integer from 1 to " +
                                   std::to_string(kMaxEventLimit) + ", got '" + value + "'");
      }
      limit = static_cast<size_t>(n);
    } else if (key == "since") {
      auto t = ParseTimestamp(value);
      if (!t) {
        return ErrorReply(400,
                          "since: expected an RFC 3339 time such as 2026-11-21T04:43:40Z, "
                          "got '" +
                              value + "'");
      }
      since = *t;
    } else {
      return ErrorReply(400,
                        "query: unknown parameter '" + key + "' (known: cluster, limit, since)");
    }
  }
  if (!cluster.empty()) {
    const std::vector<std::string> names = control.ClusterNames();
    if (std::find(names.begin(), names.end(), cluster) == names.end()) {
      return ErrorReply(404, "no cluster named '" + cluster + "'");
    }
  }
  json events = json::array();
  for (const Event& e : control.Events(cluster, limit, since)) events.push_back(EventJson(e));
  return JsonReply(200, {{"events", std::move(events)}});
}

Reply ApiServer::Impl::PutOverride(const std::string& name, const std::string& body,
                                   const ResolvedToken& who) {
  auto object = ParseObject(body, {"replicas", "ttl", "reason"}, false);
  if (!object) return object.error().reply;
  policies::ManualOverride manual;
  auto replicas = object->find("replicas");
  if (replicas == object->end()) return ErrorReply(400, "replicas: required");
  if (!replicas->is_number_integer()) {
    return ErrorReply(400,
                      "replicas: expected an integer, got " + std::string(JsonTypeName(*replicas)));
  }
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  const bool in_range = replicas->is_number_unsigned()
                            ? replicas->get<uint64_t>() <= static_cast<uint64_t>(kMax)
                            : replicas->get<int64_t>() >= 0 && replicas->get<int64_t>() <= kMax;
  if (!in_range) {
    return ErrorReply(
        400, "replicas: must be from 0 to " + std::to_string(std::numeric_limits<int>::max()));
  }
  manual.replicas = static_cast<int>(replicas->get<int64_t>());
  auto reason = OptionalString(*object, "reason");
  if (!reason) return reason.error().reply;
  manual.reason = *reason;
  auto ttl_text = OptionalString(*object, "ttl");
  if (!ttl_text) return ttl_text.error().reply;
  if (!ttl_text->empty()) {
    auto ttl = ParseDuration(*ttl_text);
    if (!ttl) return ErrorReply(400, "ttl: " + ttl.error().message);
    if (ttl->count() <= 0) return ErrorReply(400, "ttl: must be longer than 0s");
    manual.expires_at = clock.Now() + *ttl;
  }
  auto set = control.SetOverride(name, manual);
  if (!set) return FromError(set.error());
  log::Info("api: manual override set",
            {{"cluster", name},
             {"replicas", manual.replicas},
             {"expires_at", manual.expires_at ? FormatTime(*manual.expires_at) : ""},
             {"reason", manual.reason},
             {"by", who.name}});
  return JsonReply(200, {{"cluster", name},
                         {"manual_override",
                          {{"replicas", manual.replicas},
                           {"expires_at", TimeOrNull(manual.expires_at)},
                           {"reason", manual.reason}}}});
}

Reply ApiServer::Impl::Pause(const std::string& name, const std::string& body,
                             const ResolvedToken& who) {
  auto object = ParseObject(body, {"reason"}, true);
  if (!object) return object.error().reply;
  auto reason = OptionalString(*object, "reason");
  if (!reason) return reason.error().reply;
  auto paused = control.Pause(name, *reason);
  if (!paused) return FromError(paused.error());
  log::Info("api: paused", {{"cluster", name}, {"reason", *reason}, {"by", who.name}});
  return JsonReply(200, {{"cluster", name}, {"paused", true}, {"paused_reason", *reason}});
}

Reply ApiServer::Impl::Route(http::http_request& request, const std::string& method,
                             const std::string& path) {
  auto segments_or = PathSegments(path);
  if (!segments_or) return segments_or.error().reply;
  const std::vector<std::string>& seg = *segments_or;

  const auto not_allowed = [](std::string_view allow) {
    Reply reply = ErrorReply(405, "method not allowed; this route takes " + std::string(allow));
    reply.headers.emplace_back("Allow", std::string(allow));
    return reply;
  };

  // Unauthenticated probes for monitoring and orchestration.
  if (seg.size() == 1 && (seg[0] == "healthz" || seg[0] == "readyz" || seg[0] == "metrics")) {
    if (method != "GET") return not_allowed("GET");
    if (seg[0] == "healthz") return Healthz();
    if (seg[0] == "readyz") return Readyz();
    return Metrics();
  }
  if (seg.empty() || seg[0] != "v1") return ErrorReply(404, "no route for " + path);

  // Everything under /v1 needs a token, whether or not the route exists: an anonymous caller
  // learns nothing about the API.
  auto token = Authenticate(request);
  if (!token) return token.error().reply;
  const ResolvedToken& who = **token;

  // Which route, which methods it takes, and whether it changes anything (admin).
  enum class Route {
    kClusters,
    kCluster,
    kOverride,
    kPause,
    kResume,
    kSnapshot,
    kReplace,
    kEvents,
  };
  std::optional<Route> route;
  std::string allow;
  if (seg.size() == 2 && seg[1] == "clusters") {
    route = Route::kClusters, allow = "GET";
  } else if (seg.size() == 2 && seg[1] == "events") {
    route = Route::kEvents, allow = "GET";
  } else if (seg.size() == 3 && seg[1] == "clusters") {
    route = Route::kCluster, allow = "GET";
  } else if (seg.size() == 4 && seg[1] == "clusters") {
    if (seg[3] == "override") route = Route::kOverride, allow = "PUT, DELETE";
    if (seg[3] == "pause") route = Route::kPause, allow = "POST";
    if (seg[3] == "resume") route = Route::kResume, allow = "POST";
    if (seg[3] == "snapshot") route = Route::kSnapshot, allow = "POST";
  } else if (seg.size() == 6 && seg[1] == "clusters" && seg[3] == "replicas" &&
             seg[5] == "replace") {
    route = Route::kReplace, allow = "POST";
  }
  if (!route) return ErrorReply(404, "no route for " + path);
  if (!Allows(allow, method)) return not_allowed(allow);
  if (method != "GET" && who.role != config::TokenRole::kAdmin) {
    return ErrorReply(403,
                      "this token is read-only; " + method + " " + path + " needs an admin token");
  }
  std::string body;
  if (method != "GET") {
    auto read = ReadBody(request);
    if (!read) return read.error().reply;
    body = std::move(*read);
  }
  const std::string cluster = seg.size() >= 3 ? seg[2] : std::string();

  switch (*route) {
    case Route::kClusters:
      return Clusters();
    case Route::kEvents:
      return Events(request.request_uri().query());
    case Route::kCluster:
      return Cluster(cluster);
    case Route::kOverride: {
      if (method == "PUT") return PutOverride(cluster, body, who);
      auto object = ParseObject(body, {}, true);
      if (!object) return object.error().reply;
      auto cleared = control.ClearOverride(cluster);
      if (!cleared) return FromError(cleared.error());
      log::Info("api: manual override cleared", {{"cluster", cluster}, {"by", who.name}});
      return JsonReply(200, {{"cluster", cluster}, {"manual_override", nullptr}});
    }
    case Route::kPause:
      return Pause(cluster, body, who);
    case Route::kResume: {
      auto object = ParseObject(body, {}, true);
      if (!object) return object.error().reply;
      auto resumed = control.Resume(cluster);
      if (!resumed) return FromError(resumed.error());
      log::Info("api: resumed", {{"cluster", cluster}, {"by", who.name}});
      return JsonReply(200, {{"cluster", cluster}, {"paused", false}});
    }
    case Route::kSnapshot: {
      auto object = ParseObject(body, {}, true);
      if (!object) return object.error().reply;
      auto requested = control.RequestSnapshot(cluster);
      if (!requested) return FromError(requested.error());
      log::Info("api: snapshot requested", {{"cluster", cluster}, {"by", who.name}});
      return JsonReply(202, {{"cluster", cluster}, {"snapshot", "requested"}});
    }
    case Route::kReplace: {
      auto object = ParseObject(body, {}, true);
      if (!object) return object.error().reply;
      const std::string& replica = seg[4];
      auto requested = control.ReplaceReplica(cluster, replica);
      if (!requested) return FromError(requested.error());
      log::Info("api: replica replacement requested",
                {{"cluster", cluster}, {"replica", replica}, {"by", who.name}});
      return JsonReply(202, {{"cluster", cluster}, {"replica", replica}, {"replace", "requested"}});
    }
  }
  return ErrorReply(404, "no route for " + path);
}

void ApiServer::Impl::Handle(http::http_request request) {
  const auto started = std::chrono::steady_clock::now();
  std::string method;
  std::string path;
  Reply reply;
  try {
    method = request.method();
    path = request.request_uri().path();
    reply = Route(request, method, path);
  } catch (const std::exception& e) {
    // A bug or a broken connection must not take the service down: answer 500 and go on.
    log::Error("api: request failed", {{"method", method}, {"path", path}, {"error", e.what()}});
    reply = ErrorReply(500, "internal error");
  } catch (...) {
    reply = ErrorReply(500, "internal error");
  }
  const auto ms = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count() /
                  1000.0;
  // Logged before the answer goes out, so a client that has its answer finds the line written.
  log::Debug("api request",
             {{"method", method}, {"path", path}, {"status", reply.status}, {"duration_ms", ms}});
  try {
    http::http_response response(static_cast<http::status_code>(reply.status));
    for (const auto& [name, value] : reply.headers) response.headers().add(name, value);
    // Bytes, not std::string: cpprestsdk's string overload views a char buffer as a uint8_t
    // one, which UBSan rightly reports.
    response.set_body(std::vector<unsigned char>(reply.body.begin(), reply.body.end()));
    response.headers().set_content_type(reply.content_type);
    request.reply(response).then([](pplx::task<void> sent) {
      try {
        sent.get();
      } catch (const std::exception&) {
        // The client went away before the answer: nothing to do.
      }
    });
  } catch (const std::exception& e) {
    log::Warn("api: could not send the answer", {{"path", path}, {"error", e.what()}});
  }
}

ApiServer::ApiServer(config::ApiConfig config, std::vector<ResolvedToken> tokens,
                     ServiceControl& control, prometheus::Registry& registry, const Clock& clock)
    : impl_(
          std::make_unique<Impl>(std::move(config), std::move(tokens), control, registry, clock)) {}

ApiServer::~ApiServer() { Stop(); }

Result<void> ApiServer::Start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->listener) return {};
  const std::string& host = impl_->config.host;
  const std::string address = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  const std::string url = "http://" + address + ":" + std::to_string(impl_->config.port);
  // cpprestsdk shares one acceptor per port inside the process: a failed open on a port this
  // process already serves closes the existing listener too. Probing with a plain socket first
  // leaves it alone, and gives the system's own reason.
  if (auto probe = ProbeBind(host, impl_->config.port); !probe) {
    return Fail(ErrorKind::kConfig, "api: cannot listen on " + address + ":" +
                                        std::to_string(impl_->config.port) + ": " +
                                        probe.error().message);
  }
  try {
    http_listener_config listener_config;
    listener_config.set_timeout(std::chrono::seconds(30));
    auto listener = std::make_unique<http_listener>(web::uri(url), listener_config);
    Impl* impl = impl_.get();
    listener->support([impl](http::http_request request) { impl->Handle(std::move(request)); });
    listener->open().wait();
    impl_->listener = std::move(listener);
  } catch (const std::exception& e) {
    return Fail(ErrorKind::kConfig, "api: cannot listen on " + address + ":" +
                                        std::to_string(impl_->config.port) + ": " + e.what());
  }
  log::Info("api: listening", {{"address", url}});
  return {};
}

void ApiServer::Stop() {
  std::unique_ptr<http_listener> listener;
  {
    std::lock_guard lock(impl_->mu);
    listener = std::move(impl_->listener);
  }
  if (!listener) return;
  try {
    listener->close().wait();
  } catch (const std::exception& e) {
    log::Warn("api: error while stopping", {{"error", e.what()}});
  }
}

}  // namespace ra::autoscaler
