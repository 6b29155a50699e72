// PrometheusSource against real VictoriaMetrics 1.79 and Prometheus 2.42 from Debian, started on
// loopback with known data, plus a scripted listener for what real servers will not do on demand
// (hang, answer like a broken proxy).
#include <gtest/gtest.h>

#include <cmath>

#include "policies/prometheus_source.h"
#include "tests/integration/metrics_harness.h"

namespace ra::policies {
namespace {

using namespace std::chrono_literals;
using ra::testing::LoopbackHttpServer;
using ra::testing::MetricSample;
using ra::testing::PrometheusServer;
using ra::testing::VictoriaMetricsServer;

// Ten minutes back, whole seconds: inside both servers' retention and lookback, and far enough
// from "now" that VictoriaMetrics' latency offset does not hide it.
TimePoint DataTime() {
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now() -
                                                            10min);
}

// Sessions per server a minute apart, and a replica count. At t0: 12 + 25 + 33.5 = 70.5 over 3
// replicas; a minute earlier 10 + 20 + 30 = 60.
std::vector<MetricSample> KnownSamples(TimePoint t0) {
  std::vector<MetricSample> samples;
  const std::vector<std::tuple<std::string, double, double>> servers = {
      {"r1", 10, 12}, {"r2", 20, 25}, {"r3", 30, 33.5}};
  for (const auto& [server, before, now] : servers) {
    const std::map<std::string, std::string> labels = {{"backend", "pg_replicas"},
                                                       {"server", server}};
    samples.push_back({"ra_sessions", labels, before, t0 - 60s});
    samples.push_back({"ra_sessions", labels, now, t0});
  }
  samples.push_back({"ra_replicas", {{"cluster", "orders"}}, 3, t0});
  return samples;
}

HttpOptions Loopback() {
  HttpOptions options;
  options.proxy_from_env = false;
  return options;
}

// A source plus the transport it borrows.
struct Client {
  explicit Client(PrometheusSourceOptions options) : transport(Loopback()) {
    auto created = PrometheusSource::Create(std::move(options), transport);
    EXPECT_TRUE(created.has_value()) << created.error().message;
    if (created) source.emplace(std::move(*created));
  }
  Result<QueryResult> Query(std::string_view promql, std::optional<TimePoint> at = std::nullopt) {
    if (!source) return Fail(ErrorKind::kInternal, "no source");
    return source->Query(promql, at);
  }
  CurlHttpTransport transport;
  std::optional<PrometheusSource> source;
};

PrometheusSourceOptions At(const std::string& base_url) {
  PrometheusSourceOptions options;
  options.base_url = base_url;
  options.timeout = 5s;
  return options;
}

double OnlyValue(const Result<QueryResult>& got) {
  EXPECT_TRUE(got.has_value()) << got.error().message;
  if (!got) return std::nan("");
  EXPECT_EQ(got->series.size(), 1u);
  return got->series.empty() ? std::nan("") : got->series[0].value;
}

// The checks both servers must pass on the same data.
void ExpectVectorsMatchLoadedData(Client& client, TimePoint t0) {
  const TimePoint at = t0 + 30s;
  auto raw = client.Query("ra_sessions", at);
  ASSERT_TRUE(raw.has_value()) << raw.error().message;
  EXPECT_EQ(raw->type, QueryResult::Type::kVector);
  ASSERT_EQ(raw->series.size(), 3u);
  std::map<std::string, double> by_server;
  for (const Series& s : raw->series) {
    EXPECT_EQ(s.labels.at("__name__"), "ra_sessions");
    EXPECT_EQ(s.labels.at("backend"), "pg_replicas");
    EXPECT_EQ(s.timestamp, at);
    by_server[s.labels.at("server")] = s.value;
  }
  EXPECT_EQ(by_server, (std::map<std::string, double>{{"r1", 12}, {"r2", 25}, {"r3", 33.5}}));

  EXPECT_DOUBLE_EQ(OnlyValue(client.Query("sum(ra_sessions{backend=\"pg_replicas\"})", at)), 70.5);
  EXPECT_DOUBLE_EQ(
      OnlyValue(client.Query("sum(ra_sessions) / sum(ra_replicas{cluster=\"orders\"})", at)), 23.5);
  // The `time` parameter is honoured: before the second samples the sum is the first ones'.
  EXPECT_DOUBLE_EQ(OnlyValue(client.Query("sum(ra_sessions)", t0 - 30s)), 60);
  // Fractional evaluation times survive the round trip.
  auto fractional = client.Query("sum(ra_sessions)", at + 250ms);
  ASSERT_TRUE(fractional.has_value()) << fractional.error().message;
  ASSERT_EQ(fractional->series.size(), 1u);
  EXPECT_EQ(fractional->series[0].timestamp, at + 250ms);
}

void ExpectEmptyAndInfinities(Client& client, TimePoint t0) {
  auto empty = client.Query("ra_no_such_metric", t0);
  ASSERT_TRUE(empty.has_value()) << empty.error().message;
  EXPECT_EQ(empty->type, QueryResult::Type::kVector);
  EXPECT_TRUE(empty->series.empty());
  auto filtered = client.Query("ra_sessions > 1000", t0);
  ASSERT_TRUE(filtered.has_value()) << filtered.error().message;
  EXPECT_TRUE(filtered->series.empty());
  EXPECT_EQ(OnlyValue(client.Query("1/0")), HUGE_VAL);
  EXPECT_EQ(OnlyValue(client.Query("-1/0")), -HUGE_VAL);
}

void ExpectRangeVectorRefused(Client& client, TimePoint t0) {
  auto matrix = client.Query("ra_sessions[5m]", t0);
  ASSERT_FALSE(matrix.has_value());
  EXPECT_EQ(matrix.error().kind, ErrorKind::kBadRequest);
  EXPECT_NE(matrix.error().message.find("instant vector"), std::string::npos)
      << matrix.error().message;
}

// --- VictoriaMetrics ---------------------------------------------------------------------------

class VictoriaMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = VictoriaMetricsServer::Start({});
    ASSERT_TRUE(started.has_value()) << started.error().message;
    vm_ = std::move(*started);
    t0_ = DataTime();
    auto loaded = vm_->Import(KnownSamples(t0_));
    ASSERT_TRUE(loaded.has_value()) << loaded.error().message << "\n" << vm_->LogTail();
  }

  std::unique_ptr<VictoriaMetricsServer> vm_;
  TimePoint t0_;
};

