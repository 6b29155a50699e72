#include "policies/prometheus_source.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <thread>

#include "core/log.h"
#include "testing/fake_http_transport.h"

namespace ra::policies {
namespace {

using namespace std::chrono_literals;
using ra::testing::FakeHttpTransport;

// Bodies as Prometheus 2.42 and VictoriaMetrics 1.79 write them (captured from the real servers
// on loopback, then trimmed).
constexpr char kVectorBody[] =
    R"({"status":"success","data":{"resultType":"vector","result":[)"
    R"({"metric":{"__name__":"ra_sessions","backend":"pg","server":"r1"},"value":[1795236698,"10"]},)"
    R"({"metric":{"__name__":"ra_sessions","backend":"pg","server":"r2"},"value":[1795236698.25,"20.5"]}]}})";
constexpr char kScalarNaNBody[] =
    R"({"status":"success","data":{"resultType":"scalar","result":[1795236698,"NaN"]}})";
constexpr char kEmptyBody[] = R"({"status":"success","data":{"resultType":"vector","result":[]}})";
constexpr char kMatrixBody[] =
    R"({"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"x"},)"
    R"("values":[[1795236668,"10"]]}]}})";
constexpr char kStringBody[] =
    R"({"status":"success","data":{"resultType":"string","result":[1795236698,"abc"]}})";
constexpr char kPromBadData[] =
    R"({"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse )"
    R"(error: unclosed left parenthesis"})";
constexpr char kPromExecution[] =
    R"({"status":"error","errorType":"execution","error":"found duplicate series for the match )"
    R"(group {} on the right hand-side of the operation"})";
constexpr char kVmUnprocessable[] =
    R"({"status":"error","errorType":"422","error":"error when executing query=\"sum(\" for )"
    R"((time=1795237228545, step=300000): singleExpr: unexpected token \"\""})";

PrometheusSourceOptions Options(std::string base_url = "http://127.0.0.1:8428") {
  PrometheusSourceOptions options;
  options.base_url = std::move(base_url);
  options.timeout = 2500ms;
  return options;
}

PrometheusSource MakeSource(FakeHttpTransport& transport,
                            PrometheusSourceOptions options = Options()) {
  auto source = PrometheusSource::Create(std::move(options), transport);
  EXPECT_TRUE(source.has_value()) << source.error().message;
  return std::move(*source);
}

TimePoint At(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }

class PrometheusSourceTest : public ::testing::Test {
 protected:
  void SetUp() override { log::ResetForTesting(); }
  void TearDown() override { log::ResetForTesting(); }
};

TEST(FormEncode, KeepsUnreservedAndEscapesTheRest) {
  EXPECT_EQ(FormEncode("abcXYZ019-._~"), "abcXYZ019-._~");
  EXPECT_EQ(FormEncode("a b+c&d=e%/"), "a%20b%2Bc%26d%3De%25%2F");
  EXPECT_EQ(FormEncode("{job=~\"a|b\"}[5m]"), "%7Bjob%3D~%22a%7Cb%22%7D%5B5m%5D");
  EXPECT_EQ(FormEncode("\xc3\xa9\n"), "%C3%A9%0A");
}

