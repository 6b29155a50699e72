#include "autoscaler/leader.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/base64.h"
#include "core/log.h"

namespace ra::autoscaler {

namespace {

// The gateway's error text: {"error": "...", "message": "...", "code": 5}.
std::string ErrorText(const std::string& body) {
  const nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_object()) {
    for (const char* field : {"message", "error"}) {
      const auto it = doc.find(field);
      if (it != doc.end() && it->is_string()) return it->get<std::string>();
    }
  }
  return body.substr(0, 200);
}

}  // namespace

std::optional<int64_t> EtcdInt64(const nlohmann::json& object, const char* name) {
  if (!object.is_object()) return std::nullopt;
  const auto it = object.find(name);
  if (it == object.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    try {
      size_t used = 0;
      const std::string text = it->get<std::string>();
      const int64_t value = std::stoll(text, &used);
      if (used == text.size()) return value;
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
}

Result<std::string> EtcdGateway::Post(const std::string& path, const std::string& body,
                                      Duration timeout) {
  bool needs_token = false;
  {
    std::lock_guard lock(mu_);
    needs_token = !options_.username.empty() && token_.empty();
  }
  if (needs_token) {
    if (auto ok = Authenticate(timeout); !ok) return Fail(ok.error());
  }
  return PostOnce(path, body, timeout);
}

Result<void> EtcdGateway::Authenticate(Duration timeout) {
  const nlohmann::json body{{"name", options_.username}, {"password", options_.password.Reveal()}};
  Result<std::string> answer = PostOnce("/v3/auth/authenticate", body.dump(), timeout);
  if (!answer) return Fail(ErrorKind::kAuth, answer.error().message);
  const nlohmann::json doc = nlohmann::json::parse(*answer, nullptr, false);
  if (!doc.is_object() || !doc.contains("token") || !doc["token"].is_string()) {
    return Fail(ErrorKind::kParse, "etcd /v3/auth/authenticate: no token in the answer");
  }
  Secret token(doc["token"].get<std::string>(), Secret::Ephemeral{});
  std::lock_guard lock(mu_);
  token_ = token.Reveal();
  return {};
}

Result<std::string> EtcdGateway::PostOnce(const std::string& path, const std::string& body,
                                          Duration timeout) {
  if (options_.endpoints.empty()) return Fail(ErrorKind::kConfig, "no etcd endpoint");
  HttpRequest request;
  request.method = "POST";
  size_t endpoint = 0;
  {
    std::lock_guard lock(mu_);
    endpoint = endpoint_;
    if (!token_.empty() && path != "/v3/auth/authenticate") {
      request.headers["Authorization"] = token_;
    }
  }
  request.url = options_.endpoints[endpoint % options_.endpoints.size()] + path;
  request.headers["Content-Type"] = "application/json";
  request.body = body;
  request.timeout = timeout;
  Result<HttpResponse> response = transport_.Send(request);
  if (!response) {
    // The next request goes to the next endpoint: this one may be down or cut off.
    std::lock_guard lock(mu_);
    endpoint_ = (endpoint + 1) % options_.endpoints.size();
    return Fail(response.error().kind, fmt::format("etcd {}: {}", path, response.error().message));
  }
  if (response->status != 200) {
    const std::string text = ErrorText(response->body);
    if (text.find("invalid auth token") != std::string::npos ||
        text.find("user name is empty") != std::string::npos) {
      std::lock_guard lock(mu_);
      token_.clear();  // authenticated again by the next request
    }
    const ErrorKind kind = text.find("lease not found") != std::string::npos ? ErrorKind::kNotFound
                           : path == "/v3/auth/authenticate"                 ? ErrorKind::kAuth
                           : response->status >= 500                         ? ErrorKind::kTransient
                                                     : ErrorKind::kBadRequest;
    return Fail(kind, fmt::format("etcd {}: HTTP {}: {}", path, response->status, text));
  }
  return std::move(response->body);
}

LeaderElector::LeaderElector(LeaderElectorOptions options, HttpTransport& transport,
                             const Clock& clock)
    : options_(std::move(options)),
      gateway_(options_.etcd, transport),
      clock_(clock),
      margin_(options_.margin.value_or(options_.ttl / 3)) {}

LeaderElector::~LeaderElector() { Stop(); }

std::optional<uint64_t> LeaderElector::HeldTerm() const {
  std::lock_guard lock(mu_);
  if (!leading_ || clock_.Now() >= renewed_ + options_.ttl - margin_) return std::nullopt;
  return term_;
}

std::string LeaderElector::LeaderName() const {
  std::lock_guard lock(mu_);
  return leader_;
}

uint64_t LeaderElector::LastTerm() const {
  std::lock_guard lock(mu_);
  return term_;
}

void LeaderElector::LoseLocked(const std::string& why) {
  if (leading_) {
    log::Warn("leadership lost", {{"instance", options_.instance}, {"term", term_}, {"why", why}});
  }
  leading_ = false;
  if (leader_ == options_.instance) leader_.clear();
}

Result<std::string> LeaderElector::Post(const std::string& path, const std::string& body) {
  // A request that hangs must not outlive the leadership it is meant to keep.
  return gateway_.Post(path, body, std::max<Duration>(margin_, std::chrono::milliseconds(200)));
}

Result<void> LeaderElector::Grant() {
  const nlohmann::json body{
      {"TTL",
       std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.ttl).count())}};
  Result<std::string> answer = Post("/v3/lease/grant", body.dump());
  if (!answer) return Fail(answer.error());
  const nlohmann::json doc = nlohmann::json::parse(*answer, nullptr, false);
  const std::optional<int64_t> id = EtcdInt64(doc, "ID");
  if (!id || *id == 0) return Fail(ErrorKind::kParse, "etcd /v3/lease/grant: no lease id");
  std::lock_guard lock(mu_);
  lease_ = *id;
  return {};
}