TEST_F(VictoriaMetricsTest, AnswersVectorsThatMatchTheLoadedData) {
  Client client(At(vm_->base_url()));
  ExpectVectorsMatchLoadedData(client, t0_);
}

TEST_F(VictoriaMetricsTest, AnswersScalarsEmptyResultsAndInfinities) {
  Client client(At(vm_->base_url()));
  // VictoriaMetrics answers scalar() as a one-element vector without labels.
  auto scalar = client.Query("scalar(sum(ra_sessions))", t0_ + 30s);
  ASSERT_TRUE(scalar.has_value()) << scalar.error().message;
  ASSERT_EQ(scalar->series.size(), 1u);
  EXPECT_TRUE(scalar->series[0].labels.empty());
  EXPECT_DOUBLE_EQ(scalar->series[0].value, 70.5);
  // VictoriaMetrics drops NaN from answers: 0/0 is an empty vector there (Prometheus: a NaN
  // scalar). The policy engine treats both as missing data.
  auto nan = client.Query("0/0");
  ASSERT_TRUE(nan.has_value()) << nan.error().message;
  EXPECT_TRUE(nan->series.empty() || std::isnan(nan->series[0].value));
  ExpectEmptyAndInfinities(client, t0_);
}

TEST_F(VictoriaMetricsTest, BadQueriesCarryTheServersMessage) {
  Client client(At(vm_->base_url()));
  auto bad = client.Query("sum(ra_sessions", t0_);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().kind, ErrorKind::kBadRequest) << bad.error().ToString();
  // VictoriaMetrics' own words, with its status and the query.
  EXPECT_NE(bad.error().message.find("HTTP 422"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("unexpected token"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("sum(ra_sessions"), std::string::npos);
  ExpectRangeVectorRefused(client, t0_);
}

TEST(VictoriaMetrics, ClusterStylePathPrefixAndBasicAuth) {
  auto started = VictoriaMetricsServer::Start(
      {.path_prefix = "/select/0/prometheus", .username = "reader", .password = "vm-pa55word"});
  ASSERT_TRUE(started.has_value()) << started.error().message;
  VictoriaMetricsServer& vm = **started;
  const TimePoint t0 = DataTime();
  ASSERT_TRUE(vm.Import(KnownSamples(t0)).has_value()) << vm.LogTail();

  auto options = At(vm.base_url() + "/");
  options.username = "reader";
  options.password = Secret("vm-pa55word");
  Client client(options);
  EXPECT_DOUBLE_EQ(OnlyValue(client.Query("sum(ra_sessions)", t0 + 30s)), 70.5);

  Client anonymous(At(vm.base_url()));
  auto refused = anonymous.Query("sum(ra_sessions)", t0);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().kind, ErrorKind::kAuth) << refused.error().ToString();

  auto wrong_options = options;
  wrong_options.password = Secret("not-the-pa55word");
  Client wrong(wrong_options);
  auto rejected = wrong.Query("sum(ra_sessions)", t0);
  ASSERT_FALSE(rejected.has_value());
  EXPECT_EQ(rejected.error().kind, ErrorKind::kAuth) << rejected.error().ToString();
  EXPECT_EQ(rejected.error().message.find("not-the-pa55word"), std::string::npos);

  // Forgetting the prefix reaches something that is not the API.
  auto no_prefix = options;
  no_prefix.base_url = vm.base_url().substr(0, vm.base_url().find("/select"));
  Client lost(no_prefix);
  auto missing = lost.Query("sum(ra_sessions)", t0);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().kind, ErrorKind::kBadRequest) << missing.error().ToString();
  EXPECT_NE(missing.error().message.find("HTTP 400"), std::string::npos);
  EXPECT_NE(missing.error().message.find("pathPrefix"), std::string::npos)
      << missing.error().message;
}