TEST(FormatApiTime, WritesUnixSecondsWithMilliseconds) {
  EXPECT_EQ(FormatApiTime(At(1'700'000'000'000)), "1700000000");
  EXPECT_EQ(FormatApiTime(At(1'700'000'000'500)), "1700000000.5");
  EXPECT_EQ(FormatApiTime(At(1'700'000'000'007)), "1700000000.007");
  EXPECT_EQ(FormatApiTime(At(0)), "0");
  EXPECT_EQ(FormatApiTime(At(-1'500)), "-1.5");
}

TEST(PrometheusSourceOptions, RejectsWhatCannotWork) {
  struct Case {
    const char* what;
    PrometheusSourceOptions options;
    const char* want_in_message;
  };
  std::vector<Case> cases;
  cases.push_back({"empty url", Options(""), "base_url: required"});
  cases.push_back({"no scheme", Options("127.0.0.1:8428"), "http:// or https://"});
  cases.push_back({"ftp", Options("ftp://host"), "http:// or https://"});
  cases.push_back({"no host", Options("http:///select"), "no host"});
  cases.push_back({"credentials in url", Options("http://u:p@host:8428"), "credentials"});
  cases.push_back({"query string", Options("http://host:8428/?x=1"), "query string"});
  cases.push_back({"api path", Options("http://host:9090/api/v1/query"), "/api/v1"});
  cases.push_back({"api root", Options("http://host:9090/api/v1/"), "/api/v1"});
  {
    auto o = Options();
    o.username = "ra";
    o.bearer_token = Secret("token-value");
    cases.push_back({"both auths", o, "exclusive"});
  }
  {
    auto o = Options();
    o.password = Secret("lonely-password");
    cases.push_back({"password alone", o, "without a username"});
  }
  {
    auto o = Options();
    o.username = "a:b";
    cases.push_back({"colon in user", o, "':'"});
  }
  {
    auto o = Options();
    o.timeout = 0ms;
    cases.push_back({"zero timeout", o, "timeout"});
  }
  {
    auto o = Options();
    o.extra_headers["authorization"] = "Bearer x";
    cases.push_back({"authorization header", o, "bearer_token"});
  }
  {
    auto o = Options();
    o.extra_headers["X-Bad"] = "a\r\nInjected: yes";
    cases.push_back({"header injection", o, "not a valid header"});
  }
  for (const Case& c : cases) {
    auto valid = ValidatePrometheusSourceOptions(c.options);
    ASSERT_FALSE(valid.has_value()) << c.what;
    EXPECT_EQ(valid.error().kind, ErrorKind::kConfig) << c.what;
    EXPECT_NE(valid.error().message.find(c.want_in_message), std::string::npos)
        << c.what << ": " << valid.error().message;
    EXPECT_EQ(valid.error().message.find("lonely-password"), std::string::npos);
    EXPECT_EQ(valid.error().message.find("token-value"), std::string::npos);
  }
}

TEST(PrometheusSourceOptions, AcceptsPrefixesAndTrailingSlashes) {
  for (const char* url :
       {"http://127.0.0.1:8428", "https://vm.example:8427/",
        "http://vmselect:8481/select/0/prometheus", "http://vmselect:8481/select/0/prometheus/"}) {
    auto valid = ValidatePrometheusSourceOptions(Options(url));
    EXPECT_TRUE(valid.has_value()) << url << ": " << valid.error().message;
  }
}

TEST_F(PrometheusSourceTest, PostsAFormEncodedInstantQuery) {
  FakeHttpTransport transport;
  auto options = Options("http://vmselect:8481/select/0/prometheus/");
  options.extra_headers["X-Scope-OrgID"] = "tenant-1";
  PrometheusSource source = MakeSource(transport, options);
  transport.Push(200, kEmptyBody);

  auto got =
      source.Query(R"(sum(rate(x{a="b c",d=~"e|f"}[5m])) / 2 > 1 & 0)", At(1'795'236'698'250));
  ASSERT_TRUE(got.has_value()) << got.error().message;

  const std::vector<HttpRequest> requests = transport.requests();
  ASSERT_EQ(requests.size(), 1u);
  const HttpRequest& request = requests[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url, "http://vmselect:8481/select/0/prometheus/api/v1/query");
  EXPECT_EQ(request.headers.at("content-type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(request.headers.at("Accept"), "application/json");
  EXPECT_EQ(request.headers.at("X-Scope-OrgID"), "tenant-1");
  EXPECT_EQ(request.headers.count("Authorization"), 0u);
  EXPECT_EQ(request.body,
            "query=sum%28rate%28x%7Ba%3D%22b%20c%22%2Cd%3D~%22e%7Cf%22%7D%5B5m%5D%29%29%20%2F%202%"
            "20%3E%201%20%26%200&time=1795236698.25&timeout=2.5");
  ASSERT_TRUE(request.timeout.has_value());
  EXPECT_EQ(*request.timeout, 2500ms);
}

TEST_F(PrometheusSourceTest, LeavesTimeToTheServerWhenAbsent) {
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  transport.Push(200, kEmptyBody);
  ASSERT_TRUE(source.Query("up", std::nullopt).has_value());
  EXPECT_EQ(transport.requests()[0].body, "query=up&timeout=2.5");
}

TEST_F(PrometheusSourceTest, SendsBasicAuth) {
  FakeHttpTransport transport;
  auto options = Options();
  options.username = "Aladdin";
  options.password = Secret("open sesame");
  PrometheusSource source = MakeSource(transport, options);
  transport.Push(200, kEmptyBody);
  ASSERT_TRUE(source.Query("up", std::nullopt).has_value());
  // RFC 7617's own example.
  EXPECT_EQ(transport.requests()[0].headers.at("Authorization"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

TEST_F(PrometheusSourceTest, PadsBase64OfEveryLength) {
  for (auto [password, want] : {std::pair{"pw", "cmE6cHc="}, std::pair{"pwd1", "cmE6cHdkMQ=="},
                                std::pair{"s3cret-pass", "cmE6czNjcmV0LXBhc3M="}}) {
    FakeHttpTransport transport;
    auto options = Options();
    options.username = "ra";
    options.password = Secret(password);
    PrometheusSource source = MakeSource(transport, options);
    transport.Push(200, kEmptyBody);
    ASSERT_TRUE(source.Query("up", std::nullopt).has_value());
    EXPECT_EQ(transport.requests()[0].headers.at("Authorization"), std::string("Basic ") + want);
  }
}

TEST_F(PrometheusSourceTest, SendsBearerToken) {
  FakeHttpTransport transport;
  auto options = Options();
  options.bearer_token = Secret("tok-12345");
  PrometheusSource source = MakeSource(transport, options);
  transport.Push(200, kEmptyBody);
  ASSERT_TRUE(source.Query("up", std::nullopt).has_value());
  EXPECT_EQ(transport.requests()[0].headers.at("authorization"), "Bearer tok-12345");
}

TEST_F(PrometheusSourceTest, RejectsAnEmptyQueryWithoutSending) {
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  auto got = source.Query("  \n", std::nullopt);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kBadRequest);
  EXPECT_TRUE(transport.requests().empty());
}

TEST_F(PrometheusSourceTest, ParsesAVectorWithLabelsAndTimestamps) {
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  transport.Push(200, kVectorBody);
  auto got = source.Query("ra_sessions", std::nullopt);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(got->type, QueryResult::Type::kVector);
  ASSERT_EQ(got->series.size(), 2u);
  EXPECT_EQ(got->series[0].labels.at("server"), "r1");
  EXPECT_EQ(got->series[0].labels.at("__name__"), "ra_sessions");
  EXPECT_EQ(got->series[0].labels.size(), 3u);
  EXPECT_DOUBLE_EQ(got->series[0].value, 10);
  EXPECT_EQ(got->series[0].timestamp, At(1'795'236'698'000));
  EXPECT_DOUBLE_EQ(got->series[1].value, 20.5);
  EXPECT_EQ(got->series[1].timestamp, At(1'795'236'698'250));
}

TEST_F(PrometheusSourceTest, ParsesScalarNaNAndInfinities) {
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  transport.Push(200, kScalarNaNBody);
  auto nan = source.Query("0/0", std::nullopt);
  ASSERT_TRUE(nan.has_value()) << nan.error().message;
  EXPECT_EQ(nan->type, QueryResult::Type::kScalar);
  ASSERT_EQ(nan->series.size(), 1u);
  EXPECT_TRUE(nan->series[0].labels.empty());
  EXPECT_TRUE(std::isnan(nan->series[0].value));
  EXPECT_EQ(nan->series[0].timestamp, At(1'795'236'698'000));

  for (auto [text, want] :
       {std::pair{"+Inf", HUGE_VAL}, std::pair{"-Inf", -HUGE_VAL}, std::pair{"Inf", HUGE_VAL},
        std::pair{"-0.25", -0.25}, std::pair{"1e+21", 1e21}, std::pair{"42", 42.0}}) {
    transport.Push(200,
                   std::string(R"({"status":"success","data":{"resultType":"vector","result":[)") +
                       R"({"metric":{},"value":[1795236698,")" + text + R"("]}]}})");
    auto got = source.Query("x", std::nullopt);
    ASSERT_TRUE(got.has_value()) << text << ": " << got.error().message;
    ASSERT_EQ(got->series.size(), 1u);
    EXPECT_EQ(got->series[0].value, want) << text;
  }
}

TEST_F(PrometheusSourceTest, EmptyVectorIsAnEmptyList) {
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  transport.Push(200, kEmptyBody);
  auto got = source.Query("absent_metric", std::nullopt);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->type, QueryResult::Type::kVector);
  EXPECT_TRUE(got->series.empty());
}

TEST_F(PrometheusSourceTest, RangeVectorsAndStringsAskForAnInstantVector) {
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  transport.Push(200, kMatrixBody);
  transport.Push(200, kStringBody);
  auto matrix = source.Query("x[5m]", std::nullopt);
  ASSERT_FALSE(matrix.has_value());
  EXPECT_EQ(matrix.error().kind, ErrorKind::kBadRequest);
  EXPECT_NE(matrix.error().message.find("instant vector"), std::string::npos);
  EXPECT_NE(matrix.error().message.find("x[5m]"), std::string::npos);
  auto text = source.Query("\"abc\"", std::nullopt);
  ASSERT_FALSE(text.has_value());
  EXPECT_EQ(text.error().kind, ErrorKind::kBadRequest);
  EXPECT_NE(text.error().message.find("instant vector"), std::string::npos);
}

TEST_F(PrometheusSourceTest, NativeHistogramSamplesAreRefusedClearly) {
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  transport.Push(200, R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},)"
                      R"("histogram":[1795236698,{"count":"3","sum":"4","buckets":[]}]}]}})");
  auto got = source.Query("h", std::nullopt);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kBadRequest);
  EXPECT_NE(got.error().message.find("histogram"), std::string::npos);
}

TEST_F(PrometheusSourceTest, MapsApiErrorsWithTheServersMessage) {
  struct Case {
    int status;
    std::string body;
    ErrorKind want;
    const char* want_in_message;
  };
  const std::vector<Case> cases = {
      {400, kPromBadData, ErrorKind::kBadRequest, "unclosed left parenthesis"},
      {422, kPromExecution, ErrorKind::kBadRequest, "found duplicate series"},
      {422, kVmUnprocessable, ErrorKind::kBadRequest, "unexpected token"},
      {503, R"({"status":"error","errorType":"unavailable","error":"TSDB not ready"})",
       ErrorKind::kTransient, "TSDB not ready"},
      {503,
       R"({"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"})",
       ErrorKind::kTimeout, "query timed out"},
      {503, R"({"status":"error","errorType":"canceled","error":"query was canceled"})",
       ErrorKind::kTransient, "canceled"},
      {500, R"({"status":"error","errorType":"internal","error":"storage corrupt"})",
       ErrorKind::kTransient, "storage corrupt"},
      {503, R"({"status":"error","errorType":"503","error":"cannot fetch data from vmstorage"})",
       ErrorKind::kTransient, "vmstorage"},
      {429, R"({"status":"error","errorType":"429","error":"too many concurrent requests"})",
       ErrorKind::kTransient, "too many"},
      {200, R"({"status":"error","errorType":"weird","error":"odd"})", ErrorKind::kBadRequest,
       "odd"},
  };
  for (const Case& c : cases) {
    FakeHttpTransport transport;
    PrometheusSource source = MakeSource(transport);
    transport.Push(c.status, c.body, {{"Content-Type", "application/json"}});
    auto got = source.Query("sum(", std::nullopt);
    ASSERT_FALSE(got.has_value()) << c.body;
    EXPECT_EQ(got.error().kind, c.want) << c.body << " -> " << got.error().ToString();
    EXPECT_NE(got.error().message.find(c.want_in_message), std::string::npos)
        << got.error().message;
    EXPECT_NE(got.error().message.find(std::to_string(c.status)), std::string::npos)
        << got.error().message;
    EXPECT_NE(got.error().message.find("sum("), std::string::npos) << got.error().message;
  }
}

TEST_F(PrometheusSourceTest, ApiErrorMessagesReadWell) {
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  transport.Push(400, kPromBadData);
  transport.Push(422, kVmUnprocessable);
  auto prom = source.Query("sum(", std::nullopt);
  ASSERT_FALSE(prom.has_value());
  EXPECT_EQ(prom.error().message,
            "query \"sum(\" at http://127.0.0.1:8428/api/v1/query: HTTP 400 (bad_data): invalid "
            "parameter \"query\": 1:5: parse error: unclosed left parenthesis");
  // VictoriaMetrics repeats the status as errorType; saying it twice would be noise.
  auto vm = source.Query("sum(", std::nullopt);
  ASSERT_FALSE(vm.has_value());
  EXPECT_EQ(vm.error().message,
            "query \"sum(\" at http://127.0.0.1:8428/api/v1/query: HTTP 422: error when executing "
            "query=\"sum(\" for (time=1795237228545, step=300000): singleExpr: unexpected token "
            "\"\"");
}

TEST_F(PrometheusSourceTest, ProxyErrorPagesGiveStatusAndTruncatedBody) {
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  std::string html = "<html>\r\n<head><title>502 Bad Gateway</title></head>\n<body>";
  html += std::string(5000, 'x');
  html += "</body></html>";
  transport.Push(502, html, {{"Content-Type", "text/html"}});
  auto got = source.Query("up", std::nullopt);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kTransient);
  const std::string& m = got.error().message;
  EXPECT_NE(m.find("HTTP 502"), std::string::npos) << m;
  EXPECT_NE(m.find("502 Bad Gateway"), std::string::npos) << m;
  EXPECT_NE(m.find("text/html"), std::string::npos) << m;
  EXPECT_NE(m.find("..."), std::string::npos) << m;
  EXPECT_LT(m.size(), 600u) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_EQ(m.find("</body>"), std::string::npos) << m;
}

TEST_F(PrometheusSourceTest, NonApiAnswersByStatus) {
  struct Case {
    int status;
    std::string body;
    ErrorKind want;
    const char* want_in_message;
  };
  const std::vector<Case> cases = {
      {200, "<html>hello</html>", ErrorKind::kParse, "not the Prometheus API"},
      {200, "", ErrorKind::kParse, "empty body"},
      {200, R"({"data":{}})", ErrorKind::kParse, "not the Prometheus API"},
      {200, R"([1,2])", ErrorKind::kParse, "not the Prometheus API"},
      {404, "404 page not found", ErrorKind::kConfig, "base_url"},
      {400, "Bad Request", ErrorKind::kBadRequest, "Bad Request"},
      {503, "", ErrorKind::kTransient, "HTTP 503"},
      {429, "slow down", ErrorKind::kTransient, "slow down"},
      {302, "", ErrorKind::kParse, "HTTP 302"},
  };
  for (const Case& c : cases) {
    FakeHttpTransport transport;
    PrometheusSource source = MakeSource(transport);
    transport.Push(c.status, c.body);
    auto got = source.Query("up", std::nullopt);
    ASSERT_FALSE(got.has_value()) << c.status << " " << c.body;
    EXPECT_EQ(got.error().kind, c.want) << c.status << " " << got.error().ToString();
    EXPECT_NE(got.error().message.find(c.want_in_message), std::string::npos)
        << got.error().message;
  }
}

TEST_F(PrometheusSourceTest, MalformedSuccessAnswersAreParseErrors) {
  const std::vector<std::string> bodies = {
      R"({"status":"success"})",
      R"({"status":"success","data":{"resultType":"vector"}})",
      R"({"status":"success","data":{"resultType":"vector","result":{}}})",
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}})",
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,2]}]}})",
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":["1","2"]}]}})",
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1]}]}})",
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}})",
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1.5x"]}]}})",
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,""]}]}})",
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"++1"]}]}})",
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1e300,"1"]}]}})",
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"1"]}]}})",
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":[],"value":[1,"1"]}]}})",
      R"({"status":"success","data":{"resultType":"vector","result":[7]}})",
      R"({"status":"success","data":{"resultType":"scalar","result":"1"}})",
      R"({"status":"success","data":{"resultType":"surprise","result":[]}})",
      R"({"status":"pending","data":{}})",
      R"({"status":"success","data":{"resultType":"vector","result":[)",
  };
  for (const std::string& body : bodies) {
    FakeHttpTransport transport;
    PrometheusSource source = MakeSource(transport);
    transport.Push(200, body);
    auto got = source.Query("q", std::nullopt);
    ASSERT_FALSE(got.has_value()) << body;
    EXPECT_EQ(got.error().kind, ErrorKind::kParse) << body << " -> " << got.error().ToString();
    // The same body through the public parser gives the same verdict.
    auto direct = ParseQueryResponse(body, "q");
    ASSERT_FALSE(direct.has_value()) << body;
    EXPECT_EQ(direct.error().kind, ErrorKind::kParse) << body;
  }
}

