#include "api/api_server.h"

#include <microhttpd.h>
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
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
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
    // With several balancers, what each says of the replica; empty with one.
    json balancers = json::array();
    for (const BalancerView& b : r.balancers) {
      const std::string state = !b.reachable        ? "unknown"
                                : !b.member         ? "absent"
                                : b.member->serving ? "serving"
                                                    : std::string(lb::ToString(b.member->admin));
      balancers.push_back({{"name", b.balancer},
                           {"reachable", b.reachable},
                           {"state", state},
                           {"sessions", b.member ? json(b.member->sessions) : json(nullptr)}});
    }
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
         {"detail", r.detail},
         {"partial", r.partial},
         {"balancers", std::move(balancers)}});
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

constexpr size_t kMaxBody = 64 * 1024;
// Request line and headers share this per-connection pool; beyond it MHD answers 414 or 431
// itself, so a hostile header never costs more than this.
constexpr size_t kConnectionMemory = 32 * 1024;
// How much of a chunked body past kMaxBody is read (and dropped) to answer 413 at its end.
constexpr uint64_t kMaxDiscard = 1024 * 1024;
constexpr unsigned kThreads = 4;
constexpr size_t kDefaultEventLimit = 100;
constexpr size_t kMaxEventLimit = 1000;

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

Digest Sha256(const std::string& text) {
  Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d.data());
  return d;
}

/// An answer to send. Built by the router; only Impl::Send turns it into an MHD response.
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
    case 414:
      return "uri_too_long";
    case 431:
      return "headers_too_large";
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
        HttpStatus(error.kind),
        {{"error", {{"code", "not_leader"}, {"message", log::Redact(error.message)}}}});
  }
  return ErrorReply(HttpStatus(error.kind), log::Redact(error.message));
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

/// `text` with %XX sequences decoded ('+' stays '+', as in a path); nullopt for a bad sequence.
std::optional<std::string> PercentDecode(std::string_view text) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hex(text[i + 1]);
    const int low = hex(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
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
      auto decoded = PercentDecode(segment);
      if (!decoded) return tl::unexpected(Rejection{ErrorReply(400, "path: bad percent-encoding")});
      out.push_back(std::move(*decoded));
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

/// A request as the router sees it, before its body: everything here is as the client sent it
/// (percent-encoded), so decoding happens once, in the router.
struct Request {
  std::string method{};
  std::string path{};                                        ///< without the query
  std::vector<std::pair<std::string, std::string>> query{};  ///< key, value ("" when absent)
  std::optional<std::string> authorization{};
  std::optional<uint64_t> content_length{};
};

/// What one request has gathered between MHD's calls: the request, its body so far, and whether
/// the body went past kMaxBody (the rest is then read and dropped, up to kMaxDiscard).
struct Exchange {
  Request request{};
  std::string body{};
  bool too_large = false;
  uint64_t seen = 0;  ///< body bytes received, stored or not
  std::chrono::steady_clock::time_point started{};
};

}  // namespace

struct ApiServer::Impl {
  config::ApiConfig config;
  std::vector<std::pair<ResolvedToken, Digest>> tokens;
  ServiceControl& control;
  prometheus::Registry& registry;
  const Clock& clock;

  std::mutex mu{};
  MHD_Daemon* daemon = nullptr;
  // PEM text for MHD_OPTION_HTTPS_MEM_*: MHD keeps the pointers for the daemon's lifetime.
  std::string tls_certificate{};
  std::string tls_key{};

  Impl(config::ApiConfig c, std::vector<ResolvedToken> t, ServiceControl& ctl,
       prometheus::Registry& reg, const Clock& clk)
      : config(std::move(c)), control(ctl), registry(reg), clock(clk) {
    for (ResolvedToken& token : t) {
      Digest d = Sha256(token.value.Reveal());
      tokens.emplace_back(std::move(token), d);
    }
  }

  /// The answer to `request`, with no I/O of its own. Called first with `body` null, as soon as
  /// the headers are in: everything that does not need the body (route, method, token, role)
  /// is decided then, and nullopt means "this route takes a body: read it (at most kMaxBody)
  /// and call again". Called with a body, it always answers.
  std::optional<Reply> Route(const Request& request, const std::string* body);

