// DataPlaneClient and DataPlaneLoadBalancer against recorded Data Plane API answers (bodies as
// the API writes them), through FakeHttpTransport: no network, no sleeping (a FakeClock moves).
#include "haproxy_dataplane/dataplane_client.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <mutex>

#include "core/log.h"
#include "haproxy_dataplane/dataplane_load_balancer.h"
#include "testing/fake_http_transport.h"
#include "testing/fake_sleeper.h"

namespace ra::haproxy {
namespace {

using namespace std::chrono_literals;
using ra::testing::FakeHttpTransport;

constexpr char kBase[] = "http://127.0.0.1:5555";

// Answers by "METHOD URL-without-base" (exact, query included), in order per route; the last
// answer of a route repeats. Unrouted requests fail the test with a 599.
class Routes {
 public:
  explicit Routes(FakeHttpTransport& transport) {
    transport.SetResponder([this](const HttpRequest& r) -> Result<HttpResponse> {
      std::lock_guard lock(mu_);
      const std::string key = r.method + " " + r.url.substr(std::string(kBase).size());
      auto it = routes_.find(key);
      if (it == routes_.end() || it->second.empty()) {
        ADD_FAILURE() << "unexpected request: " << key;
        return HttpResponse{599, {}, "{}"};
      }
      Result<HttpResponse> answer = it->second.front();
      if (it->second.size() > 1) it->second.pop_front();
      return answer;
    });
  }
  void On(const std::string& key, int status, std::string body, HttpHeaders headers = {}) {
    std::lock_guard lock(mu_);
    routes_[key].push_back(HttpResponse{status, std::move(headers), std::move(body)});
  }
  void OnError(const std::string& key, Error error) {
    std::lock_guard lock(mu_);
    routes_[key].push_back(tl::unexpected<Error>(std::move(error)));
  }
  void Clear(const std::string& key) {
    std::lock_guard lock(mu_);
    routes_.erase(key);
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::deque<Result<HttpResponse>>> routes_;
};

DataPlaneOptions Options(ApiVersion version) {
  DataPlaneOptions options;
  options.url = std::string(kBase) + "/";
  options.api_version = version;
  options.username = "admin";
  options.password = Secret("dataplane-pass-123");
  options.backend = "replicas";
  options.reload_timeout = 10s;
  options.reload_poll_interval = 1s;
  options.first_check_timeout = 5s;
  options.first_check_poll_interval = 1s;
  return options;
}

struct Fixture {
  explicit Fixture(ApiVersion version, DataPlaneOptions options = {})
      : routes(transport),
        client(options.url.empty() ? Options(version) : std::move(options), transport, clock,
               sleeper) {}
  std::vector<std::string> Calls() const {
    std::vector<std::string> out;
    for (const HttpRequest& r : transport.requests()) {
      out.push_back(r.method + " " + r.url.substr(std::string(kBase).size()));
    }
    return out;
  }
  FakeHttpTransport transport;
  Routes routes;
  FakeClock clock{TimePoint{} + 1000h};
  ra::testing::FakeSleeper sleeper{clock};
  DataPlaneClient client;
};

// Bodies recorded from the API (v3 and v2 shapes).
constexpr char kServersV3[] =
    R"([{"name":"r1","address":"127.0.9.1","port":5432,"check":"enabled","maintenance":"enabled"}])";
constexpr char kServersV2[] =
    R"({"_version":7,"data":[{"name":"r1","address":"127.0.9.1","port":5432,"check":"enabled"}]})";
constexpr char kMismatch[] =
    R"({"code":409,"message":"version mismatch: version in configuration file is 8, given version is 7"})";
constexpr char kStatsR1[] =
    R"({"runtimeAPI":"/run/haproxy/admin.sock","stats":[{"type":"server","name":"r1","backend_name":"replicas","stats":{"scur":3,"stot":40,"status":"UP 1/2","check_status":"* L4TOUT","weight":1}}]})";

TEST(DataplaneClient, V3PathsBasicAuthAndBody) {
  Fixture f(ApiVersion::kV3);
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "7\n");
  f.routes.On("POST /v3/services/haproxy/configuration/backends/replicas/servers?version=7", 202,
              R"({"name":"r2","address":"127.0.9.2","port":5432,"check":"enabled"})",
              {{"Reload-ID", "2024-05-01-3"}});
  ServerConfig server{"r2", "127.0.9.2", 5432, true, true, 500, 1, 2, std::nullopt};
  auto created = f.client.CreateServer(server);
  ASSERT_TRUE(created.has_value()) << created.error().message;
  ASSERT_TRUE(created->reload_id.has_value());
  EXPECT_EQ(*created->reload_id, "2024-05-01-3");

