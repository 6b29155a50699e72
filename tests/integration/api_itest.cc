// The HTTP API on a real loopback socket (the libmicrohttpd listener) with a fake control loop
// behind it, exercised by libcurl and by the built CLI binary as an operator runs it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "api/api_server.h"
#include "autoscaler/service_metrics.h"
#include "core/duration.h"
#include "core/http_transport.h"
#include "core/log.h"
#include "tests/support/process.h"

namespace ra::autoscaler {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kAdminToken = "admin-token-6b0c1f7e2d";
const std::string kReaderToken = "reader-token-93aa51c4e8";

// 2026-11-21T10:00:00Z
const TimePoint kT0 = TimePoint{} + std::chrono::seconds(1795255200);

/// ServiceControl as the API sees it: clusters held in memory, every call recorded. Cluster
/// "main" moves a new replica one phase further on each Status() after a scale-up, so
/// `scale --wait` has phases to follow; "frozen" never changes.
class FakeControl final : public ServiceControl {
 public:
  explicit FakeControl(const Clock& clock) : clock_(clock) {
    for (const char* name : {"main", "frozen"}) {
      ClusterStatus s;
      s.name = name;
      s.min_replicas = 1;
      s.max_replicas = 5;
      s.desired = 1;
      s.active = 1;
      s.serving = 1;
      s.plan_reason = "desired 1, active 1 (1 serving): nothing to do";
      s.last_cycle_at = kT0 - 3s;
      s.primary = "127.0.0.1:5432";
      ReplicaView r;
      r.name = std::string(name) + "-replica-aa11";
      r.phase = Phase::kServing;
      r.phase_since = kT0 - 10min;
      r.zone = "az1";
      r.address = "127.0.10.1";
      r.lag_bytes = 4096;
      r.lag_seconds = 0.2;
      r.sessions = 7;
      r.created = kT0 - 1h;
      s.replicas.push_back(r);
      policies::Decision d;
      d.current = 1;
      d.recommended = 1;
      d.desired = 1;
      d.reason = "sessions per replica 7 within target 30: hold";
      d.verdicts = {{"sessions", policies::VerdictKind::kHold, 1, "7 within 30 ±10%"}};
      s.decision = d;
      s.decided_at = kT0 - 3s;
      clusters_[name] = s;
    }
    for (int i = 0; i < 5; ++i) {
      Event e;
      e.at = kT0 + std::chrono::seconds(i);
      e.cluster = i % 2 == 0 ? "main" : "frozen";
      e.type = "decision";
      e.message = "event " + std::to_string(i);
      events_.push_back(e);
    }
  }

  std::vector<std::string> ClusterNames() const override {
    std::lock_guard lock(mu_);
    std::vector<std::string> names;
    for (const auto& [name, s] : clusters_) names.push_back(name);
    return names;
  }

  Result<ClusterStatus> Status(const std::string& cluster) const override {
    std::lock_guard lock(mu_);
    auto it = clusters_.find(cluster);
    if (it == clusters_.end())
      return Fail(ErrorKind::kNotFound, "no cluster named '" + cluster + "'");
    ClusterStatus shown = it->second;
    if (cluster == "main") Advance(it->second);  // the next call sees one cycle later
    return shown;
  }

  Result<void> SetOverride(const std::string& cluster, policies::ManualOverride manual) override {
    std::lock_guard lock(mu_);
    calls_.push_back("SetOverride " + cluster + " " + std::to_string(manual.replicas) + " " +
                     manual.reason);
    auto it = clusters_.find(cluster);
    if (it == clusters_.end())
      return Fail(ErrorKind::kNotFound, "no cluster named '" + cluster + "'");
    ClusterStatus& s = it->second;
    if (manual.replicas < s.min_replicas || manual.replicas > s.max_replicas) {
      return Fail(ErrorKind::kBadRequest, "replicas: " + std::to_string(manual.replicas) +
                                              " is outside min_replicas 1 .. max_replicas 5");
    }
    last_override_ = manual;
    s.manual = manual;
    s.desired = manual.replicas;
    if (cluster == "main") {
      while (static_cast<int>(s.replicas.size()) < manual.replicas) {
        ReplicaView r;
        r.name = "main-replica-n" + std::to_string(s.replicas.size());
        r.phase = Phase::kVolumeCreating;
        r.phase_since = clock_.Now();
        r.zone = "az2";
        r.detail = "volume creating";
        s.replicas.push_back(r);
      }
    }
    return {};
  }