// --- Prometheus --------------------------------------------------------------------------------

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    t0_ = DataTime();
    auto started = PrometheusServer::Start({.backfill = KnownSamples(t0_)});
    ASSERT_TRUE(started.has_value()) << started.error().message;
    prom_ = std::move(*started);
  }

  std::unique_ptr<PrometheusServer> prom_;
  TimePoint t0_;
};

TEST_F(PrometheusTest, AnswersVectorsThatMatchTheLoadedData) {
  Client client(At(prom_->base_url()));
  ExpectVectorsMatchLoadedData(client, t0_);
}

TEST_F(PrometheusTest, AnswersScalarsNaNEmptyResultsAndInfinities) {
  Client client(At(prom_->base_url()));
  auto scalar = client.Query("scalar(sum(ra_sessions))", t0_ + 30s);
  ASSERT_TRUE(scalar.has_value()) << scalar.error().message;
  EXPECT_EQ(scalar->type, QueryResult::Type::kScalar);
  ASSERT_EQ(scalar->series.size(), 1u);
  EXPECT_TRUE(scalar->series[0].labels.empty());
  EXPECT_DOUBLE_EQ(scalar->series[0].value, 70.5);
  EXPECT_EQ(scalar->series[0].timestamp, t0_ + 30s);

  auto nan = client.Query("0/0");
  ASSERT_TRUE(nan.has_value()) << nan.error().message;
  EXPECT_EQ(nan->type, QueryResult::Type::kScalar);
  ASSERT_EQ(nan->series.size(), 1u);
  EXPECT_TRUE(std::isnan(nan->series[0].value));

  EXPECT_DOUBLE_EQ(OnlyValue(client.Query("vector(42)")), 42);
  ExpectEmptyAndInfinities(client, t0_);
}

TEST_F(PrometheusTest, BadQueriesCarryTheServersMessage) {
  Client client(At(prom_->base_url()));
  auto parse = client.Query("sum(ra_sessions", t0_);
  ASSERT_FALSE(parse.has_value());
  EXPECT_EQ(parse.error().kind, ErrorKind::kBadRequest) << parse.error().ToString();
  EXPECT_NE(parse.error().message.find("HTTP 400 (bad_data)"), std::string::npos)
      << parse.error().message;
  EXPECT_NE(parse.error().message.find("unclosed left parenthesis"), std::string::npos)
      << parse.error().message;

  auto execution = client.Query("ra_sessions + on() ra_sessions", t0_);
  ASSERT_FALSE(execution.has_value());
  EXPECT_EQ(execution.error().kind, ErrorKind::kBadRequest) << execution.error().ToString();
  EXPECT_NE(execution.error().message.find("HTTP 422 (execution)"), std::string::npos)
      << execution.error().message;
  EXPECT_NE(execution.error().message.find("many-to-many"), std::string::npos)
      << execution.error().message;

  auto text = client.Query("\"abc\"");
  ASSERT_FALSE(text.has_value());
  EXPECT_EQ(text.error().kind, ErrorKind::kBadRequest);
  EXPECT_NE(text.error().message.find("string"), std::string::npos) << text.error().message;
  ExpectRangeVectorRefused(client, t0_);
}

