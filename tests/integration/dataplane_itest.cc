// DataPlaneLoadBalancer against the Data Plane API double (tests/sandbox/dataplane) over a real
// HAProxy 2.6 in master-worker mode, with real PostgreSQL servers behind it: traffic is proven
// with psql through HAProxy's frontend. Every test runs against /v2 and /v3.
//
// RA_DATAPLANE_CAPTURE_DIR, when set, makes the double record every request and answer there
// (the conformance check validates them against the official specifications).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/http_transport.h"
#include "haproxy_dataplane/dataplane_client.h"
#include "haproxy_dataplane/dataplane_load_balancer.h"
#include "tests/support/process.h"

namespace ra::haproxy {
namespace {

using namespace std::chrono_literals;
using ra::testing::ChildProcess;
using ra::testing::CommandResult;
using ra::testing::RunCommand;
using ra::testing::TempDir;

constexpr char kUser[] = "admin";
constexpr char kPassword[] = "double-secret-pw";
constexpr char kBackend[] = "replicas";

std::string Source(const std::string& path) { return std::string(RA_SOURCE_DIR) + "/" + path; }

// A loopback address of our own for each PostgreSQL server, so parallel runs do not collide.
std::string PgHost(int n) { return fmt::format("127.77.{}.{}", getpid() % 250 + 1, n); }

/// The double and its HAProxy, in a temporary directory; stopped by the destructor.
class DataPlaneDouble {
 public:
  static Result<std::unique_ptr<DataPlaneDouble>> Start(const std::string& api) {
    auto d = std::unique_ptr<DataPlaneDouble>(new DataPlaneDouble());
    d->api_ = api;
    d->frontend_port_ = ra::testing::FreePort();
    d->api_port_ = ra::testing::FreePort();
    const std::string dir = d->dir_.path();
    std::ofstream(dir + "/haproxy.cfg") << fmt::format(
        "global\n"
        "    stats socket {0}/admin.sock mode 600 level admin\n"
        "    server-state-file {0}/server-state\n"
        "defaults\n"
        "    mode tcp\n"
        "    timeout connect 2s\n"
        "    timeout client 60s\n"
        "    timeout server 60s\n"
        "    load-server-state-from-file global\n"
        "frontend postgres\n"
        "    bind 127.0.0.1:{1}\n"
        "    default_backend {2}\n"
        "backend {2}\n"
        "    balance leastconn\n"
        "    option pgsql-check user postgres\n"
        "    default-server inter 200ms rise 1 fall 1\n",
        dir, d->frontend_port_, kBackend);
    std::ofstream(dir + "/password") << kPassword;
    std::vector<std::string> argv = {"/usr/bin/python3",
                                     Source("tests/sandbox/dataplane/dataplane_double.py"),
                                     "--dir",
                                     dir,
                                     "--listen",
                                     fmt::format("127.0.0.1:{}", d->api_port_),
                                     "--api",
                                     api,
                                     "--user",
                                     kUser,
                                     "--password-file",
                                     dir + "/password",
                                     "--reload-delay-ms",
                                     "50"};
    if (const char* capture = std::getenv("RA_DATAPLANE_CAPTURE_DIR"); capture && *capture) {
      const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
      std::string name = fmt::format("{}.{}", info->test_suite_name(), info->name());
      for (char& c : name) {
        if (c == '/') c = '_';
      }
      argv.insert(argv.end(), {"--capture", fmt::format("{}/{}.jsonl", capture, name)});
    }
    auto child = ChildProcess::Start({argv, {}, dir, dir + "/double.log"});
    if (!child) return Fail(child.error());
    d->process_ = std::move(*child);
    if (auto up = ra::testing::WaitForTcp("127.0.0.1", d->api_port_, 20s, &d->process_); !up) {
      return Fail(ErrorKind::kInternal, up.error().message + "\n" + d->LogTail());
    }
    HttpOptions http;
    http.proxy_from_env = false;
    http.total_timeout = 30s;
    d->http_ = std::make_unique<CurlHttpTransport>(http);
    return d;
  }

  ~DataPlaneDouble() { process_.Stop(10s); }