  Result<void> ClearOverride(const std::string& cluster) override {
    return Record("Clear", cluster);
  }
  Result<void> Pause(const std::string& cluster, const std::string& reason) override {
    if (reason == "unsaved") {  // as the Controller answers when state.json cannot be written
      return Fail(ErrorKind::kTransient,
                  "the change was not saved (disk full), so it is not in force");
    }
    return Record("Pause", cluster, reason);
  }
  Result<void> Resume(const std::string& cluster) override { return Record("Resume", cluster); }
  Result<void> RequestSnapshot(const std::string& cluster) override {
    auto recorded = Record("Snapshot", cluster);
    if (!recorded) return recorded;
    std::lock_guard lock(mu_);
    if (snapshot_pending_) return Fail(ErrorKind::kConflict, "a snapshot is being made already");
    snapshot_pending_ = true;
    return {};
  }
  Result<void> ReplaceReplica(const std::string& cluster, const std::string& replica) override {
    return Record("Replace", cluster, replica);
  }
  void TriggerCycle() override {}

  std::vector<Event> Events(const std::string& cluster, size_t limit,
                            std::optional<TimePoint> since) const override {
    std::lock_guard lock(mu_);
    events_query_ = {cluster, limit, since};
    std::vector<Event> out;
    for (const Event& e : events_) {
      if (!cluster.empty() && e.cluster != cluster) continue;
      if (since && e.at < *since) continue;
      out.push_back(e);
    }
    if (out.size() > limit) out.erase(out.begin(), out.end() - static_cast<long>(limit));
    return out;
  }

  Health GetHealth() const override {
    std::lock_guard lock(mu_);
    return health_;
  }

  void SetHealth(Health h) {
    std::lock_guard lock(mu_);
    health_ = h;
  }
  std::vector<std::string> Calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  std::optional<policies::ManualOverride> LastOverride() const {
    std::lock_guard lock(mu_);
    return last_override_;
  }
  struct EventsQuery {
    std::string cluster;
    size_t limit = 0;
    std::optional<TimePoint> since;
  };
  EventsQuery LastEventsQuery() const {
    std::lock_guard lock(mu_);
    return events_query_;
  }

 private:
  Result<void> Record(const std::string& what, const std::string& cluster,
                      const std::string& extra = "") {
    std::lock_guard lock(mu_);
    calls_.push_back(what + " " + cluster + (extra.empty() ? "" : " " + extra));
    if (!clusters_.count(cluster))
      return Fail(ErrorKind::kNotFound, "no cluster named '" + cluster + "'");
    return {};
  }

  // One step up the phases for every replica not yet serving, as a few cycles would do.
  void Advance(ClusterStatus& s) const {
    int active = 0;
    int serving = 0;
    for (ReplicaView& r : s.replicas) {
      if (r.phase != Phase::kServing) {
        r.phase = static_cast<Phase>(static_cast<int>(r.phase) + 1);
        r.phase_since = clock_.Now();
      }
      ++active;
      if (r.phase == Phase::kServing) ++serving;
    }
    s.active = active;
    s.serving = serving;
  }

  const Clock& clock_;
  mutable std::mutex mu_;
  mutable std::map<std::string, ClusterStatus> clusters_;
  std::vector<Event> events_;
  std::vector<std::string> calls_;
  std::optional<policies::ManualOverride> last_override_;
  bool snapshot_pending_ = false;
  Health health_{};
  mutable EventsQuery events_query_{};
};

std::string CliBinary() {
  // The CLI is built next to this test binary (bin/).
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "replica-autoscaler")
      .string();
}