  const auto requests = f.transport.requests();
  ASSERT_EQ(requests.size(), 2u);
  // "admin:dataplane-pass-123" in base64.
  EXPECT_EQ(requests[1].headers.at("Authorization"), "Basic YWRtaW46ZGF0YXBsYW5lLXBhc3MtMTIz");
  EXPECT_EQ(requests[1].headers.at("Content-Type"), "application/json");
  auto body = nlohmann::json::parse(requests[1].body);
  EXPECT_EQ(body["name"], "r2");
  EXPECT_EQ(body["address"], "127.0.9.2");
  EXPECT_EQ(body["port"], 5432);
  EXPECT_EQ(body["check"], "enabled");
  EXPECT_EQ(body["maintenance"], "enabled");
  EXPECT_EQ(body["inter"], 500);
  EXPECT_EQ(body["rise"], 1);
  EXPECT_EQ(body["fall"], 2);
  EXPECT_FALSE(body.contains("weight"));
}

TEST(DataplaneClient, V2PathsNameTheBackendInTheQuery) {
  Fixture f(ApiVersion::kV2);
  f.routes.On("GET /v2/services/haproxy/configuration/servers?backend=replicas", 200, kServersV2,
              {{"Configuration-Version", "7"}});
  f.routes.On("GET /v2/services/haproxy/configuration/version", 200, "7");
  f.routes.On("DELETE /v2/services/haproxy/configuration/servers/r1?backend=replicas&version=7",
              204, "");
  f.routes.On(
      "PUT /v2/services/haproxy/runtime/servers/r1?backend=replicas", 200,
      R"({"name":"r1","address":"127.0.9.1","port":5432,"id":"1","admin_state":"drain","operational_state":"up"})");
  auto servers = f.client.GetServers();
  ASSERT_TRUE(servers.has_value()) << servers.error().message;
  EXPECT_EQ(servers->version, 7);
  ASSERT_EQ(servers->servers.size(), 1u);
  EXPECT_EQ(servers->servers[0].name, "r1");
  EXPECT_TRUE(servers->servers[0].check);
  EXPECT_FALSE(servers->servers[0].maintenance);
  auto deleted = f.client.DeleteServer("r1");
  ASSERT_TRUE(deleted.has_value()) << deleted.error().message;
  EXPECT_FALSE(deleted->reload_id.has_value());
  auto drained = f.client.SetAdminState("r1", AdminState::kDrain);
  ASSERT_TRUE(drained.has_value()) << drained.error().message;
  EXPECT_EQ(drained->admin_state, AdminState::kDrain);
  EXPECT_EQ(f.transport.requests().back().body, R"({"admin_state":"drain"})");
}

TEST(DataplaneClient, DetectsTheApiVersionOnce) {
  Fixture f(ApiVersion::kAuto);
  f.routes.On("GET /v3/info", 404, R"({"code":404,"message":"path /v3/info was not found"})");
  f.routes.On("GET /v2/info", 200, R"({"api":{"version":"v2.9.1 4d10854c"},"system":{}})");
  f.routes.On("GET /v2/services/haproxy/configuration/version", 200, "3");
  auto v = f.client.GetConfigurationVersion();
  ASSERT_TRUE(v.has_value()) << v.error().message;
  EXPECT_EQ(*v, 3);
  ASSERT_TRUE(f.client.GetConfigurationVersion().has_value());
  EXPECT_EQ(f.Calls(),
            (std::vector<std::string>{"GET /v3/info", "GET /v2/info",
                                      "GET /v2/services/haproxy/configuration/version",
                                      "GET /v2/services/haproxy/configuration/version"}));
}

TEST(DataplaneClient, DetectionFailsClearlyWhenNeitherVersionAnswers) {
  Fixture f(ApiVersion::kAuto);
  f.routes.On("GET /v3/info", 404, "not found");
  f.routes.On("GET /v2/info", 404, "not found");
  auto v = f.client.Version();
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().kind, ErrorKind::kConfig);
  EXPECT_NE(v.error().message.find("neither /v3/info nor /v2/info"), std::string::npos);
}

TEST(DataplaneClient, RetriesAVersionMismatchAfterRereadingTheVersion) {
  Fixture f(ApiVersion::kV3);
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "7");
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "8");
  f.routes.On("POST /v3/services/haproxy/configuration/backends/replicas/servers?version=7", 409,
              kMismatch);
  f.routes.On("POST /v3/services/haproxy/configuration/backends/replicas/servers?version=8", 202,
              "{}", {{"Reload-ID", "2024-05-01-4"}});
  auto created = f.client.CreateServer({"r2", "127.0.9.2", 5432});
  ASSERT_TRUE(created.has_value()) << created.error().message;
  EXPECT_EQ(created->reload_id, "2024-05-01-4");
  EXPECT_EQ(f.Calls().size(), 4u);
}

TEST(DataplaneClient, GivesUpOnVersionMismatchAfterTheConfiguredRetries) {
  DataPlaneOptions options = Options(ApiVersion::kV3);
  options.version_conflict_retries = 2;
  Fixture f(ApiVersion::kV3, options);
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "7");
  f.routes.On("POST /v3/services/haproxy/configuration/backends/replicas/servers?version=7", 409,
              kMismatch);
  auto created = f.client.CreateServer({"r2", "127.0.9.2", 5432});
  ASSERT_FALSE(created.has_value());
  EXPECT_EQ(created.error().kind, ErrorKind::kConflict);
  EXPECT_NE(created.error().message.find("version mismatch"), std::string::npos);
  EXPECT_EQ(f.Calls().size(), 6u);  // 3 attempts, each a version read and a write
}