  std::string url() const { return fmt::format("http://127.0.0.1:{}", api_port_); }
  int frontend_port() const { return frontend_port_; }
  const std::string& api() const { return api_; }
  HttpTransport& http() { return *http_; }
  std::string dir() const { return dir_.path(); }
  std::string LogTail() const {
    std::string log = ra::testing::ReadFile(dir_.path() + "/double.log") +
                      ra::testing::ReadFile(dir_.path() + "/haproxy.log");
    return log.size() > 3000 ? log.substr(log.size() - 3000) : log;
  }

  /// A raw request to the API (for what the client never sends itself), with Basic auth.
  HttpResponse Raw(const std::string& method, const std::string& path, const std::string& body = "",
                   bool auth = true) {
    HttpRequest request;
    request.method = method;
    request.url = url() + path;
    if (auth) request.headers["Authorization"] = "Basic YWRtaW46ZG91YmxlLXNlY3JldC1wdw==";
    if (!body.empty()) {
      request.headers["Content-Type"] = "application/json";
      request.body = body;
    }
    auto answer = http_->Send(request);
    if (!answer) {
      ADD_FAILURE() << method << " " << path << ": " << answer.error().message;
      return {};
    }
    return *answer;
  }
  nlohmann::json Control(const nlohmann::json& knobs = nullptr) {
    HttpResponse r =
        knobs.is_null() ? Raw("GET", "/_control") : Raw("POST", "/_control", knobs.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return nlohmann::json::parse(r.body, nullptr, false);
  }
  std::string Prefix() const { return "/" + api_; }

 private:
  DataPlaneDouble() : dir_("ra-dataplane") {}
  std::string api_;
  TempDir dir_;
  int frontend_port_ = 0;
  int api_port_ = 0;
  ChildProcess process_;
  std::unique_ptr<CurlHttpTransport> http_;
};

/// PostgreSQL servers started with tests/sandbox/pgctl.py; stopped by the destructor.
class Postgres {
 public:
  Postgres() : dir_("ra-dataplane-pg") {}
  ~Postgres() {
    for (const std::string& d : started_) {
      RunCommand({"/usr/bin/python3", Source("tests/sandbox/pgctl.py"), "stop", "--dir", d,
                  "--mode", "immediate"},
                 60s);
    }
  }
  Result<void> Primary(const std::string& name, const std::string& host) {
    return Run({"init-primary", "--dir", Dir(name), "--host", host, "--port", "5432"}, name);
  }
  Result<void> Standby(const std::string& name, const std::string& host,
                       const std::string& primary) {
    return Run({"init-standby", "--dir", Dir(name), "--host", host, "--port", "5432",
                "--primary-host", primary, "--primary-port", "5432"},
               name);
  }

 private:
  std::string Dir(const std::string& name) const { return dir_.path() + "/" + name; }
  Result<void> Run(std::vector<std::string> args, const std::string& name) {
    args.insert(args.begin(), {"/usr/bin/python3", Source("tests/sandbox/pgctl.py")});
    CommandResult r = RunCommand(args, 90s);
    if (r.status != 0) return Fail(ErrorKind::kInternal, "pgctl: " + r.output);
    started_.push_back(Dir(name));
    return {};
  }
  TempDir dir_;
  std::vector<std::string> started_;
};

/// psql through HAProxy's frontend: the server address that answered, or the failure.
Result<std::string> PsqlServerAddr(int port) {
  CommandResult r =
      RunCommand({"psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", std::to_string(port), "-U",
                  "postgres", "-d", "postgres", "-c", "select host(inet_server_addr())"},
                 15s);
  if (r.status != 0) return Fail(ErrorKind::kTransient, "psql: " + r.output);
  std::string out = r.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

class DataplaneItest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto started = DataPlaneDouble::Start(GetParam());
    ASSERT_TRUE(started.has_value()) << started.error().message;
    double_ = std::move(*started);
    DataPlaneOptions options;
    options.url = double_->url();
    // v2 is detected, v3 named: both paths of the options get exercised.
    options.api_version = GetParam() == "v2" ? ApiVersion::kAuto : ApiVersion::kV3;
    options.username = kUser;
    options.password = Secret(kPassword);
    options.backend = kBackend;
    options.request_timeout = 10s;
    options.reload_timeout = 20s;
    options.reload_poll_interval = 50ms;
    options.first_check_timeout = 10s;
    options.first_check_poll_interval = 50ms;
    ASSERT_TRUE(options.Validate().empty());
    client_ = std::make_unique<DataPlaneClient>(options, double_->http(), clock_);
    lb_ = std::make_unique<DataPlaneLoadBalancer>(*client_);
  }