class ApiItest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = testing::FreePort();
    config::ApiConfig api;
    api.host = "127.0.0.1";
    api.port = port_;
    api.listen = "127.0.0.1:" + std::to_string(port_);
    std::vector<ResolvedToken> tokens = {
        {"ops", config::TokenRole::kAdmin, Secret(kAdminToken)},
        {"grafana", config::TokenRole::kReadOnly, Secret(kReaderToken)}};
    server_ = std::make_unique<ApiServer>(api, tokens, control_, metrics_.registry(), clock_);
    auto started = server_->Start();
    ASSERT_TRUE(started.has_value()) << started.error().message;
    base_ = "http://127.0.0.1:" + std::to_string(port_);
    dir_ = std::make_unique<testing::TempDir>("ra-api");
    admin_file_ = WriteToken("admin", kAdminToken);
    reader_file_ = WriteToken("reader", kReaderToken);
  }
  void TearDown() override { server_->Stop(); }

  std::string WriteToken(const std::string& name, const std::string& token) {
    const std::string path = dir_->path() + "/" + name + ".token";
    std::ofstream(path) << token << "\n";
    return path;
  }

  HttpResponse Send(const std::string& method, const std::string& path, const std::string& token,
                    const std::string& body = "") {
    HttpRequest request;
    request.method = method;
    request.url = base_ + path;
    if (!token.empty()) request.headers["Authorization"] = "Bearer " + token;
    if (!body.empty()) {
      request.headers["Content-Type"] = "application/json";
      request.body = body;
    }
    request.timeout = 10s;
    auto response = transport_.Send(request);
    EXPECT_TRUE(response.has_value()) << (response ? "" : response.error().message);
    return response ? *response : HttpResponse{};
  }

  static json Body(const HttpResponse& r) { return json::parse(r.body, nullptr, false); }

  // The error message of a JSON error answer with `status` and `code`.
  static std::string ErrorMessage(const HttpResponse& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    const json body = Body(r);
    EXPECT_TRUE(body.is_object()) << r.body;
    if (!body.is_object() || !body.contains("error")) return "";
    EXPECT_EQ(body["error"]["code"], code) << r.body;
    return body["error"].value("message", "");
  }

  testing::CommandResult Cli(std::vector<std::string> args, Duration timeout = 30s) {
    std::vector<std::string> argv = {CliBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv, timeout);
  }

  FakeClock clock_{kT0};
  FakeControl control_{clock_};
  ServiceMetrics metrics_;
  std::unique_ptr<ApiServer> server_;
  CurlHttpTransport transport_;
  int port_ = 0;
  std::string base_;
  std::unique_ptr<testing::TempDir> dir_;
  std::string admin_file_;
  std::string reader_file_;
};

TEST_F(ApiItest, NoTokenOrAWrongTokenIs401WithABearerChallenge) {
  HttpResponse none = Send("GET", "/v1/clusters", "");
  EXPECT_NE(ErrorMessage(none, 401, "unauthorized").find("bearer token"), std::string::npos);
  EXPECT_EQ(none.Header("WWW-Authenticate").rfind("Bearer", 0), 0u)
      << none.Header("WWW-Authenticate");

  HttpResponse wrong = Send("GET", "/v1/clusters", "not-a-real-token-4711");
  ErrorMessage(wrong, 401, "unauthorized");
  EXPECT_NE(wrong.Header("WWW-Authenticate").find("invalid_token"), std::string::npos);

  // A prefix of a real token is not a token.
  ErrorMessage(Send("GET", "/v1/clusters", kAdminToken.substr(0, 10)), 401, "unauthorized");

  HttpRequest basic;
  basic.url = base_ + "/v1/clusters";
  basic.headers["Authorization"] = "Basic YWRtaW46YWRtaW4=";
  auto answer = transport_.Send(basic);
  ASSERT_TRUE(answer.has_value());
  EXPECT_NE(ErrorMessage(*answer, 401, "unauthorized").find("Bearer"), std::string::npos);
  // Unknown routes under /v1 say nothing to an anonymous caller either.
  ErrorMessage(Send("GET", "/v1/secret-route", ""), 401, "unauthorized");
  EXPECT_TRUE(control_.Calls().empty());
}

TEST_F(ApiItest, ReadOnlyTokenReadsButCannotChange) {
  HttpResponse list = Send("GET", "/v1/clusters", kReaderToken);
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.Header("Content-Type").rfind("application/json", 0), 0u);
  const json clusters = Body(list)["clusters"];
  ASSERT_EQ(clusters.size(), 2u);
  EXPECT_EQ(clusters[0]["name"], "frozen");
  EXPECT_EQ(clusters[1]["name"], "main");

  HttpResponse one = Send("GET", "/v1/clusters/frozen", kReaderToken);
  ASSERT_EQ(one.status, 200);
  const json status = Body(one);
  EXPECT_EQ(status["replicas"][0]["phase"], "serving");
  EXPECT_EQ(status["replicas"][0]["age_seconds"], 3600);  // measured at the fake clock's now
  EXPECT_EQ(status["last_decision"]["policies"][0]["verdict"], "hold");

  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"PUT", "/v1/clusters/main/override"},
           {"DELETE", "/v1/clusters/main/override"},
           {"POST", "/v1/clusters/main/pause"},
           {"POST", "/v1/clusters/main/resume"},
           {"POST", "/v1/clusters/main/snapshot"},
           {"POST", "/v1/clusters/main/replicas/r1/replace"}}) {
    HttpResponse r = Send(method, path, kReaderToken, method == "PUT" ? R"({"replicas":3})" : "");
    EXPECT_NE(ErrorMessage(r, 403, "forbidden").find("read-only"), std::string::npos)
        << method << " " << path;
  }
  EXPECT_TRUE(control_.Calls().empty());
}