TEST(DataplaneClient, AlreadyExistsIsAConflictNotRetried) {
  Fixture f(ApiVersion::kV3);
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "7");
  f.routes.On(
      "POST /v3/services/haproxy/configuration/backends/replicas/servers?version=7", 409,
      R"({"code":409,"message":"object already exists: server r1 already exists in backend replicas"})");
  auto created = f.client.CreateServer({"r1", "127.0.9.1", 5432});
  ASSERT_FALSE(created.has_value());
  EXPECT_EQ(created.error().kind, ErrorKind::kConflict);
  EXPECT_NE(created.error().message.find("already exists"), std::string::npos);
  EXPECT_EQ(f.Calls().size(), 2u);
}

TEST(DataplaneClient, AuthFailureNamesNoSecret) {
  log::ResetForTesting();
  Fixture f(ApiVersion::kV3);
  f.routes.On("GET /v3/services/haproxy/configuration/version", 401,
              R"({"code":401,"message":"invalid username/password"})",
              {{"WWW-Authenticate", "Basic realm=\"API\""}});
  auto v = f.client.GetConfigurationVersion();
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().kind, ErrorKind::kAuth);
  EXPECT_NE(v.error().message.find("401"), std::string::npos);
  EXPECT_EQ(v.error().message.find("dataplane-pass-123"), std::string::npos);
  EXPECT_EQ(v.error().message.find("YWRtaW46"), std::string::npos);
}

TEST(DataplaneClient, RetriesIdempotentReadsOnTransientFailures) {
  Fixture f(ApiVersion::kV3);
  f.routes.OnError("GET /v3/services/haproxy/configuration/version",
                   Error{ErrorKind::kTransient, "connection refused"});
  f.routes.On("GET /v3/services/haproxy/configuration/version", 503,
              R"({"code":503,"message":"busy"})");
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "9");
  auto v = f.client.GetConfigurationVersion();
  ASSERT_TRUE(v.has_value()) << v.error().message;
  EXPECT_EQ(*v, 9);
  EXPECT_EQ(f.sleeper.slept, 200ms + 400ms);  // backoff doubles
}

TEST(DataplaneClient, TransactionFailureDeletesTheTransaction) {
  Fixture f(ApiVersion::kV3);
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "7");
  f.routes.On("POST /v3/services/haproxy/transactions?version=7", 201,
              R"({"_version":7,"id":"tx-1","status":"in_progress"})");
  f.routes.On("DELETE /v3/services/haproxy/transactions/tx-1", 204, "");
  auto done = f.client.RunTransaction(
      [](const std::string&) -> Result<void> { return Fail(ErrorKind::kBadRequest, "nope"); });
  ASSERT_FALSE(done.has_value());
  EXPECT_EQ(done.error().message, "nope");
  EXPECT_EQ(f.Calls().back(), "DELETE /v3/services/haproxy/transactions/tx-1");
}

TEST(DataplaneClient, OutdatedTransactionIsDeletedAndRedone) {
  Fixture f(ApiVersion::kV3);
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "7");
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "8");
  f.routes.On("POST /v3/services/haproxy/transactions?version=7", 201,
              R"({"_version":7,"id":"tx-1","status":"in_progress"})");
  f.routes.On("POST /v3/services/haproxy/transactions?version=8", 201,
              R"({"_version":8,"id":"tx-2","status":"in_progress"})");
  f.routes.On("PUT /v3/services/haproxy/transactions/tx-1", 406,
              R"({"code":406,"message":"transaction tx-1 is outdated and cannot be committed"})");
  f.routes.On("PUT /v3/services/haproxy/transactions/tx-2", 202,
              R"({"_version":8,"id":"tx-2","status":"success"})", {{"Reload-ID", "2024-05-01-9"}});
  f.routes.On("DELETE /v3/services/haproxy/transactions/tx-1", 204, "");
  f.routes.On(
      "DELETE /v3/services/haproxy/configuration/backends/replicas/servers/r1?transaction_id=tx-1",
      202, "");
  f.routes.On(
      "DELETE /v3/services/haproxy/configuration/backends/replicas/servers/r1?transaction_id=tx-2",
      202, "");
  int runs = 0;
  auto done = f.client.RunTransaction([&](const std::string& tx) -> Result<void> {
    ++runs;
    return f.client.DeleteServerIn(tx, "r1");
  });
  ASSERT_TRUE(done.has_value()) << done.error().message;
  EXPECT_EQ(done->reload_id, "2024-05-01-9");
  EXPECT_EQ(runs, 2);
  const auto calls = f.Calls();
  EXPECT_NE(std::find(calls.begin(), calls.end(), "DELETE /v3/services/haproxy/transactions/tx-1"),
            calls.end());
}

TEST(DataplaneClient, TooManyTransactionsIsTransientAndLeavesNothingOpen) {
  Fixture f(ApiVersion::kV3);
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "7");
  f.routes.On(
      "POST /v3/services/haproxy/transactions?version=7", 429,
      R"({"code":429,"message":"cannot start a new transaction, reached the maximum amount of 20 active transactions available"})");
  bool ran = false;
  auto done = f.client.RunTransaction([&](const std::string&) -> Result<void> {
    ran = true;
    return {};
  });
  ASSERT_FALSE(done.has_value());
  EXPECT_EQ(done.error().kind, ErrorKind::kTransient);
  EXPECT_NE(done.error().message.find("maximum amount of 20"), std::string::npos);
  EXPECT_FALSE(ran);
  EXPECT_EQ(f.Calls().size(), 2u);  // the transaction start is not retried blindly
}

