#include "haproxy_dataplane/dataplane_client.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/base64.h"
#include "core/log.h"

namespace ra::haproxy {

using nlohmann::json;

std::string_view ToString(ApiVersion version) {
  switch (version) {
    case ApiVersion::kAuto:
      return "auto";
    case ApiVersion::kV2:
      return "v2";
    case ApiVersion::kV3:
      return "v3";
  }
  return "unknown";
}

Result<ApiVersion> ParseApiVersion(std::string_view text) {
  if (text == "auto") return ApiVersion::kAuto;
  if (text == "v2") return ApiVersion::kV2;
  if (text == "v3") return ApiVersion::kV3;
  return Fail(ErrorKind::kConfig,
              "unknown Data Plane API version '" + std::string(text) + "' (auto, v2 or v3)");
}

std::vector<std::string> DataPlaneOptions::Validate() const {
  std::vector<std::string> problems;
  if (!url.starts_with("http://") && !url.starts_with("https://")) {
    problems.push_back("url: must start with http:// or https:// (got '" + url + "')");
  }
  if (backend.empty()) problems.push_back("backend: required");
  if (backend.find_first_of(" \t\r\n/<>*;$#&{}\"") != std::string::npos) {
    problems.push_back("backend: '" + backend + "' is not a valid HAProxy backend name");
  }
  if (username.empty()) problems.push_back("username: required");
  if (password.empty()) problems.push_back("password: required");
  if (request_timeout <= Duration::zero()) problems.push_back("request_timeout: must be > 0");
  if (version_conflict_retries < 0) problems.push_back("version_conflict_retries: must be >= 0");
  if (transient_retries < 0) problems.push_back("transient_retries: must be >= 0");
  if (reload_timeout <= Duration::zero()) problems.push_back("reload_timeout: must be > 0");
  if (reload_poll_interval <= Duration::zero()) {
    problems.push_back("reload_poll_interval: must be > 0");
  }
  if (first_check_timeout <= Duration::zero()) {
    problems.push_back("first_check_timeout: must be > 0");
  }
  if (first_check_poll_interval <= Duration::zero()) {
    problems.push_back("first_check_poll_interval: must be > 0");
  }
  for (const auto& [name, value] :
       {std::pair{"check_inter_ms", check_inter_ms}, std::pair{"check_rise", check_rise},
        std::pair{"check_fall", check_fall}}) {
    if (value && *value <= 0) problems.push_back(std::string(name) + ": must be > 0");
  }
  return problems;
}

namespace {

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string Escape(std::string_view text) {
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

ErrorKind KindOf(int status) {
  if (status == 400 || status == 422) return ErrorKind::kBadRequest;
  if (status == 401 || status == 403) return ErrorKind::kAuth;
  if (status == 404) return ErrorKind::kNotFound;
  if (status == 406 || status == 409) return ErrorKind::kConflict;
  if (status == 429 || status >= 500) return ErrorKind::kTransient;
  return ErrorKind::kInternal;
}

std::string ApiMessage(const HttpResponse& response) {
  try {
    const json body = json::parse(response.body);
    if (body.is_object() && body.contains("message") && body["message"].is_string()) {
      return body["message"].get<std::string>();
    }
  } catch (const json::exception&) {
    // Not the API's error object: fall back to the raw text below.
  }
  // Redacted before the cut: a secret cut in two is no longer recognised afterwards.
  std::string text = log::Redact(response.body).substr(0, 200);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text.empty() ? "(empty body)" : text;
}

bool Retryable(const Result<HttpResponse>& answer) {
  if (!answer) return IsRetryable(answer.error().kind);
  return answer->status == 429 || answer->status >= 500;
}

std::optional<int> OptInt(const json& object, const char* key) {
  if (!object.contains(key) || object[key].is_null()) return std::nullopt;
  return object[key].get<int>();
}

Result<json> ParseJson(std::string_view what, const std::string& body) {
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    return Fail(ErrorKind::kParse, fmt::format("{}: the answer is not JSON: {}", what, e.what()));
  }
}

ServerConfig ServerFromJson(const json& object) {
  ServerConfig server;
  server.name = object.at("name").get<std::string>();
  server.address = object.at("address").get<std::string>();
  server.port = OptInt(object, "port");
  server.check = object.value("check", "") == "enabled";
  server.maintenance = object.value("maintenance", "") == "enabled";
  server.inter_ms = OptInt(object, "inter");
  server.rise = OptInt(object, "rise");
  server.fall = OptInt(object, "fall");
  server.weight = OptInt(object, "weight");
  return server;
}

}  // namespace

Error DataPlaneError(std::string_view what, const HttpResponse& response) {
  return Error{KindOf(response.status),
               log::Redact(fmt::format("{}: {} {}", what, response.status, ApiMessage(response)))};
}

bool IsVersionMismatch(const HttpResponse& response) {
  return response.status == 409 && ApiMessage(response).starts_with("version mismatch");
}

std::string ServerConfigToJson(const ServerConfig& server) {
  json body = {{"name", server.name}, {"address", server.address}};
  if (server.port) body["port"] = *server.port;
  body["check"] = server.check ? "enabled" : "disabled";
  if (server.maintenance) body["maintenance"] = "enabled";
  if (server.inter_ms) body["inter"] = *server.inter_ms;
  if (server.rise) body["rise"] = *server.rise;
  if (server.fall) body["fall"] = *server.fall;
  if (server.weight) body["weight"] = *server.weight;
  return body.dump();
}

Result<ServerConfig> ServerConfigFromJson(std::string_view text) {
  try {
    return ServerFromJson(json::parse(text));
  } catch (const json::exception& e) {
    return Fail(ErrorKind::kParse, fmt::format("server: {}", e.what()));
  }
}

DataPlaneClient::DataPlaneClient(DataPlaneOptions options, HttpTransport& transport,
                                 const Clock& clock, Sleeper& sleeper)
    : options_(std::move(options)), transport_(transport), clock_(clock), sleeper_(sleeper) {
  while (options_.url.ends_with('/')) options_.url.pop_back();
  const std::string credential = Base64Encode(options_.username + ":" + options_.password.Reveal());
  // The encoded form reveals the password as surely as the password: an answer that echoes the
  // request's headers must not carry it into an error or a log line.
  log::RegisterSecret(credential);
  authorization_ = "Basic " + credential;
  if (options_.api_version != ApiVersion::kAuto) detected_ = options_.api_version;
}

void DataPlaneClient::SleepFor(Duration d) { sleeper_.SleepFor(d); }

Result<HttpResponse> DataPlaneClient::SendOnce(const Call& call, ApiVersion version) {
  HttpRequest request;
  request.method = call.method;
  request.url = options_.url + "/" + std::string(ToString(version)) + call.path;
  request.headers["Authorization"] = authorization_;
  request.headers["Accept"] = "application/json";
  request.headers["User-Agent"] = "replica-autoscaler";
  if (!call.body.empty()) {
    request.headers["Content-Type"] = "application/json";
    request.body = call.body;
  }
  request.timeout = options_.request_timeout;
  auto answer = transport_.Send(request);
  if (!answer) {
    return Fail(answer.error().kind,
                log::Redact(fmt::format("Data Plane API {} {}: {}", call.method, request.url,
                                        answer.error().message)));
  }
  return answer;
}

Result<HttpResponse> DataPlaneClient::Send(const Call& call) {
  auto version = Version();
  if (!version) return Fail(version.error());
  Duration backoff = options_.retry_backoff;
  for (int attempt = 0;; ++attempt) {
    auto answer = SendOnce(call, *version);
    if (!call.idempotent || attempt >= options_.transient_retries || !Retryable(answer)) {
      return answer;
    }
    log::Warn(
        "Data Plane API request failed, retrying",
        {{"method", call.method},
         {"path", call.path},
         {"attempt", attempt + 1},
         {"error", answer ? fmt::format("HTTP {}", answer->status) : answer.error().message}});
    SleepFor(backoff);
    backoff *= 2;
  }
}

Result<ApiVersion> DataPlaneClient::Version() {
  {
    std::lock_guard lock(mu_);
    if (detected_) return *detected_;
  }
  auto found = Detect();
  if (!found) return found;
  std::lock_guard lock(mu_);
  detected_ = *found;
  return *found;
}

Result<ApiVersion> DataPlaneClient::Detect() {
  for (ApiVersion candidate : {ApiVersion::kV3, ApiVersion::kV2}) {
    Result<HttpResponse> answer = SendOnce({"GET", "/info", "", true}, candidate);
    for (int attempt = 0; attempt < options_.transient_retries && Retryable(answer); ++attempt) {
      SleepFor(options_.retry_backoff);
      answer = SendOnce({"GET", "/info", "", true}, candidate);
    }
    if (!answer) return Fail(answer.error());
    if (answer->status == 404) continue;
    if (answer->status != 200) {
      return Fail(
          DataPlaneError(fmt::format("Data Plane API GET /{}/info", ToString(candidate)), *answer));
    }
    log::Info("Data Plane API version detected", {{"api", ToString(candidate)}});
    return candidate;
  }
  return Fail(ErrorKind::kConfig,
              fmt::format("{} answers neither /v3/info nor /v2/info: is it a Data Plane API?",
                          options_.url));
}

Result<std::string> DataPlaneClient::ServersPath(std::string_view name, std::string_view query) {
  auto version = Version();
  if (!version) return Fail(version.error());
  std::string path;
  std::string q(query);
  if (*version == ApiVersion::kV3) {
    path = "/services/haproxy/configuration/backends/" + Escape(options_.backend) + "/servers";
  } else {
    path = "/services/haproxy/configuration/servers";
    q = "backend=" + Escape(options_.backend) + (q.empty() ? "" : "&" + q);
  }
  if (!name.empty()) path += "/" + Escape(name);
  if (!q.empty()) path += "?" + q;
  return path;
}

Result<std::string> DataPlaneClient::RuntimeServersPath(std::string_view name) {
  auto version = Version();
  if (!version) return Fail(version.error());
  std::string suffix = name.empty() ? "" : "/" + Escape(name);
  if (*version == ApiVersion::kV3) {
    return "/services/haproxy/runtime/backends/" + Escape(options_.backend) + "/servers" + suffix;
  }
  return "/services/haproxy/runtime/servers" + suffix + "?backend=" + Escape(options_.backend);
}

Result<int64_t> DataPlaneClient::GetConfigurationVersion() {
  auto answer = Send({"GET", "/services/haproxy/configuration/version", "", true});
  if (!answer) return Fail(answer.error());
  if (answer->status != 200) {
    return Fail(DataPlaneError("Data Plane API: reading the configuration version", *answer));
  }
  auto body = ParseJson("configuration version", answer->body);
  if (!body) return Fail(body.error());
  if (!body->is_number_integer()) {
    return Fail(ErrorKind::kParse, "configuration version: not an integer: " + answer->body);
  }
  return body->get<int64_t>();
}

Result<DataPlaneClient::ServersAtVersion> DataPlaneClient::GetServers() {
  auto path = ServersPath("", "");
  if (!path) return Fail(path.error());
  auto answer = Send({"GET", *path, "", true});
  if (!answer) return Fail(answer.error());
  if (answer->status != 200) {
    return Fail(DataPlaneError("Data Plane API: listing servers of " + options_.backend, *answer));
  }
  auto body = ParseJson("servers", answer->body);
  if (!body) return Fail(body.error());
  try {
    ServersAtVersion out;
    // v2 wraps the list as {"_version": N, "data": [...]}; v3 sends the list and the version in
    // the Configuration-Version header.
    const json* list = &*body;
    if (body->is_object()) {
      list = &body->at("data");
      out.version = body->value("_version", int64_t{0});
    }
    if (const std::string header = answer->Header("Configuration-Version"); !header.empty()) {
      out.version = std::stoll(header);
    }
    if (!list->is_array()) return Fail(ErrorKind::kParse, "servers: not a list: " + answer->body);
    for (const json& item : *list) out.servers.push_back(ServerFromJson(item));
    return out;
  } catch (const std::exception& e) {
    return Fail(ErrorKind::kParse, fmt::format("servers: {}: {}", e.what(), answer->body));
  }
}

Result<WriteOutcome> DataPlaneClient::VersionedWrite(const std::string& method,
                                                     std::string_view name,
                                                     const std::string& body) {
  const std::string what =
      fmt::format("Data Plane API: {} server {} in {}",
                  method == "POST" ? "creating" : (method == "PUT" ? "replacing" : "deleting"),
                  name, options_.backend);
  for (int attempt = 0;; ++attempt) {
    auto version = GetConfigurationVersion();
    if (!version) return Fail(version.error());
    auto path = ServersPath(method == "POST" ? "" : name, fmt::format("version={}", *version));
    if (!path) return Fail(path.error());
    auto answer = Send({method, *path, body, false});
    if (!answer) return Fail(answer.error());
    if (answer->status == 201 || answer->status == 204 || answer->status == 200) {
      return WriteOutcome{};
    }
    if (answer->status == 202) {
      WriteOutcome outcome;
      if (std::string id = answer->Header("Reload-ID"); !id.empty()) outcome.reload_id = id;
      return outcome;
    }
    if (IsVersionMismatch(*answer) && attempt < options_.version_conflict_retries) {
      log::Info("Data Plane API configuration changed concurrently, re-reading the version",
                {{"server", name}, {"attempt", attempt + 1}, {"message", ApiMessage(*answer)}});
      continue;
    }
    return Fail(DataPlaneError(what, *answer));
  }
}

Result<WriteOutcome> DataPlaneClient::CreateServer(const ServerConfig& server) {
  return VersionedWrite("POST", server.name, ServerConfigToJson(server));
}

Result<WriteOutcome> DataPlaneClient::ReplaceServer(const ServerConfig& server) {
  return VersionedWrite("PUT", server.name, ServerConfigToJson(server));
}

Result<WriteOutcome> DataPlaneClient::DeleteServer(std::string_view name) {
  return VersionedWrite("DELETE", name, "");
}

Result<void> DataPlaneClient::CreateServerIn(const std::string& transaction_id,
                                             const ServerConfig& server) {
  auto path = ServersPath("", "transaction_id=" + Escape(transaction_id));
  if (!path) return Fail(path.error());
  auto answer = Send({"POST", *path, ServerConfigToJson(server), false});
  if (!answer) return Fail(answer.error());
  if (answer->status >= 200 && answer->status < 300) return {};
  return Fail(DataPlaneError("Data Plane API: creating server " + server.name + " in transaction",
                             *answer));
}

Result<void> DataPlaneClient::DeleteServerIn(const std::string& transaction_id,
                                             std::string_view name) {
  auto path = ServersPath(name, "transaction_id=" + Escape(transaction_id));
  if (!path) return Fail(path.error());
  auto answer = Send({"DELETE", *path, "", false});
  if (!answer) return Fail(answer.error());
  if (answer->status >= 200 && answer->status < 300) return {};
  return Fail(DataPlaneError(
      "Data Plane API: deleting server " + std::string(name) + " in transaction", *answer));
}

Result<WriteOutcome> DataPlaneClient::RunTransaction(const TransactionBody& body) {
  for (int attempt = 0;; ++attempt) {
    auto version = GetConfigurationVersion();
    if (!version) return Fail(version.error());
    auto started = Send(
        {"POST", fmt::format("/services/haproxy/transactions?version={}", *version), "", false});
    if (!started) return Fail(started.error());
    if (IsVersionMismatch(*started) && attempt < options_.version_conflict_retries) continue;
    if (started->status != 201) {
      return Fail(DataPlaneError("Data Plane API: starting a transaction", *started));
    }
    std::string id;
    {
      auto parsed = ParseJson("transaction", started->body);
      if (!parsed) return Fail(parsed.error());
      if (!parsed->is_object() || !(*parsed)["id"].is_string()) {
        return Fail(ErrorKind::kParse, "transaction: no id in " + started->body);
      }
      id = (*parsed)["id"].get<std::string>();
    }
    // From here on, every way out that does not commit deletes the transaction: an abandoned
    // one counts against the API's limit of open transactions until it restarts.
    auto abandon = [&](Error error) -> Result<WriteOutcome> {
      auto deleted = Send({"DELETE", "/services/haproxy/transactions/" + Escape(id), "", true});
      if (!deleted || (deleted->status != 204 && deleted->status != 404)) {
        log::Error("Data Plane API: could not delete a failed transaction",
                   {{"transaction", id},
                    {"error", deleted ? DataPlaneError("delete", *deleted).message
                                      : deleted.error().message}});
      }
      return Fail(std::move(error));
    };
    if (auto done = body(id); !done) return abandon(done.error());
    auto committed = Send({"PUT", "/services/haproxy/transactions/" + Escape(id), "", false});
    if (!committed) return abandon(committed.error());
    if (committed->status == 200 || committed->status == 201) return WriteOutcome{};
    if (committed->status == 202) {
      WriteOutcome outcome;
      if (std::string rid = committed->Header("Reload-ID"); !rid.empty()) outcome.reload_id = rid;
      return outcome;
    }
    const bool concurrent = IsVersionMismatch(*committed) || committed->status == 406;
    Error error = DataPlaneError("Data Plane API: committing transaction " + id, *committed);
    if (concurrent && attempt < options_.version_conflict_retries) {
      (void)abandon(error);
      log::Info("Data Plane API transaction outdated by a concurrent change, redoing it",
                {{"attempt", attempt + 1}, {"message", error.message}});
      continue;
    }
    return abandon(std::move(error));
  }
}

Result<std::vector<Transaction>> DataPlaneClient::ListTransactions(std::string_view status) {
  std::string path = "/services/haproxy/transactions";
  if (!status.empty()) path += "?status=" + Escape(status);
  auto answer = Send({"GET", path, "", true});
  if (!answer) return Fail(answer.error());
  if (answer->status != 200) {
    return Fail(DataPlaneError("Data Plane API: listing transactions", *answer));
  }
  auto body = ParseJson("transactions", answer->body);
  if (!body) return Fail(body.error());
  try {
    std::vector<Transaction> out;
    for (const json& item : *body) {
      out.push_back({item.at("id").get<std::string>(), item.value("_version", int64_t{0}),
                     item.value("status", "")});
    }
    return out;
  } catch (const std::exception& e) {
    return Fail(ErrorKind::kParse, fmt::format("transactions: {}: {}", e.what(), answer->body));
  }
}

Result<void> DataPlaneClient::WaitForReload(const std::string& id) {
  const TimePoint deadline = clock_.Now() + options_.reload_timeout;
  for (;;) {
    auto answer = Send({"GET", "/services/haproxy/reloads/" + Escape(id), "", true});
    if (!answer) return Fail(answer.error());
    if (answer->status != 200) {
      return Fail(DataPlaneError("Data Plane API: reading reload " + id, *answer));
    }
    auto body = ParseJson("reload", answer->body);
    if (!body) return Fail(body.error());
    // Field by field with type checks: json::value() throws on a field of another type.
    auto text = [&](const char* key) {
      auto it = body->is_object() ? body->find(key) : body->end();
      return it != body->end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    const std::string status = text("status");
    if (status == "succeeded") return {};
    if (status == "failed") {
      return Fail(ErrorKind::kTransient,
                  fmt::format("HAProxy reload {} failed: {}", id, text("response")));
    }
    if (status != "in_progress") {
      return Fail(ErrorKind::kParse, "reload " + id + ": unexpected answer " + answer->body);
    }
    if (clock_.Now() >= deadline) {
      return Fail(ErrorKind::kTimeout,
                  fmt::format("HAProxy reload {} still in progress after {} ms", id,
                              options_.reload_timeout.count()));
    }
    SleepFor(options_.reload_poll_interval);
  }
}

namespace {

Result<RuntimeServer> RuntimeFromJson(const json& item) {
  RuntimeServer server;
  server.name = item.at("name").get<std::string>();
  server.address = item.value("address", "");
  server.port = OptInt(item, "port");
  auto admin = ParseAdminState(item.value("admin_state", ""));
  if (!admin) return Fail(admin.error());
  server.admin_state = *admin;
  server.operational_state = item.value("operational_state", "");
  return server;
}

}  // namespace

Result<std::vector<RuntimeServer>> DataPlaneClient::GetRuntimeServers() {
  auto path = RuntimeServersPath("");
  if (!path) return Fail(path.error());
  auto answer = Send({"GET", *path, "", true});
  if (!answer) return Fail(answer.error());
  if (answer->status != 200) {
    return Fail(DataPlaneError("Data Plane API: runtime servers of " + options_.backend, *answer));
  }
  auto body = ParseJson("runtime servers", answer->body);
  if (!body) return Fail(body.error());
  try {
    std::vector<RuntimeServer> out;
    if (!body->is_array()) return Fail(ErrorKind::kParse, "runtime servers: not a list");
    for (const json& item : *body) {
      auto server = RuntimeFromJson(item);
      if (!server) return Fail(server.error());
      out.push_back(std::move(*server));
    }
    return out;
  } catch (const std::exception& e) {
    return Fail(ErrorKind::kParse, fmt::format("runtime servers: {}: {}", e.what(), answer->body));
  }
}

Result<RuntimeServer> DataPlaneClient::SetAdminState(std::string_view name, AdminState state) {
  auto path = RuntimeServersPath(name);
  if (!path) return Fail(path.error());
  const json body = {{"admin_state", ToString(state)}};
  auto answer = Send({"PUT", *path, body.dump(), true});
  if (!answer) return Fail(answer.error());
  if (answer->status != 200) {
    return Fail(DataPlaneError(fmt::format("Data Plane API: setting server {}/{} to {}",
                                           options_.backend, name, ToString(state)),
                               *answer));
  }
  auto parsed = ParseJson("runtime server", answer->body);
  if (!parsed) return Fail(parsed.error());
  try {
    return RuntimeFromJson(*parsed);
  } catch (const std::exception& e) {
    return Fail(ErrorKind::kParse, fmt::format("runtime server: {}: {}", e.what(), answer->body));
  }
}

Result<std::vector<ServerStats>> DataPlaneClient::GetServerStats(std::string_view name) {
  std::string path =
      "/services/haproxy/stats/native?type=server&parent=" + Escape(options_.backend);
  if (!name.empty()) path += "&name=" + Escape(name);
  auto answer = Send({"GET", path, "", true});
  if (!answer) return Fail(answer.error());
  if (answer->status != 200) {
    return Fail(DataPlaneError("Data Plane API: stats of " + options_.backend, *answer));
  }
  auto body = ParseJson("stats", answer->body);
  if (!body) return Fail(body.error());
  try {
    std::vector<ServerStats> out;
    // v2: a list of collections, one per runtime API (HAProxy process); v3: one collection.
    const json collections = body->is_array() ? *body : json::array({*body});
    for (const json& collection : collections) {
      if (collection.contains("error") && collection["error"].is_string() &&
          !collection["error"].get<std::string>().empty()) {
        return Fail(ErrorKind::kTransient,
                    "stats: runtime API error: " + collection["error"].get<std::string>());
      }
      if (!collection.contains("stats") || collection["stats"].is_null()) continue;
      for (const json& item : collection["stats"]) {
        if (item.value("type", "") != "server") continue;
        if (item.value("backend_name", "") != options_.backend) continue;
        ServerStats s;
        s.name = item.at("name").get<std::string>();
        s.backend = item.value("backend_name", "");
        const json& stats = item.contains("stats") ? item["stats"] : json::object();
        s.status = stats.value("status", "");
        s.check_status = stats.value("check_status", "");
        s.scur = stats.value("scur", int64_t{0});
        s.stot = stats.value("stot", int64_t{0});
        out.push_back(std::move(s));
      }
    }
    return out;
  } catch (const std::exception& e) {
    return Fail(ErrorKind::kParse, fmt::format("stats: {}: {}", e.what(), answer->body));
  }
}

}  // namespace ra::haproxy