TEST_F(ApiItest, AdminTokenSetsAndClearsAnOverridePausesResumesAndSnapshots) {
  HttpResponse put = Send("PUT", "/v1/clusters/main/override", kAdminToken,
                          R"({"replicas": 3, "ttl": "30m", "reason": "black friday"})");
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(Body(put)["manual_override"]["replicas"], 3);
  EXPECT_EQ(Body(put)["manual_override"]["expires_at"], FormatTime(kT0 + 30min));
  auto manual = control_.LastOverride();
  ASSERT_TRUE(manual.has_value());
  EXPECT_EQ(manual->replicas, 3);
  EXPECT_EQ(manual->reason, "black friday");
  ASSERT_TRUE(manual->expires_at.has_value());
  EXPECT_EQ(*manual->expires_at, kT0 + 30min);

  // Without a ttl the override lasts until cleared.
  ASSERT_EQ(Send("PUT", "/v1/clusters/main/override", kAdminToken, R"({"replicas": 2})").status,
            200);
  EXPECT_FALSE(control_.LastOverride()->expires_at.has_value());

  EXPECT_EQ(Send("DELETE", "/v1/clusters/main/override", kAdminToken).status, 200);
  HttpResponse paused =
      Send("POST", "/v1/clusters/main/pause", kAdminToken, R"({"reason":"maintenance"})");
  EXPECT_EQ(paused.status, 200);
  EXPECT_EQ(Body(paused)["paused"], true);
  EXPECT_EQ(Send("POST", "/v1/clusters/main/pause", kAdminToken).status, 200);  // no body
  EXPECT_EQ(Send("POST", "/v1/clusters/main/resume", kAdminToken).status, 200);
  // A change the loop could not save is refused with 503, never a 200 for nothing in force.
  HttpResponse unsaved =
      Send("POST", "/v1/clusters/main/pause", kAdminToken, R"({"reason":"unsaved"})");
  EXPECT_NE(ErrorMessage(unsaved, 503, "unavailable").find("not in force"), std::string::npos);
  EXPECT_EQ(Send("POST", "/v1/clusters/main/snapshot", kAdminToken).status, 202);
  // The control loop says one is being made already.
  HttpResponse again = Send("POST", "/v1/clusters/main/snapshot", kAdminToken);
  EXPECT_NE(ErrorMessage(again, 409, "conflict").find("already"), std::string::npos);

  HttpResponse replace =
      Send("POST", "/v1/clusters/main/replicas/main-replica-1/replace", kAdminToken);
  EXPECT_EQ(replace.status, 202) << replace.body;
  EXPECT_EQ(Body(replace)["replica"], "main-replica-1");
  EXPECT_EQ(Send("GET", "/v1/clusters/main/replicas/main-replica-1/replace", kAdminToken).status,
            405);
  EXPECT_EQ(Send("POST", "/v1/clusters/nope/replicas/x/replace", kAdminToken).status, 404);

  EXPECT_EQ(control_.Calls(),
            (std::vector<std::string>{"SetOverride main 3 black friday", "SetOverride main 2 ",
                                      "Clear main", "Pause main maintenance", "Pause main",
                                      "Resume main", "Snapshot main", "Snapshot main",
                                      "Replace main main-replica-1", "Replace nope x"}));
}