  void TearDown() override {
    if (HasFailure() && double_) std::cerr << "double and HAProxy log:\n" << double_->LogTail();
  }

  Result<ServerView> Find(const std::string& name) {
    auto servers = lb_->ListServers();
    if (!servers) return Fail(servers.error());
    for (const ServerView& s : *servers) {
      if (s.name == name) return s;
    }
    return Fail(ErrorKind::kNotFound, "no server " + name);
  }

  // Polls (bounded) until `pred` holds for server `name`; the last state for failure messages.
  bool WaitFor(const std::string& name, const std::function<bool(const ServerView&)>& pred,
               Duration timeout, std::string* last) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto s = Find(name);
      if (s && pred(*s)) return true;
      *last = s ? fmt::format("status={} check={} admin={} sessions={}", s->status.raw,
                              s->check.raw, ToString(s->admin_state), s->sessions)
                : s.error().message;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  int64_t OpenTransactions() {
    auto open = client_->ListTransactions("in_progress");
    EXPECT_TRUE(open.has_value()) << open.error().message;
    return open ? static_cast<int64_t>(open->size()) : -1;
  }

  SystemClock clock_;
  std::unique_ptr<DataPlaneDouble> double_;
  std::unique_ptr<DataPlaneClient> client_;
  std::unique_ptr<DataPlaneLoadBalancer> lb_;
};

INSTANTIATE_TEST_SUITE_P(Api, DataplaneItest, ::testing::Values("v2", "v3"),
                         [](const auto& info) { return info.param; });

TEST_P(DataplaneItest, ServesDrainsKeepsDrainAcrossReloadAndRemoves) {
  Postgres pg;
  const std::string a = PgHost(1), b = PgHost(2);
  ASSERT_TRUE(pg.Primary("a", a).has_value());
  const int fe = double_->frontend_port();

  // b is added while its PostgreSQL does not run yet: it must not become UP.
  ASSERT_TRUE(lb_->EnsureMember({"b", b, 5432}).has_value());
  auto b_state = Find("b");
  ASSERT_TRUE(b_state.has_value()) << b_state.error().message;
  EXPECT_EQ(b_state->admin_state, AdminState::kReady);
  EXPECT_EQ(b_state->status.health, Health::kDown) << b_state->status.raw;
  EXPECT_TRUE(b_state->check.completed);
  EXPECT_FALSE(b_state->Serving());
  EXPECT_FALSE(PsqlServerAddr(fe).has_value()) << "nothing should serve yet";

  // Its PostgreSQL (a streaming standby of a) starts: b becomes UP and psql reaches it.
  ASSERT_TRUE(pg.Standby("b", b, a).has_value());
  std::string last;
  ASSERT_TRUE(WaitFor(
      "b", [](const ServerView& s) { return s.Serving(); }, 15s, &last))
      << last;
  auto via_haproxy = PsqlServerAddr(fe);
  ASSERT_TRUE(via_haproxy.has_value()) << via_haproxy.error().message;
  EXPECT_EQ(*via_haproxy, b);

  // a joins; ensuring it again writes nothing.
  ASSERT_TRUE(lb_->EnsureMember({"a", a, 5432}).has_value());
  auto version = client_->GetConfigurationVersion();
  ASSERT_TRUE(version.has_value());
  ASSERT_TRUE(lb_->EnsureMember({"a", a, 5432}).has_value());
  EXPECT_EQ(*client_->GetConfigurationVersion(), *version);
  ASSERT_TRUE(WaitFor(
      "a", [](const ServerView& s) { return s.Serving(); }, 15s, &last))
      << last;

  // A long session through HAProxy; find which server holds it.
  TempDir work("ra-dataplane-psql");
  auto session = ChildProcess::Start(
      {{"psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", std::to_string(fe), "-U", "postgres",
        "-d", "postgres", "-c", "select host(inet_server_addr()), pg_sleep(8), 'still-alive'"},
       {},
       "",
       work.path() + "/session.out"});
  ASSERT_TRUE(session.has_value());
  std::string busy;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (busy.empty() && std::chrono::steady_clock::now() < deadline) {
    for (const char* name : {"a", "b"}) {
      auto n = lb_->SessionCount(name);
      ASSERT_TRUE(n.has_value()) << n.error().message;
      if (*n > 0) busy = name;
    }
    if (busy.empty()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_FALSE(busy.empty()) << "the session never showed in HAProxy's stats";
  const std::string other = busy == "a" ? "b" : "a";
  const std::string other_addr = busy == "a" ? b : a;

  // Drain it: new connections all go to the other server, the existing session goes on.
  ASSERT_TRUE(lb_->Drain(busy).has_value());
  ASSERT_TRUE(lb_->Drain(busy).has_value());  // idempotent
  for (int i = 0; i < 5; ++i) {
    auto addr = PsqlServerAddr(fe);
    ASSERT_TRUE(addr.has_value()) << addr.error().message;
    EXPECT_EQ(*addr, other_addr) << "a new connection reached the drained server";
  }
  auto still = lb_->Remove(busy, lb::RemoveMode::kWhenIdle);
  ASSERT_TRUE(still.has_value()) << still.error().message;
  EXPECT_EQ(still->status, lb::RemoveOutcome::Status::kStillHasConnections);
  EXPECT_GE(still->sessions, 1);
  const auto session_deadline = std::chrono::steady_clock::now() + 20s;
  while (session->Running() && std::chrono::steady_clock::now() < session_deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(session->Stop(1s), 0) << "the drained server's session did not end normally";
  EXPECT_NE(ra::testing::ReadFile(work.path() + "/session.out").find("still-alive"),
            std::string::npos);
  ASSERT_TRUE(WaitFor(
      busy, [](const ServerView& s) { return s.sessions == 0; }, 10s, &last))
      << last;

  // A reload (caused by adding a server) keeps the drained state.
  ASSERT_TRUE(lb_->EnsureMember({"c", PgHost(3), 5432}).has_value());
  auto after = Find(busy);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->admin_state, AdminState::kDrain);
  EXPECT_TRUE(after->loaded);
  auto control = double_->Control();
  EXPECT_GE(control["counters"]["reloads_succeeded"].get<int>(), 3);

  // A ready server is not removed; the drained, idle one is, and traffic still flows.
  auto refused = lb_->Remove(other, lb::RemoveMode::kWhenIdle);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().kind, ErrorKind::kConflict);
  auto removed = lb_->Remove(busy, lb::RemoveMode::kWhenIdle);
  ASSERT_TRUE(removed.has_value()) << removed.error().message;
  EXPECT_EQ(removed->status, lb::RemoveOutcome::Status::kRemoved);
  EXPECT_EQ(lb_->Remove(busy, lb::RemoveMode::kWhenIdle)->status,
            lb::RemoveOutcome::Status::kAbsent);
  EXPECT_FALSE(Find(busy).has_value());
  auto addr = PsqlServerAddr(fe);
  ASSERT_TRUE(addr.has_value()) << addr.error().message;
  EXPECT_EQ(*addr, other_addr);
  EXPECT_EQ(OpenTransactions(), 0);
}

TEST_P(DataplaneItest, AbsorbsVersionConflictsFromAConcurrentWriter) {
  double_->Control({{"bump_version_before_writes", 3}});
  ASSERT_TRUE(lb_->EnsureMember({"r1", PgHost(1), 5432}).has_value());
  auto control = double_->Control();
  EXPECT_EQ(control["counters"]["concurrent_commits"], 3);
  auto r1 = Find("r1");
  ASSERT_TRUE(r1.has_value());
  EXPECT_TRUE(r1->loaded);

  // A writer that never stops wins: the client gives up after its bounded retries.
  double_->Control({{"bump_version_before_writes", 100}});
  auto lost = lb_->EnsureMember({"r2", PgHost(2), 5432});
  ASSERT_FALSE(lost.has_value());
  EXPECT_EQ(lost.error().kind, ErrorKind::kConflict);
  EXPECT_NE(lost.error().message.find("version mismatch"), std::string::npos);
  control = double_->Control({{"bump_version_before_writes", 0}});
  EXPECT_EQ(control["counters"]["concurrent_commits"], 3 + 6);  // 1 try + 5 retries

  // A transaction outdated by a concurrent commit is deleted and redone.
  double_->Control({{"bump_version_before_writes", 1}});
  auto moved = lb_->EnsureMember({"r1", PgHost(9), 5432});  // new address: a transaction
  ASSERT_TRUE(moved.has_value()) << moved.error().message;
  r1 = Find("r1");
  ASSERT_TRUE(r1.has_value());
  EXPECT_EQ(r1->address, PgHost(9));
  EXPECT_EQ(OpenTransactions(), 0);
}

TEST_P(DataplaneItest, TwentyOpenTransactionsGive429AndTheClientLeaksNone) {
  const std::string p = double_->Prefix();
  auto version = client_->GetConfigurationVersion();
  ASSERT_TRUE(version.has_value());
  // Another tool leaked 20 transactions.
  std::vector<std::string> leaked;
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = double_->Raw(
        "POST", fmt::format("{}/services/haproxy/transactions?version={}", p, *version));
    ASSERT_EQ(r.status, 201) << r.body;
    leaked.push_back(nlohmann::json::parse(r.body)["id"]);
  }
  HttpResponse full =
      double_->Raw("POST", fmt::format("{}/services/haproxy/transactions?version={}", p, *version));
  EXPECT_EQ(full.status, 429);
  EXPECT_NE(full.body.find("maximum amount of 20 active transactions"), std::string::npos);

  auto refused = client_->RunTransaction([&](const std::string& tx) {
    return client_->CreateServerIn(tx, {"t1", PgHost(1), 5432, true});
  });
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().kind, ErrorKind::kTransient);
  EXPECT_EQ(OpenTransactions(), 20);