TEST(DataplaneClient, WaitsForAReloadOnTheInjectedClock) {
  Fixture f(ApiVersion::kV3);
  f.routes.On("GET /v3/services/haproxy/reloads/2024-05-01-3", 200,
              R"({"id":"2024-05-01-3","status":"in_progress"})");
  f.routes.On("GET /v3/services/haproxy/reloads/2024-05-01-3", 200,
              R"({"id":"2024-05-01-3","status":"in_progress"})");
  f.routes.On("GET /v3/services/haproxy/reloads/2024-05-01-3", 200,
              R"({"id":"2024-05-01-3","status":"succeeded","reload_timestamp":1714557600})");
  auto done = f.client.WaitForReload("2024-05-01-3");
  ASSERT_TRUE(done.has_value()) << done.error().message;
  EXPECT_EQ(f.sleeper.slept, 2s);
}

TEST(DataplaneClient, ReportsAFailedReloadWithHaproxysAnswer) {
  Fixture f(ApiVersion::kV3);
  f.routes.On(
      "GET /v3/services/haproxy/reloads/2024-05-01-5", 200,
      R"({"id":"2024-05-01-5","status":"failed","response":"[ALERT] config : parsing [/etc/haproxy/haproxy.cfg:40]"})");
  auto done = f.client.WaitForReload("2024-05-01-5");
  ASSERT_FALSE(done.has_value());
  EXPECT_EQ(done.error().kind, ErrorKind::kTransient);
  EXPECT_NE(done.error().message.find("haproxy.cfg:40"), std::string::npos);
}

TEST(DataplaneClient, ReloadWaitIsBounded) {
  Fixture f(ApiVersion::kV3);
  f.routes.On("GET /v3/services/haproxy/reloads/2024-05-01-6", 200,
              R"({"id":"2024-05-01-6","status":"in_progress"})");
  auto done = f.client.WaitForReload("2024-05-01-6");
  ASSERT_FALSE(done.has_value());
  EXPECT_EQ(done.error().kind, ErrorKind::kTimeout);
  EXPECT_EQ(f.sleeper.slept, 10s);
}

// /v2 answers a list of collections (one per HAProxy process); /v3 one collection.
TEST(DataplaneClient, ReadsStatsRowsOfTheBackendOnly) {
  Fixture f(ApiVersion::kV2);
  f.routes.On("GET /v2/services/haproxy/stats/native?type=server&parent=replicas", 200,
              R"json([{"runtimeAPI":"/run/haproxy/admin.sock","stats":[
           {"type":"server","name":"r1","backend_name":"replicas","stats":{"scur":3,"stot":40,"status":"UP 1/2","check_status":"* L4TOUT"}},
           {"type":"server","name":"x","backend_name":"other","stats":{"scur":9,"status":"UP"}},
           {"type":"server","name":"r2","backend_name":"replicas","stats":{"status":"MAINT (via replicas/r1)"}}]}])json");
  auto stats = f.client.GetServerStats();
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  ASSERT_EQ(stats->size(), 2u);
  EXPECT_EQ((*stats)[0].name, "r1");
  EXPECT_EQ((*stats)[0].scur, 3);
  EXPECT_EQ((*stats)[0].stot, 40);
  EXPECT_EQ((*stats)[0].status, "UP 1/2");
  EXPECT_EQ((*stats)[0].check_status, "* L4TOUT");
  EXPECT_EQ((*stats)[1].status, "MAINT (via replicas/r1)");
  EXPECT_EQ((*stats)[1].scur, 0);
}

TEST(DataplaneClient, MalformedAnswersAreParseErrors) {
  Fixture f(ApiVersion::kV3);
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "<html>oops</html>");
  f.routes.On("GET /v3/services/haproxy/configuration/backends/replicas/servers", 200,
              R"([{"address":"no-name"}])");
  f.routes.On("GET /v3/services/haproxy/runtime/backends/replicas/servers", 200,
              R"([{"name":"r1","admin_state":"sleeping"}])");
  auto v = f.client.GetConfigurationVersion();
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().kind, ErrorKind::kParse);
  auto servers = f.client.GetServers();
  ASSERT_FALSE(servers.has_value());
  EXPECT_EQ(servers.error().kind, ErrorKind::kParse);
  auto runtime = f.client.GetRuntimeServers();
  ASSERT_FALSE(runtime.has_value());
  EXPECT_EQ(runtime.error().kind, ErrorKind::kParse);
  EXPECT_NE(runtime.error().message.find("sleeping"), std::string::npos);
}