Result<void> LeaderElector::KeepAlive() {
  int64_t lease = 0;
  {
    std::lock_guard lock(mu_);
    lease = lease_;
  }
  const nlohmann::json body{{"ID", std::to_string(lease)}};
  Result<std::string> answer = Post("/v3/lease/keepalive", body.dump());
  if (!answer) return Fail(answer.error());
  // A stream of one message: {"result": {"ID": "...", "TTL": "10"}}. A lease etcd no longer has
  // answers TTL 0 (left out of the JSON).
  const nlohmann::json doc = nlohmann::json::parse(*answer, nullptr, false);
  if (!doc.is_object() || !doc.contains("result") || !doc["result"].is_object()) {
    return Fail(ErrorKind::kParse, "etcd /v3/lease/keepalive: no result");
  }
  const std::optional<int64_t> ttl = EtcdInt64(doc["result"], "TTL");
  if (!ttl || *ttl <= 0) return Fail(ErrorKind::kNotFound, "etcd: the lease expired");
  return {};
}

Result<bool> LeaderElector::Campaign() {
  int64_t lease = 0;
  {
    std::lock_guard lock(mu_);
    lease = lease_;
  }
  const std::string key = Base64Encode(options_.key);
  const nlohmann::json body{
      {"compare",
       {{{"key", key}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}}}},
      {"success",
       {{{"request_put",
          {{"key", key},
           {"value", Base64Encode(options_.instance)},
           {"lease", std::to_string(lease)}}}}}},
      {"failure", {{{"request_range", {{"key", key}}}}}}};
  Result<std::string> answer = Post("/v3/kv/txn", body.dump());
  if (!answer) return Fail(answer.error());
  const nlohmann::json doc = nlohmann::json::parse(*answer, nullptr, false);
  if (!doc.is_object()) return Fail(ErrorKind::kParse, "etcd /v3/kv/txn: not a JSON object");
  if (doc.value("succeeded", false)) {
    std::lock_guard lock(mu_);
    leader_ = options_.instance;
    return true;
  }
  // Held: who holds it. The key may be this instance's own, put under this lease by a round
  // whose answer was lost, or before leadership was given up locally.
  nlohmann::json kv;  // a copy: the range it comes from is a temporary
  if (doc.contains("responses") && doc["responses"].is_array() && !doc["responses"].empty() &&
      doc["responses"][0].is_object()) {
    const nlohmann::json range = doc["responses"][0].value("response_range", nlohmann::json());
    if (range.is_object() && range.contains("kvs") && range["kvs"].is_array() &&
        !range["kvs"].empty() && range["kvs"][0].is_object()) {
      kv = range["kvs"][0];
    }
  }
  if (kv.is_null()) {
    return Fail(ErrorKind::kTransient, "etcd: the key vanished; campaigning again");
  }
  const std::optional<std::string> holder = Base64Decode(kv.value("value", std::string()));
  const std::optional<int64_t> holder_lease = EtcdInt64(kv, "lease");
  std::lock_guard lock(mu_);
  leader_ = holder.value_or("");
  if (holder_lease && *holder_lease == lease_ && leader_ == options_.instance) return true;
  return false;
}