TEST_F(PrometheusSourceTest, AuthFailuresAreAuthErrorsWithoutSecrets) {
  log::ResetForTesting();
  std::string captured;
  log::CaptureForTesting(&captured);
  for (int status : {401, 403}) {
    for (bool basic : {true, false}) {
      FakeHttpTransport transport;
      auto options = Options();
      if (basic) {
        options.username = "ra";
        options.password = Secret("hunter2-password");
      } else {
        options.bearer_token = Secret("tok-abcdef-123456");
      }
      PrometheusSource source = MakeSource(transport, options);
      // A careless proxy that echoes what it was sent.
      transport.Push(status, "Unauthorized: got Authorization: " +
                                 std::string(basic ? "Basic cmE6aHVudGVyMi1wYXNzd29yZA== "
                                                     "(hunter2-password)"
                                                   : "Bearer tok-abcdef-123456"));
      auto got = source.Query("up", std::nullopt);
      ASSERT_FALSE(got.has_value());
      EXPECT_EQ(got.error().kind, ErrorKind::kAuth) << got.error().ToString();
      const std::string& m = got.error().message;
      EXPECT_NE(m.find(std::to_string(status)), std::string::npos) << m;
      EXPECT_EQ(m.find("hunter2-password"), std::string::npos) << m;
      EXPECT_EQ(m.find("cmE6aHVudGVyMi1wYXNzd29yZA=="), std::string::npos) << m;
      EXPECT_EQ(m.find("tok-abcdef-123456"), std::string::npos) << m;
    }
  }
  EXPECT_EQ(captured.find("hunter2-password"), std::string::npos) << captured;
  EXPECT_EQ(captured.find("tok-abcdef-123456"), std::string::npos) << captured;
}