TEST(Prometheus, BasicAuthFromItsWebConfig) {
  auto started = PrometheusServer::Start({.username = "ra", .password = "pr0m-secret"});
  ASSERT_TRUE(started.has_value()) << started.error().message;
  PrometheusServer& prom = **started;

  auto anonymous = Client(At(prom.base_url())).Query("vector(42)");
  ASSERT_FALSE(anonymous.has_value());
  EXPECT_EQ(anonymous.error().kind, ErrorKind::kAuth) << anonymous.error().ToString();
  EXPECT_NE(anonymous.error().message.find("HTTP 401"), std::string::npos);

  auto wrong_options = At(prom.base_url());
  wrong_options.username = "ra";
  wrong_options.password = Secret("wr0ng-secret");
  auto wrong = Client(wrong_options).Query("vector(42)");
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().kind, ErrorKind::kAuth);
  EXPECT_EQ(wrong.error().message.find("wr0ng-secret"), std::string::npos);

  // Prometheus 2.42 knows only basic auth: a bearer token is refused like no credentials.
  auto bearer_options = At(prom.base_url());
  bearer_options.bearer_token = Secret("some-bearer-token");
  auto bearer = Client(bearer_options).Query("vector(42)");
  ASSERT_FALSE(bearer.has_value());
  EXPECT_EQ(bearer.error().kind, ErrorKind::kAuth);
  EXPECT_EQ(bearer.error().message.find("some-bearer-token"), std::string::npos);

  auto right_options = At(prom.base_url());
  right_options.username = "ra";
  right_options.password = Secret("pr0m-secret");
  EXPECT_DOUBLE_EQ(OnlyValue(Client(right_options).Query("vector(42)")), 42);
}

// --- The demo's sample data (tests/sandbox/metrics) ---------------------------------------------

TEST(SandboxSample, LoadsASurgeThatWantsMoreReplicas) {
  auto started = VictoriaMetricsServer::Start({});
  ASSERT_TRUE(started.has_value()) << started.error().message;
  VictoriaMetricsServer& vm = **started;
  const int64_t end =
      std::chrono::duration_cast<std::chrono::seconds>(DataTime().time_since_epoch()).count() / 30 *
      30;
  auto loaded = ra::testing::RunCommand(
      {"/usr/bin/python3", std::string(RA_SOURCE_DIR) + "/tests/sandbox/metrics/load_sample.py",
       "--url", vm.base_url(), "--end", std::to_string(end)},
      60s);
  ASSERT_EQ(loaded.status, 0) << loaded.output << vm.LogTail();
  EXPECT_NE(loaded.output.find("per replica"), std::string::npos) << loaded.output;

  Client client(At(vm.base_url()));
  const TimePoint last = TimePoint(std::chrono::seconds(end));
  const std::string per_replica =
      "sum(haproxy_backend_current_sessions{cluster=\"orders\",backend=\"pg_replicas\"}) / "
      "sum(haproxy_backend_active_servers{cluster=\"orders\",backend=\"pg_replicas\"})";
  const double now_per_replica = OnlyValue(client.Query(per_replica, last));
  const double quiet_per_replica = OnlyValue(client.Query(per_replica, last - 40min));
  // Well above a target of 50 now, well below it before the surge.
  EXPECT_GT(now_per_replica, 75) << loaded.output;
  EXPECT_LT(quiet_per_replica, 40) << loaded.output;

  // Per-server sessions add up to the backend's, over the two replicas.
  EXPECT_DOUBLE_EQ(
      OnlyValue(client.Query("sum(haproxy_server_current_sessions{cluster=\"orders\"})", last)),
      2 * now_per_replica);
  EXPECT_DOUBLE_EQ(
      OnlyValue(client.Query("count(haproxy_server_current_sessions{cluster=\"orders\"})", last)),
      2);
  const double active = OnlyValue(
      client.Query("sum(pg_stat_activity_count{cluster=\"orders\",state=\"active\"})", last));
  EXPECT_GT(active, 0);
  EXPECT_LE(active, 2 * now_per_replica);
  const double rate = OnlyValue(
      client.Query("sum(rate(haproxy_backend_connections_total{cluster=\"orders\"}[5m]))", last));
  EXPECT_GT(rate, 0);
  EXPECT_TRUE(std::isfinite(rate));
}