TEST(DataplaneOptions, ValidateNamesEveryProblem) {
  DataPlaneOptions options;
  options.url = "ftp://x";
  options.backend = "bad name";
  options.request_timeout = 0ms;
  options.check_rise = 0;
  const auto problems = options.Validate();
  auto has = [&](const std::string& prefix) {
    return std::any_of(problems.begin(), problems.end(),
                       [&](const std::string& p) { return p.starts_with(prefix); });
  };
  EXPECT_TRUE(has("url:"));
  EXPECT_TRUE(has("backend:"));
  EXPECT_TRUE(has("username:"));
  EXPECT_TRUE(has("password:"));
  EXPECT_TRUE(has("request_timeout:"));
  EXPECT_TRUE(has("check_rise:"));
  EXPECT_TRUE(Options(ApiVersion::kV3).Validate().empty());
  EXPECT_FALSE(ParseApiVersion("v4").has_value());
  EXPECT_EQ(*ParseApiVersion("v2"), ApiVersion::kV2);
}

// --- DataPlaneLoadBalancer -------------------------------------------------------------------

constexpr char kRuntimePath[] = "GET /v3/services/haproxy/runtime/backends/replicas/servers";
constexpr char kServersPath[] = "GET /v3/services/haproxy/configuration/backends/replicas/servers";
constexpr char kStatsR2[] =
    "GET /v3/services/haproxy/stats/native?type=server&parent=replicas&name=r2";

std::string Stats(const std::string& name, const std::string& status, const std::string& check,
                  int scur) {
  return R"({"runtimeAPI":"/run/haproxy/admin.sock","stats":[{"type":"server","name":")" + name +
         R"(","backend_name":"replicas","stats":{"scur":)" + std::to_string(scur) +
         R"(,"status":")" + status + R"(","check_status":")" + check + R"("}}]})";
}

std::string Runtime(const std::string& name, const std::string& admin) {
  return R"({"name":")" + name + R"(","address":"127.0.9.2","port":5432,"admin_state":")" + admin +
         R"(","operational_state":"up"})";
}

TEST(DataplaneLoadBalancer, AddsInMaintThenAdmitsThroughDrainAfterTheFirstCheck) {
  Fixture f(ApiVersion::kV3);
  DataPlaneLoadBalancer lb(f.client);
  f.routes.On(kServersPath, 200, kServersV3, {{"Configuration-Version", "7"}});
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "7");
  f.routes.On("POST /v3/services/haproxy/configuration/backends/replicas/servers?version=7", 202,
              "{}", {{"Reload-ID", "2024-05-01-1"}});
  f.routes.On("GET /v3/services/haproxy/reloads/2024-05-01-1", 200,
              R"({"id":"2024-05-01-1","status":"succeeded"})");
  f.routes.On(kRuntimePath, 200, "[" + Runtime("r2", "maint") + "]");
  f.routes.On("PUT /v3/services/haproxy/runtime/backends/replicas/servers/r2", 200,
              Runtime("r2", "drain"));
  f.routes.On(kStatsR2, 200, Stats("r2", "DRAIN", "INI", 0));
  f.routes.On(kStatsR2, 200, Stats("r2", "DRAIN", "* INI", 0));
  f.routes.On(kStatsR2, 200, Stats("r2", "DOWN", "L4CON", 0));
  f.routes.On("PUT /v3/services/haproxy/configuration/backends/replicas/servers/r2?version=7", 202,
              "{}", {{"Reload-ID", "2024-05-01-2"}});
  f.routes.On("GET /v3/services/haproxy/reloads/2024-05-01-2", 200,
              R"({"id":"2024-05-01-2","status":"succeeded"})");

  auto ensured = lb.EnsureMember({"r2", "127.0.9.2", 5432});
  ASSERT_TRUE(ensured.has_value()) << ensured.error().message;
  const auto calls = f.Calls();
  const std::vector<std::string> want = {
      kServersPath,
      "GET /v3/services/haproxy/configuration/version",
      "POST /v3/services/haproxy/configuration/backends/replicas/servers?version=7",
      "GET /v3/services/haproxy/reloads/2024-05-01-1",
      kRuntimePath,
      "PUT /v3/services/haproxy/runtime/backends/replicas/servers/r2",
      kStatsR2,
      kStatsR2,
      kStatsR2,
      "PUT /v3/services/haproxy/runtime/backends/replicas/servers/r2",
      "GET /v3/services/haproxy/configuration/version",
      "PUT /v3/services/haproxy/configuration/backends/replicas/servers/r2?version=7",
      "GET /v3/services/haproxy/reloads/2024-05-01-2",
  };
  EXPECT_EQ(calls, want);
  const auto requests = f.transport.requests();
  EXPECT_EQ(nlohmann::json::parse(requests[2].body)["maintenance"], "enabled");
  EXPECT_EQ(requests[5].body, R"({"admin_state":"drain"})");
  EXPECT_EQ(requests[9].body, R"({"admin_state":"ready"})");
  // Admitted: `disabled` leaves the configuration, the rest stays.
  auto final_body = nlohmann::json::parse(requests[11].body);
  EXPECT_FALSE(final_body.contains("maintenance"));
  EXPECT_EQ(final_body["check"], "enabled");
  EXPECT_EQ(final_body["address"], "127.0.9.2");
  EXPECT_EQ(f.sleeper.slept, 2s);
}