void LeaderElector::Revoke() {
  int64_t lease = 0;
  {
    std::lock_guard lock(mu_);
    lease = std::exchange(lease_, 0);
    LoseLocked("stopping");
  }
  if (lease == 0) return;
  const nlohmann::json body{{"ID", std::to_string(lease)}};
  (void)Post("/v3/lease/revoke", body.dump());
}

Result<void> LeaderElector::Step() {
  try {
    return StepOnce();
  } catch (const std::exception& e) {
    // An answer shaped unlike etcd's must not end the process, nor keep a leadership that
    // cannot be checked.
    std::lock_guard lock(mu_);
    LoseLocked(e.what());
    return Fail(ErrorKind::kInternal, fmt::format("leader election: {}", e.what()));
  }
}

Result<void> LeaderElector::StepOnce() {
  const TimePoint sent = clock_.Now();
  bool has_lease = false;
  {
    std::lock_guard lock(mu_);
    // A round that comes too late (a stalled thread) does not extend the leadership it let
    // lapse: it is given up, and won again in a new term if the key is still this lease's.
    if (leading_ && sent >= renewed_ + options_.ttl - margin_) LoseLocked("renewal margin passed");
    has_lease = lease_ != 0;
  }
  if (!has_lease) {
    if (auto ok = Grant(); !ok) return ok;
  } else if (auto ok = KeepAlive(); !ok) {
    std::lock_guard lock(mu_);
    LoseLocked(ok.error().message);
    if (ok.error().kind == ErrorKind::kNotFound) lease_ = 0;  // a new one in the next round
    return ok;
  }
  {
    std::lock_guard lock(mu_);
    renewed_ = sent;
    if (leading_) return {};
  }
  Result<bool> won = Campaign();
  std::lock_guard lock(mu_);
  if (!won) {
    if (won.error().kind == ErrorKind::kNotFound) lease_ = 0;
    return Fail(won.error());
  }
  if (*won) {
    leading_ = true;
    ++term_;
    log::Info("leadership won", {{"instance", options_.instance}, {"term", term_}});
  }
  return {};
}

void LeaderElector::Start() {
  std::lock_guard lock(run_mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] {
    std::string last_error;
    std::unique_lock run(run_mu_);
    while (!stop_) {
      run.unlock();
      Result<void> ok = Step();
      const std::string error = ok ? std::string() : log::Redact(ok.error().message);
      if (error != last_error && !error.empty()) {
        log::Warn("leader election", {{"instance", options_.instance}, {"error", error}});
      }
      last_error = error;
      run.lock();
      run_cv_.wait_for(run, RenewEvery(), [this] { return stop_; });
    }
  });
}

void LeaderElector::Stop(bool revoke) {
  {
    std::lock_guard lock(run_mu_);
    if (stop_) return;
    stop_ = true;
  }
  run_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (revoke) {
    Revoke();
    return;
  }
  std::lock_guard lock(mu_);
  lease_ = 0;
  LoseLocked("stopping; the lease is left to run out");
}

}  // namespace ra::autoscaler