// --- What real servers will not do on demand ----------------------------------------------------

TEST(PrometheusSourceOverHttp, TimesOutOnAServerThatNeverAnswers) {
  auto server = LoopbackHttpServer::Start();
  ASSERT_TRUE(server.has_value()) << server.error().message;
  (*server)->SetHang(true);
  auto options = At((*server)->url());
  options.timeout = 1s;
  Client client(options);
  const auto started = std::chrono::steady_clock::now();
  auto got = client.Query("up");
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kTimeout) << got.error().ToString();
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 3s);
  EXPECT_EQ((*server)->received().size(), 1u);
}

TEST(PrometheusSourceOverHttp, RefusedConnectionIsTransient) {
  const int port = ra::testing::FreePort();
  ASSERT_GT(port, 0);
  Client client(At("http://127.0.0.1:" + std::to_string(port)));
  auto got = client.Query("up");
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kTransient) << got.error().ToString();
  EXPECT_NE(got.error().message.find(std::to_string(port)), std::string::npos);
}

TEST(PrometheusSourceOverHttp, PutsTokenHeadersAndFormOnTheWire) {
  auto server = LoopbackHttpServer::Start();
  ASSERT_TRUE(server.has_value()) << server.error().message;
  (*server)->SetReply({200,
                       {{"Content-Type", "application/json"}},
                       R"({"status":"success","data":{"resultType":"vector","result":[)"
                       R"({"metric":{"cluster":"orders"},"value":[1795236698.5,"7"]}]}})"});
  auto options = At((*server)->url() + "/select/0/prometheus");
  options.bearer_token = Secret("wire-token-123");
  options.extra_headers["X-Scope-OrgID"] = "team-a";
  options.timeout = 1500ms;
  Client client(options);
  auto got = client.Query("sum by (cluster) (x{a=\"b c\"})", TimePoint(1'795'236'698'500ms));
  ASSERT_TRUE(got.has_value()) << got.error().message;
  ASSERT_EQ(got->series.size(), 1u);
  EXPECT_EQ(got->series[0].labels.at("cluster"), "orders");
  EXPECT_DOUBLE_EQ(got->series[0].value, 7);

  const auto received = (*server)->received();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].method, "POST");
  EXPECT_EQ(received[0].target, "/select/0/prometheus/api/v1/query");
  EXPECT_EQ(received[0].headers.at("Authorization"), "Bearer wire-token-123");
  EXPECT_EQ(received[0].headers.at("Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(received[0].headers.at("X-Scope-OrgID"), "team-a");
  EXPECT_EQ(received[0].body,
            "query=sum%20by%20%28cluster%29%20%28x%7Ba%3D%22b%20c%22%7D%29"
            "&time=1795236698.5&timeout=1.5");
}

TEST(PrometheusSourceOverHttp, ProxyErrorPageIsTransientWithStatusAndBody) {
  auto server = LoopbackHttpServer::Start();
  ASSERT_TRUE(server.has_value()) << server.error().message;
  (*server)->SetReply({502,
                       {{"Content-Type", "text/html"}},
                       "<html><head><title>502 Bad Gateway</title></head><body>" +
                           std::string(3000, '.') + "</body></html>\n"});
  Client client(At((*server)->url()));
  auto got = client.Query("up");
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kTransient) << got.error().ToString();
  EXPECT_NE(got.error().message.find("HTTP 502"), std::string::npos) << got.error().message;
  EXPECT_NE(got.error().message.find("502 Bad Gateway"), std::string::npos);
  EXPECT_LT(got.error().message.size(), 600u) << got.error().message;
}

}  // namespace
}  // namespace ra::policies