TEST_F(ApiItest, BadBodiesAre400NamingTheField) {
  struct Case {
    std::string body;
    std::string message_has;
  };
  const std::vector<Case> cases = {
      {"", "body: expected a JSON object"},
      {"{\"replicas\": 3", "not valid JSON"},
      {"[3]", "expected a JSON object, got an array"},
      {"3", "expected a JSON object, got an integer"},
      {R"({"replicas": 3, "replica_count": 4})", "unknown field 'replica_count'"},
      {R"({"replicas": "three"})", "replicas: expected an integer, got a string"},
      {R"({"replicas": 2.5})", "replicas: expected an integer, got a number"},
      {R"({"replicas": null})", "replicas: expected an integer, got null"},
      {R"({"replicas": -1})", "replicas: must be from 0"},
      {R"({"replicas": 99999999999})", "replicas: must be from 0"},
      {R"({"ttl": "30m"})", "replicas: required"},
      {R"({"replicas": 3, "ttl": "5 minutes"})", "ttl: "},
      {R"({"replicas": 3, "ttl": 300})", "ttl: expected a string, got an integer"},
      {R"({"replicas": 3, "ttl": "0s"})", "ttl: must be longer than 0s"},
      {R"({"replicas": 3, "reason": ["x"]})", "reason: expected a string, got an array"},
  };
  for (const Case& c : cases) {
    HttpResponse r = Send("PUT", "/v1/clusters/main/override", kAdminToken, c.body);
    EXPECT_NE(ErrorMessage(r, 400, "bad_request").find(c.message_has), std::string::npos)
        << "body: " << c.body << "\nanswer: " << r.body;
  }
  // Routes that take no fields refuse any.
  HttpResponse r = Send("POST", "/v1/clusters/main/resume", kAdminToken, R"({"force": true})");
  EXPECT_NE(ErrorMessage(r, 400, "bad_request").find("unknown field 'force'"), std::string::npos);
  // Bounds come from the control loop, and its message says them.
  r = Send("PUT", "/v1/clusters/main/override", kAdminToken, R"({"replicas": 9})");
  EXPECT_NE(ErrorMessage(r, 400, "bad_request").find("max_replicas 5"), std::string::npos);
  // Invalid UTF-8 in a string is refused as JSON, not a crash.
  r = Send("PUT", "/v1/clusters/main/override", kAdminToken,
           "{\"replicas\":1,\"reason\":\"\xff\"}");
  ErrorMessage(r, 400, "bad_request");
  EXPECT_EQ(control_.Calls(), std::vector<std::string>{"SetOverride main 9 "});
}

TEST_F(ApiItest, UnknownClustersAndRoutesAre404WrongMethodsAre405) {
  EXPECT_NE(
      ErrorMessage(Send("GET", "/v1/clusters/nope", kReaderToken), 404, "not_found").find("nope"),
      std::string::npos);
  ErrorMessage(Send("PUT", "/v1/clusters/nope/override", kAdminToken, R"({"replicas":1})"), 404,
               "not_found");
  ErrorMessage(Send("POST", "/v1/clusters/nope/pause", kAdminToken), 404, "not_found");
  ErrorMessage(Send("GET", "/v1/clusters/main/nothing", kReaderToken), 404, "not_found");
  ErrorMessage(Send("GET", "/v2/clusters", kReaderToken), 404, "not_found");
  ErrorMessage(Send("GET", "/", ""), 404, "not_found");

  HttpResponse get_override = Send("GET", "/v1/clusters/main/override", kAdminToken);
  ErrorMessage(get_override, 405, "method_not_allowed");
  EXPECT_EQ(get_override.Header("Allow"), "PUT, DELETE");
  ErrorMessage(Send("POST", "/v1/clusters", kAdminToken), 405, "method_not_allowed");
  ErrorMessage(Send("PATCH", "/v1/clusters/main", kAdminToken), 405, "method_not_allowed");
  ErrorMessage(Send("POST", "/metrics", ""), 405, "method_not_allowed");
  // A malformed percent-encoding in the path is refused before any route.
  EXPECT_EQ(Send("GET", "/v1/clusters/%zz", kReaderToken).status, 400);
  // Path segments are decoded after splitting: an encoded '/' stays inside the name.
  EXPECT_NE(
      ErrorMessage(Send("GET", "/v1/clusters/a%2Fb", kReaderToken), 404, "not_found").find("'a/b'"),
      std::string::npos);
}

TEST_F(ApiItest, BodiesOver64KiBAre413) {
  const std::string big = R"({"replicas": 3, "reason": ")" + std::string(100 * 1024, 'x') + "\"}";
  ErrorMessage(Send("PUT", "/v1/clusters/main/override", kAdminToken, big), 413,
               "payload_too_large");
  // Just under the limit is read and judged on its content.
  const std::string fits = R"({"replicas": 3, "reason": ")" + std::string(60 * 1024, 'x') + "\"}";
  EXPECT_EQ(Send("PUT", "/v1/clusters/main/override", kAdminToken, fits).status, 200);
}