  /// MHD's access handler, once per call MHD makes for a request.
  MHD_Result Access(MHD_Connection* connection, const char* url, const char* method,
                    const char* upload_data, size_t* upload_data_size, void** state);
  MHD_Result Send(MHD_Connection* connection, const Request& request, const Reply& reply,
                  std::chrono::steady_clock::time_point started);

  /// The token the request carries, or the 401 to give.
  tl::expected<const ResolvedToken*, Rejection> Authenticate(const Request& request);

  Reply Healthz();
  Reply Readyz();
  Reply Metrics();
  Reply Clusters();
  Reply Cluster(const std::string& name);
  Reply Events(const std::vector<std::pair<std::string, std::string>>& query);
  Reply PutOverride(const std::string& name, const std::string& body, const ResolvedToken& who);
  Reply Pause(const std::string& name, const std::string& body, const ResolvedToken& who);
};

tl::expected<const ResolvedToken*, Rejection> ApiServer::Impl::Authenticate(
    const Request& request) {
  const auto unauthorized = [](const std::string& message, bool invalid) {
    Reply reply = ErrorReply(401, message);
    reply.headers.emplace_back(
        "WWW-Authenticate", invalid ? "Bearer realm=\"replica-autoscaler\", error=\"invalid_token\""
                                    : "Bearer realm=\"replica-autoscaler\"");
    return tl::unexpected(Rejection{std::move(reply)});
  };
  const std::string header = request.authorization.value_or("");
  if (header.empty()) {
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

Reply ApiServer::Impl::Events(const std::vector<std::pair<std::string, std::string>>& query) {
  std::map<std::string, std::string> params;
  for (const auto& [raw_key, raw_value] : query) {
    auto key = PercentDecode(raw_key);
    auto value = PercentDecode(raw_value);
    if (!key || !value) return ErrorReply(400, "query: bad percent-encoding");
    params[*key] = *value;
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

std::optional<Reply> ApiServer::Impl::Route(const Request& request, const std::string* body_in) {
  const std::string& method = request.method;
  const std::string& path = request.path;
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
  if (method != "GET" && body_in == nullptr) return std::nullopt;  // read the body first
  const std::string body = body_in != nullptr ? *body_in : std::string();
  const std::string cluster = seg.size() >= 3 ? seg[2] : std::string();

  switch (*route) {
    case Route::kClusters:
      return Clusters();
    case Route::kEvents:
      return Events(request.query);
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

namespace {

MHD_Result CollectQuery(void* cls, MHD_ValueKind /*kind*/, const char* key, const char* value) {
  auto* query = static_cast<std::vector<std::pair<std::string, std::string>>*>(cls);
  query->emplace_back(key != nullptr ? key : "", value != nullptr ? value : "");
  return MHD_YES;
}

// The router decodes paths itself, after splitting them (an encoded '/' stays inside a cluster
// name), so MHD must hand them over exactly as sent.
size_t KeepEscaped(void* /*cls*/, MHD_Connection* /*connection*/, char* text) {
  return std::strlen(text);
}

void Completed(void* /*cls*/, MHD_Connection* /*connection*/, void** state,
               MHD_RequestTerminationCode /*code*/) {
  delete static_cast<Exchange*>(*state);
  *state = nullptr;
}

/// The whole of a PEM file named in api.tls, or a kConfig error naming the file and key.
Result<std::string> ReadPem(const std::string& path, const std::string& key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Fail(ErrorKind::kConfig,
                "api: cannot read tls." + key + " " + path + ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return Fail(ErrorKind::kConfig, "api: tls." + key + " " + path + " holds no PEM block");
  }
  return text.str();
}

}  // namespace

int HttpStatus(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNotFound:
      return 404;
    case ErrorKind::kBadRequest:
      return 400;
    case ErrorKind::kConflict:
      return 409;
    case ErrorKind::kTransient:  // e.g. an override whose save failed: nothing changed, retry
    case ErrorKind::kNotLeader:  // ha: a follower refuses writes; the body names the leader
      return 503;
    default:
      return 500;
  }
}

MHD_Result ApiServer::Impl::Send(MHD_Connection* connection, const Request& request,
                                 const Reply& reply,
                                 std::chrono::steady_clock::time_point started) {
  const auto ms = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count() /
                  1000.0;
  // Logged before the answer goes out, so a client that has its answer finds the line written.
  log::Debug("api request", {{"method", request.method},
                             {"path", request.path},
                             {"status", reply.status},
                             {"duration_ms", ms}});
  MHD_Response* response = MHD_create_response_from_buffer(
      reply.body.size(), const_cast<char*>(reply.body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  for (const auto& [name, value] : reply.headers) {
    MHD_add_response_header(response, name.c_str(), value.c_str());
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply.content_type.c_str());
  const MHD_Result queued =
      MHD_queue_response(connection, static_cast<unsigned>(reply.status), response);
  MHD_destroy_response(response);
  return queued;
}

MHD_Result ApiServer::Impl::Access(MHD_Connection* connection, const char* url, const char* method,
                                   const char* upload_data, size_t* upload_data_size,
                                   void** state) {
  auto* exchange = static_cast<Exchange*>(*state);
  try {
    if (exchange == nullptr) {
      // The headers are in, nothing of the body is read yet: route, check the token and the
      // announced size now, so a refused request's body is never stored.
      const auto started = std::chrono::steady_clock::now();
      Request request;
      request.method = method;
      request.path = url;
      MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &CollectQuery, &request.query);
      if (const char* auth =
              MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Authorization")) {
        request.authorization = auth;
      }
      std::optional<Reply> reply = Route(request, nullptr);
      if (reply) return Send(connection, request, *reply, started);
      if (const char* length =
              MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Content-Length")) {
        char* end = nullptr;
        errno = 0;
        const unsigned long long n = std::strtoull(length, &end, 10);
        if (errno == ERANGE || n > kMaxBody) {
          return Send(
              connection, request,
              ErrorReply(413, "body: larger than " + std::to_string(kMaxBody / 1024) + " KiB"),
              started);
        }
      }
      exchange = new Exchange{std::move(request), {}, false, 0, started};
      *state = exchange;
      return MHD_YES;
    }
    if (*upload_data_size > 0) {
      // Past the limit nothing is stored (a chunked body announces no size). The rest is read
      // and dropped so that the client gets its 413 once the body ends, but only up to
      // kMaxDiscard: a body that goes on beyond it has its connection closed (MHD cannot
      // answer in the middle of a body).
      exchange->seen += *upload_data_size;
      if (!exchange->too_large && exchange->body.size() + *upload_data_size <= kMaxBody) {
        exchange->body.append(upload_data, *upload_data_size);
      } else if (exchange->seen > kMaxDiscard) {
        return MHD_NO;
      } else if (!exchange->too_large) {
        exchange->too_large = true;
        exchange->body.clear();
        exchange->body.shrink_to_fit();
      }
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (exchange->too_large) {
      return Send(connection, exchange->request,
                  ErrorReply(413, "body: larger than " + std::to_string(kMaxBody / 1024) + " KiB"),
                  exchange->started);
    }
    std::optional<Reply> reply = Route(exchange->request, &exchange->body);
    return Send(connection, exchange->request, reply ? *reply : ErrorReply(500, "internal error"),
                exchange->started);
  } catch (const std::exception& e) {
    // A bug must not take the service down: answer 500 and go on.
    log::Error("api: request failed", {{"method", method != nullptr ? method : ""},
                                       {"path", url != nullptr ? url : ""},
                                       {"error", e.what()}});
    Request request;
    request.method = method != nullptr ? method : "";
    request.path = url != nullptr ? url : "";
    return Send(connection, request, ErrorReply(500, "internal error"),
                std::chrono::steady_clock::now());
  }
}

ApiServer::ApiServer(config::ApiConfig config, std::vector<ResolvedToken> tokens,
                     ServiceControl& control, prometheus::Registry& registry, const Clock& clock)
    : impl_(
          std::make_unique<Impl>(std::move(config), std::move(tokens), control, registry, clock)) {}

ApiServer::~ApiServer() { Stop(); }

Result<void> ApiServer::Start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->daemon != nullptr) return {};
  const config::ApiConfig& config = impl_->config;
  const std::string& host = config.host;
  const std::string address = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  const std::string where = address + ":" + std::to_string(config.port);
  // MHD says only that it failed; a plain bind first gives the system's own reason.
  if (auto probe = ProbeBind(host, config.port); !probe) {
    return Fail(ErrorKind::kConfig,
                "api: cannot listen on " + where + ": " + probe.error().message);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(config.port);
  if (const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return Fail(ErrorKind::kConfig, "api: cannot listen on " + where + ": " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, &freeaddrinfo);

  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
  if (found->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  const bool tls = config.tls.has_value();
  if (tls) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      return Fail(ErrorKind::kConfig, "api: tls is configured but libmicrohttpd has no TLS");
    }
    auto cert = ReadPem(config.tls->certificate_file, "certificate_file");
    if (!cert) return tl::unexpected(cert.error());
    auto key = ReadPem(config.tls->key_file, "key_file");
    if (!key) return tl::unexpected(key.error());
    impl_->tls_certificate = std::move(*cert);
    impl_->tls_key = std::move(*key);
    flags |= MHD_USE_TLS;
  }
  const unsigned idle_seconds = static_cast<unsigned>(std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(config.idle_timeout).count()));
  auto* access = +[](void* cls, MHD_Connection* connection, const char* url, const char* method,
                     const char* /*version*/, const char* upload_data, size_t* upload_data_size,
                     void** state) -> MHD_Result {
    return static_cast<Impl*>(cls)->Access(connection, url, method, upload_data, upload_data_size,
                                           state);
  };
  auto* logger = +[](void* /*cls*/, const char* format, va_list args) {
    std::array<char, 512> text{};
    std::vsnprintf(text.data(), text.size(), format, args);
    std::string line(text.data());
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    log::Debug("api: libmicrohttpd", {{"message", line}});
  };
  std::vector<MHD_OptionItem> options = {
      {MHD_OPTION_SOCK_ADDR, 0, found->ai_addr},
      // MHD shares the connection limit out among the threads: each needs one at least.
      {MHD_OPTION_THREAD_POOL_SIZE,
       static_cast<intptr_t>(std::min<unsigned>(kThreads, config.max_connections)), nullptr},
      {MHD_OPTION_CONNECTION_LIMIT, static_cast<intptr_t>(config.max_connections), nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, idle_seconds, nullptr},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<intptr_t>(kConnectionMemory), nullptr},
      {MHD_OPTION_NOTIFY_COMPLETED, reinterpret_cast<intptr_t>(&Completed), nullptr},
      {MHD_OPTION_UNESCAPE_CALLBACK, reinterpret_cast<intptr_t>(&KeepEscaped), nullptr},
      {MHD_OPTION_EXTERNAL_LOGGER, reinterpret_cast<intptr_t>(logger), nullptr},
  };
  if (tls) {
    options.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, impl_->tls_certificate.data()});
    options.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, impl_->tls_key.data()});
  }
  options.push_back({MHD_OPTION_END, 0, nullptr});
  impl_->daemon =
      MHD_start_daemon(flags, static_cast<uint16_t>(config.port), nullptr, nullptr, access,
                       impl_.get(), MHD_OPTION_ARRAY, options.data(), MHD_OPTION_END);
  if (impl_->daemon == nullptr) {
    return Fail(ErrorKind::kConfig,
                "api: cannot listen on " + where +
                    (tls ? ": libmicrohttpd refused to start (is the TLS key the certificate's?)"
                         : ": libmicrohttpd refused to start"));
  }
  log::Info("api: listening", {{"address", std::string(tls ? "https://" : "http://") + where},
                               {"max_connections", config.max_connections},
                               {"idle_timeout", FormatDuration(config.idle_timeout)}});
  return {};
}

void ApiServer::Stop() {
  MHD_Daemon* daemon = nullptr;
  {
    std::lock_guard lock(impl_->mu);
    daemon = std::exchange(impl_->daemon, nullptr);
  }
  // Waits for the pool's threads, and so for requests in progress.
  if (daemon != nullptr) MHD_stop_daemon(daemon);
}

}  // namespace ra::autoscaler