TEST(DataplaneLoadBalancer, EnsureIsANoOpForAReadyServer) {
  Fixture f(ApiVersion::kV3);
  DataPlaneLoadBalancer lb(f.client);
  f.routes.On(kServersPath, 200,
              R"([{"name":"r2","address":"127.0.9.2","port":5432,"check":"enabled"}])");
  f.routes.On(kRuntimePath, 200, "[" + Runtime("r2", "ready") + "]");
  auto ensured = lb.EnsureMember({"r2", "127.0.9.2", 5432});
  ASSERT_TRUE(ensured.has_value()) << ensured.error().message;
  EXPECT_EQ(f.Calls(), (std::vector<std::string>{kServersPath, kRuntimePath}));
}

TEST(DataplaneLoadBalancer, FirstCheckWaitIsBoundedAndLeavesTheServerDrained) {
  Fixture f(ApiVersion::kV3);
  DataPlaneLoadBalancer lb(f.client);
  f.routes.On(kServersPath, 200,
              R"([{"name":"r2","address":"127.0.9.2","port":5432,"check":"enabled"}])");
  f.routes.On(kRuntimePath, 200, "[" + Runtime("r2", "drain") + "]");
  f.routes.On(kStatsR2, 200, Stats("r2", "DRAIN", "INI", 0));
  auto ensured = lb.EnsureMember({"r2", "127.0.9.2", 5432});
  ASSERT_FALSE(ensured.has_value());
  EXPECT_EQ(ensured.error().kind, ErrorKind::kTimeout);
  for (const std::string& call : f.Calls()) EXPECT_FALSE(call.starts_with("PUT")) << call;
}

TEST(DataplaneLoadBalancer, DrainLostToAnotherReloadIsAskedAgainWhileWaitingForTheFirstCheck) {
  Fixture f(ApiVersion::kV3);
  DataPlaneLoadBalancer lb(f.client);
  const std::string put = "PUT /v3/services/haproxy/runtime/backends/replicas/servers/r2";
  f.routes.On(kServersPath, 200,
              R"([{"name":"r2","address":"127.0.9.2","port":5432,"check":"enabled"}])");
  f.routes.On(kRuntimePath, 200, "[" + Runtime("r2", "maint") + "]");
  f.routes.On(put, 200, Runtime("r2", "drain"));
  // A reload of another server's change brought the server back in maint: no check runs.
  f.routes.On(kStatsR2, 200, Stats("r2", "MAINT", "INI", 0));
  f.routes.On(kStatsR2, 200, Stats("r2", "DRAIN", "L7OK", 0));
  auto ensured = lb.EnsureMember({"r2", "127.0.9.2", 5432});
  ASSERT_TRUE(ensured.has_value()) << ensured.error().message;
  EXPECT_EQ(f.Calls(), (std::vector<std::string>{kServersPath, kRuntimePath, put, kStatsR2, put,
                                                 kStatsR2, put}));
  const auto requests = f.transport.requests();
  ASSERT_EQ(requests.size(), 7u);
  EXPECT_EQ(requests[2].body, R"({"admin_state":"drain"})");
  EXPECT_EQ(requests[4].body, R"({"admin_state":"drain"})");
  EXPECT_EQ(requests[6].body, R"({"admin_state":"ready"})");
  EXPECT_EQ(f.sleeper.slept, 1s) << "one poll, not the 5 s timeout";
}

TEST(DataplaneLoadBalancer, ReplacesAServerWhoseAddressChangedInOneTransaction) {
  Fixture f(ApiVersion::kV3);
  DataPlaneLoadBalancer lb(f.client);
  f.routes.On(kServersPath, 200,
              R"([{"name":"r2","address":"127.0.8.8","port":5432,"check":"enabled"}])");
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "7");
  f.routes.On("POST /v3/services/haproxy/transactions?version=7", 201,
              R"({"_version":7,"id":"tx-9","status":"in_progress"})");
  f.routes.On(
      "DELETE /v3/services/haproxy/configuration/backends/replicas/servers/r2?transaction_id=tx-9",
      202, "");
  f.routes.On(
      "POST /v3/services/haproxy/configuration/backends/replicas/servers?transaction_id=tx-9", 202,
      "{}");
  f.routes.On("PUT /v3/services/haproxy/transactions/tx-9", 202,
              R"({"_version":7,"id":"tx-9","status":"success"})", {{"Reload-ID", "2024-05-01-2"}});
  f.routes.On("GET /v3/services/haproxy/reloads/2024-05-01-2", 200,
              R"({"id":"2024-05-01-2","status":"succeeded"})");
  f.routes.On(kRuntimePath, 200, "[" + Runtime("r2", "ready") + "]");
  f.routes.On("PUT /v3/services/haproxy/configuration/backends/replicas/servers/r2?version=7", 202,
              "{}", {{"Reload-ID", "2024-05-01-3"}});
  f.routes.On("GET /v3/services/haproxy/reloads/2024-05-01-3", 200,
              R"({"id":"2024-05-01-3","status":"succeeded"})");
  auto ensured = lb.EnsureMember({"r2", "127.0.9.2", 5432});
  ASSERT_TRUE(ensured.has_value()) << ensured.error().message;
  auto created = nlohmann::json::parse(f.transport.requests()[4].body);
  EXPECT_EQ(created["address"], "127.0.9.2");
}