TEST_F(ApiItest, MetricsNeedNoTokenAndUseTheTextFormat) {
  Plan plan;
  ReplicaView r;
  r.name = "main-replica-aa11";
  r.phase = Phase::kServing;
  r.lag_bytes = 4096;
  plan.replicas = {r};
  policies::Decision d;
  d.desired = 2;
  metrics_.RecordCycle("main", d, 1, plan);
  HttpResponse m = Send("GET", "/metrics", "");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.Header("Content-Type").rfind("text/plain; version=0.0.4", 0), 0u)
      << m.Header("Content-Type");
  EXPECT_NE(m.body.find("replica_autoscaler_desired_replicas{cluster=\"main\"} 2"),
            std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("replica_autoscaler_replicas{cluster=\"main\",phase=\"ready\"} 1"),
            std::string::npos);
  EXPECT_NE(m.body.find("# TYPE replica_autoscaler_decisions_total counter"), std::string::npos);
}

TEST_F(ApiItest, HealthzFollowsTheLastSuccessfulCycleAndReadyzTheReadyFlag) {
  HttpResponse never = Send("GET", "/healthz", "");
  EXPECT_EQ(never.status, 503);
  EXPECT_EQ(Body(never)["status"], "failing");

  control_.SetHealth(
      Health{.ready = false, .last_successful_cycle = kT0 - 20s, .max_cycle_age = 2min});
  HttpResponse ok = Send("GET", "/healthz", "");
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(Body(ok)["status"], "ok");
  EXPECT_EQ(Body(ok)["last_successful_cycle"], FormatTime(kT0 - 20s));
  EXPECT_EQ(Send("GET", "/readyz", "").status, 503);

  clock_.Advance(5min);
  HttpResponse stale = Send("GET", "/healthz", "");
  EXPECT_EQ(stale.status, 503);
  EXPECT_NE(Body(stale)["reason"].get<std::string>().find("5m20s ago"), std::string::npos)
      << stale.body;

  control_.SetHealth(
      Health{.ready = true, .last_successful_cycle = clock_.Now() - 1s, .max_cycle_age = 2min});
  EXPECT_EQ(Send("GET", "/healthz", "").status, 200);
  HttpResponse ready = Send("GET", "/readyz", "");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(Body(ready)["status"], "ready");
}

TEST_F(ApiItest, EventsFilterAndCheckTheirParameters) {
  HttpResponse all = Send("GET", "/v1/events", kReaderToken);
  ASSERT_EQ(all.status, 200);
  EXPECT_EQ(Body(all)["events"].size(), 5u);
  EXPECT_EQ(control_.LastEventsQuery().limit, 100u);

  HttpResponse some = Send("GET", "/v1/events?cluster=main&limit=2", kReaderToken);
  ASSERT_EQ(some.status, 200) << some.body;
  const json events = Body(some)["events"];
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["message"], "event 2");
  EXPECT_EQ(events[1]["message"], "event 4");
  EXPECT_EQ(events[1]["at"], FormatTime(kT0 + 4s));

  HttpResponse since = Send("GET", "/v1/events?since=" + FormatTime(kT0 + 3s), kReaderToken);
  ASSERT_EQ(since.status, 200) << since.body;
  EXPECT_EQ(Body(since)["events"].size(), 2u);
  EXPECT_EQ(control_.LastEventsQuery().since, kT0 + 3s);

  EXPECT_NE(ErrorMessage(Send("GET", "/v1/events?limit=0", kReaderToken), 400, "bad_request")
                .find("limit"),
            std::string::npos);
  ErrorMessage(Send("GET", "/v1/events?limit=ten", kReaderToken), 400, "bad_request");
  EXPECT_NE(
      ErrorMessage(Send("GET", "/v1/events?since=yesterday", kReaderToken), 400, "bad_request")
          .find("since"),
      std::string::npos);
  EXPECT_NE(ErrorMessage(Send("GET", "/v1/events?clsuter=main", kReaderToken), 400, "bad_request")
                .find("clsuter"),
            std::string::npos);
  ErrorMessage(Send("GET", "/v1/events?cluster=nope", kReaderToken), 404, "not_found");
}