  for (const std::string& id : leaked) {
    EXPECT_EQ(double_->Raw("DELETE", p + "/services/haproxy/transactions/" + id).status, 204);
  }
  // A transaction whose second operation fails is deleted, not left open.
  auto failed = client_->RunTransaction([&](const std::string& tx) -> Result<void> {
    if (auto ok = client_->CreateServerIn(tx, {"t1", PgHost(1), 5432, true}); !ok) return ok;
    return client_->DeleteServerIn(tx, "no-such-server");
  });
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(OpenTransactions(), 0);
  auto all = client_->ListTransactions("");
  ASSERT_TRUE(all.has_value());
  EXPECT_TRUE(all->empty());

  auto done = client_->RunTransaction([&](const std::string& tx) -> Result<void> {
    if (auto ok = client_->CreateServerIn(tx, {"t1", PgHost(1), 5432, true}); !ok) return ok;
    return client_->CreateServerIn(tx, {"t2", PgHost(2), 5432, true});
  });
  ASSERT_TRUE(done.has_value()) << done.error().message;
  ASSERT_TRUE(done->reload_id.has_value());
  ASSERT_TRUE(client_->WaitForReload(*done->reload_id).has_value());
  auto servers = client_->GetServers();
  ASSERT_TRUE(servers.has_value());
  EXPECT_EQ(servers->servers.size(), 2u);
  EXPECT_EQ(OpenTransactions(), 0);
}

TEST_P(DataplaneItest, ReportsAFailedReloadAndRecovers) {
  double_->Control({{"fail_reloads", 1}});
  auto failed = lb_->EnsureMember({"r1", PgHost(1), 5432});
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().kind, ErrorKind::kTransient);
  EXPECT_NE(failed.error().message.find("failed"), std::string::npos) << failed.error().message;
  // The API went back to the last configuration HAProxy accepted; trying again works.
  ASSERT_TRUE(lb_->EnsureMember({"r1", PgHost(1), 5432}).has_value());
  auto r1 = Find("r1");
  ASSERT_TRUE(r1.has_value());
  EXPECT_TRUE(r1->loaded);
  EXPECT_EQ(r1->admin_state, AdminState::kReady);
}