TEST_F(PrometheusSourceTest, AuthFailureSaysWhatWasConfigured) {
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  transport.Push(401, "Unauthorized\n");
  auto got = source.Query("up", std::nullopt);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kAuth);
  EXPECT_NE(got.error().message.find("no credentials configured"), std::string::npos)
      << got.error().message;
}

TEST_F(PrometheusSourceTest, TransportFailuresKeepTheirKind) {
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  transport.Push(
      Fail(ErrorKind::kTimeout, "http://127.0.0.1:8428/api/v1/query Timeout was reached"));
  transport.Push(
      Fail(ErrorKind::kTransient, "http://127.0.0.1:8428/api/v1/query Couldn't connect"));
  auto timeout = source.Query("up", std::nullopt);
  ASSERT_FALSE(timeout.has_value());
  EXPECT_EQ(timeout.error().kind, ErrorKind::kTimeout);
  EXPECT_NE(timeout.error().message.find("Timeout was reached"), std::string::npos);
  EXPECT_NE(timeout.error().message.find("\"up\""), std::string::npos);
  auto refused = source.Query("up", std::nullopt);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().kind, ErrorKind::kTransient);
}

TEST_F(PrometheusSourceTest, LogsWarningsAndStillAnswers) {
  std::string captured;
  log::CaptureForTesting(&captured);
  FakeHttpTransport transport;
  PrometheusSource source = MakeSource(transport);
  transport.Push(200,
                 R"({"status":"success","warnings":["PromQL info: metric might not be a counter"],)"
                 R"("isPartial":true,"data":{"resultType":"vector","result":[{"metric":{},)"
                 R"("value":[1795236698,"3"]}]}})");
  auto got = source.Query("rate(x[5m])", std::nullopt);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  ASSERT_EQ(got->series.size(), 1u);
  EXPECT_DOUBLE_EQ(got->series[0].value, 3);
  EXPECT_NE(captured.find("might not be a counter"), std::string::npos) << captured;
  EXPECT_NE(captured.find("partial"), std::string::npos) << captured;
  EXPECT_NE(captured.find("rate(x[5m])"), std::string::npos) << captured;
}

TEST_F(PrometheusSourceTest, WorksFromSeveralThreads) {
  FakeHttpTransport transport;
  transport.SetResponder([](const HttpRequest&) -> Result<HttpResponse> {
    return HttpResponse{200, {}, kVectorBody};
  });
  PrometheusSource source = MakeSource(transport);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto got = source.Query("ra_sessions", std::nullopt);
        if (got && got->series.size() == 2) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 100);
  EXPECT_EQ(transport.requests().size(), 100u);
}

}  // namespace
}  // namespace ra::policies