TEST_F(ApiItest, GarbageOnTheSocketDoesNotStopTheServer) {
  for (const std::string& garbage : {std::string("GARBAGE\r\n\r\n"),
                                     std::string("GET /v1/clusters HTTP/1.1\r\nHost: x\r\n"
                                                 "Content-Length: -5\r\n\r\n"),
                                     std::string(5000, '\0')}) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    (void)!write(fd, garbage.data(), garbage.size());
    shutdown(fd, SHUT_WR);
    timeval tv{.tv_sec = 1, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
  }
  EXPECT_EQ(Send("GET", "/v1/clusters/main", kReaderToken).status, 200);
}

TEST_F(ApiItest, RequestsAreLoggedWithoutTokens) {
  std::string logged;
  log::CaptureForTesting(&logged);
  Send("GET", "/v1/clusters/main", "not-a-real-token-4711");
  Send("PUT", "/v1/clusters/main/override", kAdminToken, R"({"replicas":2,"reason":"load test"})");
  server_->Stop();  // waits for the requests' log lines
  log::CaptureForTesting(nullptr);
  log::Init(log::Level::kInfo);
  EXPECT_NE(logged.find("\"path\":\"/v1/clusters/main\""), std::string::npos) << logged;
  EXPECT_NE(logged.find("\"status\":401"), std::string::npos) << logged;
  EXPECT_NE(logged.find("\"by\":\"ops\""), std::string::npos) << logged;
  EXPECT_EQ(logged.find("not-a-real-token"), std::string::npos) << logged;
  EXPECT_EQ(logged.find(kAdminToken), std::string::npos);
}

TEST_F(ApiItest, StartFailsClearlyWhenThePortIsTaken) {
  config::ApiConfig api;
  api.host = "127.0.0.1";
  api.port = port_;
  ApiServer second(api, {}, control_, metrics_.registry(), clock_);
  auto started = second.Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().kind, ErrorKind::kConfig);
  EXPECT_NE(started.error().message.find(std::to_string(port_)), std::string::npos);
  // The failed attempt leaves the running server alone.
  EXPECT_EQ(Send("GET", "/v1/clusters/main", kReaderToken).status, 200);

  // A port held by someone else (here a plain listening socket).
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  api.port = ntohs(addr.sin_port);
  ApiServer third(api, {}, control_, metrics_.registry(), clock_);
  auto refused = third.Start();
  close(fd);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("in use"), std::string::npos) << refused.error().message;
}

// ---------------------------------------------------------------------------------------------
// the CLI binary against the same server

TEST_F(ApiItest, CliStatusJsonAndTable) {
  auto json_out = Cli({"status", "main", "--json", "--api", base_, "--token-file", reader_file_});
  ASSERT_EQ(json_out.status, 0) << json_out.output;
  const json parsed = json::parse(json_out.output, nullptr, false);
  ASSERT_TRUE(parsed.is_object()) << json_out.output;
  EXPECT_EQ(parsed["name"], "main");
  EXPECT_EQ(parsed["replicas"][0]["name"], "main-replica-aa11");

  auto table = Cli({"status", "--api", base_ + "/", "--token-file", reader_file_});
  ASSERT_EQ(table.status, 0) << table.output;
  EXPECT_NE(table.output.find("frozen: desired 1, active 1, serving 1"), std::string::npos)
      << table.output;
  EXPECT_NE(table.output.find("NAME"), std::string::npos);
  EXPECT_NE(table.output.find("frozen-replica-aa11  serving  az1"), std::string::npos)
      << table.output;
  EXPECT_NE(table.output.find("4.0KiB/0.2s"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("sessions  hold"), std::string::npos) << table.output;

  auto missing = Cli({"status", "nope", "--api", base_, "--token-file", reader_file_});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("replica-autoscaler: 404: no cluster named 'nope'"),
            std::string::npos)
      << missing.output;

  auto anonymous = Cli({"status", "--api", base_});
  EXPECT_EQ(anonymous.status, 1);
  EXPECT_NE(anonymous.output.find("401"), std::string::npos) << anonymous.output;
  EXPECT_NE(anonymous.output.find("RA_TOKEN"), std::string::npos) << anonymous.output;
}