TEST_P(DataplaneItest, SessionsThatNeverDrainBlockIdleRemovalOnly) {
  ASSERT_TRUE(lb_->EnsureMember({"r1", PgHost(1), 5432}).has_value());
  ASSERT_TRUE(lb_->Maint("r1").has_value());
  double_->Control({{"stuck_sessions", {{"r1", 2}}}});
  EXPECT_EQ(*lb_->SessionCount("r1"), 2);
  for (int i = 0; i < 3; ++i) {
    auto kept = lb_->Remove("r1", lb::RemoveMode::kWhenIdle);
    ASSERT_TRUE(kept.has_value()) << kept.error().message;
    EXPECT_EQ(kept->status, lb::RemoveOutcome::Status::kStillHasConnections);
  }
  auto forced = lb_->Remove("r1", lb::RemoveMode::kEvenWithSessions);
  ASSERT_TRUE(forced.has_value()) << forced.error().message;
  EXPECT_EQ(forced->status, lb::RemoveOutcome::Status::kRemoved);
  EXPECT_EQ(forced->sessions, 2);
}

// What the client never provokes itself, but the double must answer like the API.
TEST_P(DataplaneItest, DoubleAnswersLikeTheApi) {
  const std::string p = double_->Prefix();
  HttpResponse anonymous = double_->Raw("GET", p + "/services/haproxy/configuration/version", "",
                                        /*auth=*/false);
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(anonymous.Header("WWW-Authenticate"), "Basic realm=\"API\"");
  auto body = nlohmann::json::parse(anonymous.body);
  EXPECT_EQ(body["code"], 401);
  EXPECT_TRUE(body["message"].is_string());

  auto version = client_->GetConfigurationVersion();
  ASSERT_TRUE(version.has_value());
  const std::string servers =
      GetParam() == "v2" ? p + "/services/haproxy/configuration/servers?backend=replicas&"
                         : p + "/services/haproxy/configuration/backends/replicas/servers?";
  const std::string server = R"({"name":"x1","address":"127.0.0.1","port":5432})";

  HttpResponse both = double_->Raw(
      "POST", fmt::format("{}version={}&transaction_id=abc", servers, *version), server);
  EXPECT_EQ(both.status, 400);
  EXPECT_NE(both.body.find("both version and transaction specified"), std::string::npos);

  HttpResponse stale =
      double_->Raw("POST", fmt::format("{}version={}", servers, *version + 99), server);
  EXPECT_EQ(stale.status, 409);
  EXPECT_NE(stale.body.find(fmt::format("version mismatch: version in configuration file is {}, "
                                        "given version is {}",
                                        *version, *version + 99)),
            std::string::npos)
      << stale.body;

  // Two transactions at the same version: once one commits, the other is outdated (406).
  auto start = [&] {
    HttpResponse r = double_->Raw(
        "POST", fmt::format("{}/services/haproxy/transactions?version={}", p, *version));
    EXPECT_EQ(r.status, 201) << r.body;
    return nlohmann::json::parse(r.body)["id"].get<std::string>();
  };
  const std::string t1 = start(), t2 = start();
  HttpResponse in_t1 =
      double_->Raw("POST", fmt::format("{}transaction_id={}", servers, t1), server);
  EXPECT_EQ(in_t1.status, 202) << in_t1.body;
  HttpResponse commit = double_->Raw("PUT", p + "/services/haproxy/transactions/" + t1);
  EXPECT_EQ(commit.status, 202) << commit.body;
  const std::string reload_id = commit.Header("Reload-ID");
  EXPECT_FALSE(reload_id.empty());
  HttpResponse outdated = double_->Raw("PUT", p + "/services/haproxy/transactions/" + t2);
  EXPECT_EQ(outdated.status, 406);
  EXPECT_NE(outdated.body.find("is outdated and cannot be committed"), std::string::npos);
  EXPECT_EQ(double_->Raw("DELETE", p + "/services/haproxy/transactions/" + t2).status, 204);
  EXPECT_EQ(double_->Raw("DELETE", p + "/services/haproxy/transactions/" + t2).status, 404);
  ASSERT_TRUE(client_->WaitForReload(reload_id).has_value());
  HttpResponse reloads = double_->Raw("GET", p + "/services/haproxy/reloads");
  EXPECT_EQ(reloads.status, 200);
  EXPECT_NE(reloads.body.find(reload_id), std::string::npos);

  HttpResponse missing = double_->Raw("GET", p + "/services/haproxy/reloads/2000-01-01-999");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(nlohmann::json::parse(missing.body)["code"], 404);
  HttpResponse info = double_->Raw("GET", p + "/info");
  EXPECT_EQ(info.status, 200);
  EXPECT_EQ(double_->Raw("GET", (GetParam() == "v2" ? "/v3" : "/v2") + std::string("/info")).status,
            404);
}

}  // namespace
}  // namespace ra::haproxy