TEST(DataplaneLoadBalancer, RemoveOnlyDrainedAndIdleServers) {
  Fixture f(ApiVersion::kV3);
  DataPlaneLoadBalancer lb(f.client);
  f.routes.On(kServersPath, 200,
              R"([{"name":"r2","address":"127.0.9.2","port":5432,"check":"enabled"}])");
  // Ready: refused.
  f.routes.On(kRuntimePath, 200, "[" + Runtime("r2", "ready") + "]");
  auto ready = lb.Remove("r2", lb::RemoveMode::kWhenIdle);
  ASSERT_FALSE(ready.has_value());
  EXPECT_EQ(ready.error().kind, ErrorKind::kConflict);

  // Drained with sessions left: an outcome, nothing deleted.
  f.routes.Clear(kRuntimePath);
  f.routes.On(kRuntimePath, 200, "[" + Runtime("r2", "drain") + "]");
  f.routes.On(kStatsR2, 200, Stats("r2", "DRAIN", "L7OK", 2));
  auto busy = lb.Remove("r2", lb::RemoveMode::kWhenIdle);
  ASSERT_TRUE(busy.has_value()) << busy.error().message;
  EXPECT_EQ(busy->status, lb::RemoveOutcome::Status::kStillHasConnections);
  EXPECT_EQ(busy->sessions, 2);
  for (const std::string& call : f.Calls()) EXPECT_FALSE(call.starts_with("DELETE")) << call;

  // The drain timeout passed: removed anyway.
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "7");
  f.routes.On("DELETE /v3/services/haproxy/configuration/backends/replicas/servers/r2?version=7",
              202, "", {{"Reload-ID", "2024-05-01-7"}});
  f.routes.On("GET /v3/services/haproxy/reloads/2024-05-01-7", 200,
              R"({"id":"2024-05-01-7","status":"succeeded"})");
  auto forced = lb.Remove("r2", lb::RemoveMode::kEvenWithSessions);
  ASSERT_TRUE(forced.has_value()) << forced.error().message;
  EXPECT_EQ(forced->status, lb::RemoveOutcome::Status::kRemoved);
  EXPECT_EQ(forced->sessions, 2);

  // Absent: nothing to do.
  f.routes.Clear(kServersPath);
  f.routes.On(kServersPath, 200, "[]");
  auto absent = lb.Remove("r2", lb::RemoveMode::kWhenIdle);
  ASSERT_TRUE(absent.has_value()) << absent.error().message;
  EXPECT_EQ(absent->status, lb::RemoveOutcome::Status::kAbsent);
}

TEST(DataplaneLoadBalancer, ListsServersWithParsedStateAndSessions) {
  Fixture f(ApiVersion::kV3);
  DataPlaneLoadBalancer lb(f.client);
  f.routes.On(kServersPath, 200,
              R"([{"name":"r1","address":"127.0.9.1","port":5432,"check":"enabled"},
          {"name":"r3","address":"127.0.9.3","port":5432,"check":"enabled","maintenance":"enabled"}])");
  f.routes.On(
      kRuntimePath, 200,
      R"([{"name":"r1","address":"127.0.9.1","port":5432,"admin_state":"ready","operational_state":"up"}])");
  f.routes.On("GET /v3/services/haproxy/stats/native?type=server&parent=replicas", 200, kStatsR1);
  auto servers = lb.ListServers();
  ASSERT_TRUE(servers.has_value()) << servers.error().message;
  ASSERT_EQ(servers->size(), 2u);
  const ServerView& r1 = (*servers)[0];
  EXPECT_TRUE(r1.loaded);
  EXPECT_EQ(r1.admin_state, AdminState::kReady);
  EXPECT_EQ(r1.status.health, Health::kUp);
  EXPECT_EQ(r1.status.transition_step, 1);
  EXPECT_TRUE(r1.check.in_progress);
  EXPECT_FALSE(r1.check.passed);
  EXPECT_FALSE(r1.Serving());  // the last check timed out
  EXPECT_EQ(r1.sessions, 3);
  const ServerView& r3 = (*servers)[1];
  EXPECT_FALSE(r3.loaded);  // configured, not yet reloaded
  EXPECT_EQ(r3.admin_state, AdminState::kMaint);
  EXPECT_FALSE(r3.Serving());

  // The same servers as the service sees them.
  const lb::Member m1 = ToMember(r1);
  EXPECT_EQ(m1.admin, lb::AdminState::kReady);
  EXPECT_EQ(m1.health, lb::Health::kUp);
  EXPECT_FALSE(m1.serving);
  EXPECT_EQ(m1.sessions, 3);
  EXPECT_EQ(m1.total_sessions, 40);
  EXPECT_EQ(m1.detail, "UP 1/2, check L4TOUT");
  const lb::Member m3 = ToMember(r3);
  EXPECT_EQ(m3.admin, lb::AdminState::kMaint);
  EXPECT_FALSE(m3.serving);
  EXPECT_EQ(m3.detail, "no status");
}