TEST_F(ApiItest, CliScaleNeedsAnAdminTokenAndSaysSo) {
  auto denied = Cli({"scale", "frozen", "3", "--api", base_, "--token-file", reader_file_});
  EXPECT_EQ(denied.status, 1);
  EXPECT_NE(denied.output.find("replica-autoscaler: 403: this token is read-only"),
            std::string::npos)
      << denied.output;

  auto ok = Cli({"scale", "frozen", "3", "--ttl", "1h", "--reason", "sale", "--api", base_,
                 "--token-file", admin_file_});
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("frozen: manual count 3 until " + FormatTime(kT0 + 1h)),
            std::string::npos)
      << ok.output;
  EXPECT_EQ(control_.Calls(), std::vector<std::string>{"SetOverride frozen 3 sale"});

  auto too_many = Cli({"scale", "frozen", "9", "--api", base_, "--token-file", admin_file_});
  EXPECT_EQ(too_many.status, 1);
  EXPECT_NE(too_many.output.find("400: replicas: 9 is outside"), std::string::npos)
      << too_many.output;

  auto cleared = Cli({"scale", "frozen", "--clear", "--api", base_, "--token-file", admin_file_});
  EXPECT_EQ(cleared.status, 0) << cleared.output;

  // Usage errors exit 2 and send nothing.
  EXPECT_EQ(Cli({"scale", "frozen", "--api", base_, "--token-file", admin_file_}).status, 2);
  EXPECT_EQ(
      Cli({"scale", "frozen", "3", "--ttl", "soon", "--api", base_, "--token-file", admin_file_})
          .status,
      2);
  EXPECT_EQ(Cli({"scale", "frozen", "3", "--clear", "--api", base_}).status, 2);
  EXPECT_EQ(Cli({"scale", "frozen", "-1", "--api", base_}).status, 2);
  EXPECT_EQ(Cli({"scale", "frozen", "3", "--timeout", "1m", "--api", base_}).status, 2);
  EXPECT_EQ(control_.Calls().size(), 3u);
}

TEST_F(ApiItest, CliScaleWaitFollowsPhasesUntilServing) {
  auto waited = Cli({"scale", "main", "2", "--wait", "--timeout", "30s", "--api", base_,
                     "--token-file", admin_file_},
                    60s);
  EXPECT_EQ(waited.status, 0) << waited.output;
  EXPECT_NE(waited.output.find("main-replica-n1  volume_creating -> server_building"),
            std::string::npos)
      << waited.output;
  EXPECT_NE(waited.output.find("main-replica-n1  admitting -> serving"), std::string::npos)
      << waited.output;
  EXPECT_NE(waited.output.find("done: 2 active, all serving"), std::string::npos) << waited.output;
}

TEST_F(ApiItest, CliScaleWaitTimesOut) {
  // "frozen" never builds anything: desired 2 is never met.
  auto waited = Cli({"scale", "frozen", "2", "--wait", "--timeout", "2s", "--api", base_,
                     "--token-file", admin_file_},
                    30s);
  EXPECT_EQ(waited.status, 1) << waited.output;
  EXPECT_NE(waited.output.find("timed out after 2s"), std::string::npos) << waited.output;
}

TEST_F(ApiItest, CliPauseResumeSnapshotAndEvents) {
  EXPECT_EQ(
      Cli({"pause", "main", "--reason", "upgrade", "--api", base_, "--token-file", admin_file_})
          .status,
      0);
  EXPECT_EQ(Cli({"resume", "main", "--api", base_, "--token-file", admin_file_}).status, 0);
  EXPECT_EQ(Cli({"snapshot", "main", "--api", base_, "--token-file", admin_file_}).status, 0);
  auto conflict = Cli({"snapshot", "main", "--api", base_, "--token-file", admin_file_});
  EXPECT_EQ(conflict.status, 1);
  EXPECT_NE(conflict.output.find("409"), std::string::npos) << conflict.output;
  EXPECT_EQ(control_.Calls(), (std::vector<std::string>{"Pause main upgrade", "Resume main",
                                                        "Snapshot main", "Snapshot main"}));

  auto events = Cli({"events", "--cluster", "main", "--limit", "2", "--api", base_, "--token-file",
                     reader_file_});
  EXPECT_EQ(events.status, 0) << events.output;
  EXPECT_NE(events.output.find(FormatTime(kT0 + 4s) + "  main  -  decision: event 4"),
            std::string::npos)
      << events.output;
  EXPECT_EQ(events.output.find("event 0"), std::string::npos) << events.output;
}

TEST_F(ApiItest, CliSaysWhereItLookedWhenNothingListens) {
  server_->Stop();
  auto refused = Cli({"status", "--api", base_, "--token-file", reader_file_});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.output.find("cannot reach the API at " + base_), std::string::npos)
      << refused.output;
  EXPECT_NE(refused.output.find("serve"), std::string::npos) << refused.output;
}

}  // namespace
}  // namespace ra::autoscaler