TEST(DataplaneLoadBalancer, MapsDrainToDrainingAndServingToTheNeutralMember) {
  ServerView view;
  view.name = "r1";
  view.address = "127.0.9.1";
  view.port = 5432;
  view.loaded = true;
  view.admin_state = AdminState::kReady;
  view.status = *ParseServerStatus("UP");
  view.check = ParseCheckStatus("L7OK");
  lb::Member member = ToMember(view);
  EXPECT_EQ(member.admin, lb::AdminState::kReady);
  EXPECT_EQ(member.health, lb::Health::kUp);
  EXPECT_TRUE(member.serving);
  EXPECT_EQ(member.detail, "UP, check L7OK");

  view.admin_state = AdminState::kDrain;
  view.status = *ParseServerStatus("DRAIN");
  member = ToMember(view);
  EXPECT_EQ(member.admin, lb::AdminState::kDraining);
  EXPECT_FALSE(member.serving);

  view.admin_state = AdminState::kReady;
  view.status = *ParseServerStatus("DOWN");
  view.check = ParseCheckStatus("L4CON");
  member = ToMember(view);
  EXPECT_EQ(member.health, lb::Health::kDown);
  EXPECT_FALSE(member.serving);
  EXPECT_EQ(member.detail, "DOWN, check L4CON");
}

TEST(DataplaneLoadBalancer, RejectsBadSpecsBeforeAnyRequest) {
  Fixture f(ApiVersion::kV3);
  DataPlaneLoadBalancer lb(f.client);
  for (const lb::MemberSpec& spec :
       {lb::MemberSpec{"", "127.0.0.1", 5432}, lb::MemberSpec{"a b", "127.0.0.1", 5432},
        lb::MemberSpec{"r1", "", 5432}, lb::MemberSpec{"r1", "127.0.0.1", 0},
        lb::MemberSpec{"r1", "127.0.0.1", 70000}}) {
    auto got = lb.EnsureMember(spec);
    ASSERT_FALSE(got.has_value()) << spec.name;
    EXPECT_EQ(got.error().kind, ErrorKind::kBadRequest);
  }
  EXPECT_TRUE(f.transport.requests().empty());
}

// A proxy or an API build that echoes request headers in its error text must not carry the
// Basic credential into an error message: the encoded form is a secret like the password.
TEST(DataplaneClient, EchoedBasicCredentialIsRedactedFromErrors) {
  log::ResetForTesting();
  Fixture f(ApiVersion::kV3);
  f.routes.On(
      "GET /v3/services/haproxy/configuration/version", 400,
      R"({"code":400,"message":"bad request, Authorization: Basic YWRtaW46ZGF0YXBsYW5lLXBhc3MtMTIz"})");
  auto v = f.client.GetConfigurationVersion();
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().kind, ErrorKind::kBadRequest);
  EXPECT_EQ(v.error().message.find("YWRtaW46ZGF0YXBsYW5lLXBhc3MtMTIz"), std::string::npos)
      << v.error().message;
}

// Reload answers with fields of an unexpected type are a typed error, never an exception.
TEST(DataplaneClient, OddReloadAnswersAreParseErrorsNotExceptions) {
  for (const char* body : {R"({"id":"x","status":7})", R"({"id":"x","status":null})",
                           R"({"id":"x","status":"failed","response":null})",
                           R"({"id":"x","status":"failed","response":{"a":1}})"}) {
    Fixture f(ApiVersion::kV3);
    f.routes.On("GET /v3/services/haproxy/reloads/x", 200, body);
    Result<void> done;
    EXPECT_NO_THROW(done = f.client.WaitForReload("x")) << body;
    EXPECT_FALSE(done.has_value()) << body;
  }
}

// A non-JSON answer is cut to an excerpt; a password straddling the cut must still be redacted.
TEST(DataplaneClient, APasswordAcrossTheExcerptCutIsStillRedacted) {
  log::ResetForTesting();
  Fixture f(ApiVersion::kV3);
  f.routes.On("GET /v3/services/haproxy/configuration/version", 502,
              std::string(186, 'x') + "dataplane-pass-123" + std::string(100, 'y'));
  auto v = f.client.GetConfigurationVersion();
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().message.find("dataplane-pass"), std::string::npos) << v.error().message;
}

// An API that says "already exists" for a server its listing does not show (another backend's
// server of that name in an API build that checks globally, a stale read) must give an error,
// not an EnsureServer that calls itself until the stack runs out.
TEST(DataplaneLoadBalancer, AlreadyExistsButNotListedIsAConflictNotEndlessRecursion) {
  Fixture f(ApiVersion::kV3);
  DataPlaneLoadBalancer lb(f.client);
  f.routes.On(kServersPath, 200, "[]", {{"Configuration-Version", "7"}});
  f.routes.On("GET /v3/services/haproxy/configuration/version", 200, "7");
  f.routes.On(
      "POST /v3/services/haproxy/configuration/backends/replicas/servers?version=7", 409,
      R"({"code":409,"message":"object already exists: server r2 already exists in backend replicas"})");
  auto ensured = lb.EnsureMember({"r2", "127.0.9.2", 5432});
  ASSERT_FALSE(ensured.has_value());
  EXPECT_EQ(ensured.error().kind, ErrorKind::kConflict);
  EXPECT_LE(f.Calls().size(), 10u);
}

}  // namespace
}  // namespace ra::haproxy
