#include <gtest/gtest.h>

#include "core/log.h"
#include "core/time_format.h"
#include "openstack/errors.h"
#include "openstack/keystone.h"
#include "openstack_test_support.h"

namespace ra::openstack {
namespace {

using namespace std::chrono_literals;
using testing::BodyOf;
using testing::Harness;
using testing::PasswordOptions;
using testing::TokenResponse;

TEST(KeystoneRequest, PasswordScopedToProjectByName) {
  auto body = BuildAuthRequest(PasswordOptions().auth);
  ASSERT_TRUE(body) << body.error().message;
  auto j = nlohmann::json::parse(*body);
  EXPECT_EQ(j["auth"]["identity"]["methods"], nlohmann::json::array({"password"}));
  const auto& user = j["auth"]["identity"]["password"]["user"];
  EXPECT_EQ(user["name"], "demo");
  EXPECT_EQ(user["domain"]["name"], "Default");
  EXPECT_EQ(user["password"], "s3cret-password");
  // The project's domain defaults to the user's.
  EXPECT_EQ(j["auth"]["scope"]["project"]["name"], "demo");
  EXPECT_EQ(j["auth"]["scope"]["project"]["domain"]["name"], "Default");
}

TEST(KeystoneRequest, ProjectByIdAndDomainScope) {
  AuthOptions a = PasswordOptions().auth;
  a.project_id = "p-42";
  auto j = nlohmann::json::parse(*BuildAuthRequest(a));
  EXPECT_EQ(j["auth"]["scope"], nlohmann::json({{"project", {{"id", "p-42"}}}}));
  a.project_id.clear();
  a.project_name.clear();
  a.domain_name = "ops";
  j = nlohmann::json::parse(*BuildAuthRequest(a));
  EXPECT_EQ(j["auth"]["scope"], nlohmann::json({{"domain", {{"name", "ops"}}}}));
}

TEST(KeystoneRequest, ApplicationCredentialHasNoScope) {
  AuthOptions a;
  a.type = AuthType::kApplicationCredential;
  a.auth_url = "https://keystone.example/v3";
  a.application_credential_id = "ac-1";
  a.application_credential_secret = Secret("app-cred-secret-value");
  auto j = nlohmann::json::parse(*BuildAuthRequest(a));
  EXPECT_EQ(j["auth"]["identity"]["methods"], nlohmann::json::array({"application_credential"}));
  EXPECT_EQ(j["auth"]["identity"]["application_credential"]["id"], "ac-1");
  EXPECT_EQ(j["auth"]["identity"]["application_credential"]["secret"], "app-cred-secret-value");
  EXPECT_FALSE(j["auth"].contains("scope"));

  a.application_credential_id.clear();
  a.application_credential_name = "autoscaler";
  EXPECT_FALSE(BuildAuthRequest(a)) << "a name needs its user";
  a.username = "svc";
  a.user_domain_name = "Default";
  j = nlohmann::json::parse(*BuildAuthRequest(a));
  EXPECT_EQ(j["auth"]["identity"]["application_credential"]["user"]["name"], "svc");
}

TEST(KeystoneRequest, IncompleteOptionsAreConfigErrors) {
  AuthOptions a = PasswordOptions().auth;
  a.project_name.clear();
  auto r = BuildAuthRequest(a);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kConfig);
  EXPECT_NE(r.error().message.find("scope"), std::string::npos);
  a = PasswordOptions().auth;
  a.password = Secret();
  EXPECT_EQ(BuildAuthRequest(a).error().kind, ErrorKind::kConfig);
}

TEST(KeystoneAuth, AuthenticatesOnceAndReusesTheTokenUntilShortlyBeforeExpiry) {
  Harness h;
  h.transport.Push(TokenResponse("tok-1-abcdef", h.clock.Now() + 1h));
  h.transport.Push(TokenResponse("tok-2-abcdef", h.clock.Now() + 2h));
  KeystoneAuth& auth = h.session.auth();
  auto t1 = auth.GetToken();
  ASSERT_TRUE(t1) << t1.error().message;
  EXPECT_EQ((*t1)->value.Reveal(), "tok-1-abcdef");
  EXPECT_EQ((*t1)->project_id, "p-42");
  auto requests = h.transport.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].url, "https://keystone.example:5000/v3/auth/tokens");

  h.clock.Advance(54min);  // 6 minutes left, margin is 5
  EXPECT_EQ((*auth.GetToken())->value.Reveal(), "tok-1-abcdef");
  EXPECT_EQ(h.transport.requests().size(), 1u);
  h.clock.Advance(2min);  // 4 minutes left: renew
  EXPECT_EQ((*auth.GetToken())->value.Reveal(), "tok-2-abcdef");
  EXPECT_EQ(auth.authentications(), 2);
}

TEST(KeystoneAuth, RejectedCredentialsAreAuthErrorsWithKeystonesMessage) {
  Harness h;
  h.transport.Push(401, R"({"error":{"code":401,"message":"The request you have made requires )"
                        R"(authentication.","title":"Unauthorized"}})");
  auto t = h.session.auth().GetToken();
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().kind, ErrorKind::kAuth);
  EXPECT_NE(t.error().message.find("requires authentication"), std::string::npos);
  EXPECT_EQ(t.error().message.find("s3cret-password"), std::string::npos);
}

TEST(KeystoneAuth, MalformedAnswersAreParseErrors) {
  Harness h;
  HttpResponse no_header = TokenResponse("x", h.clock.Now() + 1h);
  no_header.headers.erase("X-Subject-Token");
  h.transport.Push(no_header);
  EXPECT_EQ(h.session.auth().GetToken().error().kind, ErrorKind::kParse);
  HttpResponse bad_time = TokenResponse("tok-abcdef", h.clock.Now() + 1h);
  bad_time.body = R"({"token":{"expires_at":"tomorrow","catalog":[]}})";
  h.transport.Push(bad_time);
  EXPECT_EQ(h.session.auth().GetToken().error().kind, ErrorKind::kParse);
}

TEST(KeystoneAuth, TokenNeverReachesTheLog) {
  log::ResetForTesting();
  std::string out;
  log::CaptureForTesting(&out);
  Harness h;
  h.transport.Push(TokenResponse("gAAAAABtoken-very-secret-value", h.clock.Now() + 1h));
  h.transport.Push(500, R"({"computeFault":{"message":"echo gAAAAABtoken-very-secret-value"}})");
  ASSERT_TRUE(h.session.auth().GetToken());
  auto r = h.session.Send({.service_type = "compute",
                           .method = "POST",
                           .path = "/servers",
                           .body = "{}",
                           .idempotent = false,
                           .what = "nova: create server"});
  ASSERT_FALSE(r);
  log::Warn("after", {{"error", r.error().message}});
  EXPECT_EQ(r.error().message.find("gAAAAABtoken-very-secret-value"), std::string::npos);
  EXPECT_EQ(out.find("gAAAAABtoken-very-secret-value"), std::string::npos) << out;
  log::ResetForTesting();
}

TEST(Catalog, FindsByTypeInterfaceAndRegion) {
  FakeClock clock;
  auto token = ParseTokenResponse(TokenResponse("tok-abcdef", TimePoint{} + 1h, "ru-moscow-1"));
  ASSERT_TRUE(token) << token.error().message;
  const auto& catalog = token->catalog;
  EXPECT_EQ(*FindEndpoint(catalog, "compute", "public", "ru-moscow-1"),
            "https://compute.example/v2.1");
  EXPECT_EQ(*FindEndpoint(catalog, "compute", "internal", ""), "http://compute.internal/v2.1");
  // Block storage is found under its newer type names too.
  EXPECT_EQ(*FindEndpoint(catalog, "block-storage", "public", "ru-moscow-1"),
            "https://volume.example/v3/p-42");
  auto missing = FindEndpoint(catalog, "compute", "public", "eu-west-0");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::kConfig);
  EXPECT_NE(missing.error().message.find("compute/public/ru-moscow-1"), std::string::npos)
      << missing.error().message;
}

TEST(Catalog, TwoRegionsWithoutARegionNameIsAnError) {
  std::vector<CatalogService> catalog{
      {"compute",
       "nova",
       {{"public", "r1", "https://a/v2.1"}, {"public", "r2", "https://b/v2.1"}}}};
  auto r = FindEndpoint(catalog, "compute", "public", "");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("region_name"), std::string::npos);
  EXPECT_EQ(*FindEndpoint(catalog, "compute", "public", "r2"), "https://b/v2.1");
}

TEST(Catalog, EndpointOverridesReplaceTheCatalogAndExpandTheProject) {
  OpenStackOptions o = PasswordOptions();
  o.endpoint_overrides["compute"] = "https://ecs.ru-moscow-1.hc.sbercloud.ru/v2.1/{project_id}/";
  o.endpoint_overrides["volumev3"] = "https://evs.ru-moscow-1.hc.sbercloud.ru/v3/%(project_id)s";
  Harness h(o);
  h.PushToken();
  EXPECT_EQ(*h.session.Endpoint("compute"), "https://ecs.ru-moscow-1.hc.sbercloud.ru/v2.1/p-42");
  EXPECT_EQ(*h.session.Endpoint("block-storage"),
            "https://evs.ru-moscow-1.hc.sbercloud.ru/v3/p-42");
  EXPECT_EQ(*h.session.Endpoint("dns"), "https://dns.example");
}

TEST(Errors, NovaCinderKeystoneDesignateAndApigBodies) {
  struct Case {
    int status;
    const char* body;
    HttpHeaders headers;
    ErrorKind kind;
    const char* message;
  };
  const Case cases[] = {
      {400,
       R"({"badRequest": {"message": "Invalid flavorRef provided.", "code": 400}})",
       {},
       ErrorKind::kBadRequest,
       "Invalid flavorRef provided."},
      {403,
       R"({"forbidden": {"message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances", "code": 403}})",
       {},
       ErrorKind::kQuota,
       "Quota exceeded for instances"},
      {413,
       R"({"overLimit": {"message": "VolumeLimitExceeded: Maximum number of volumes allowed (10) exceeded for quota 'volumes'.", "code": 413}})",
       {},
       ErrorKind::kQuota,
       "Maximum number of volumes"},
      // What the real Cinder 21 answers over quota (seen in tests/realcloud): Retry-After 0.
      {413,
       R"({"overLimit": {"code": 413, "message": "VolumeLimitExceeded: Maximum number of volumes allowed (3) exceeded for quota 'volumes'.", "retryAfter": "0"}})",
       {{"Retry-After", "0"}},
       ErrorKind::kQuota,
       "exceeded for quota"},
      {413,
       R"({"overLimit": {"code": 413, "message": "SnapshotLimitExceeded: Maximum number of snapshots allowed (10) exceeded", "retryAfter": "0"}})",
       {{"Retry-After", "0"}},
       ErrorKind::kQuota,
       "snapshots allowed"},
      {413,
       R"({"overLimit": {"message": "This request was rate-limited.", "code": 413}})",
       {{"Retry-After", "3"}},
       ErrorKind::kTransient,
       "rate-limited"},
      {404,
       R"({"itemNotFound": {"message": "Instance abc could not be found.", "code": 404}})",
       {},
       ErrorKind::kNotFound,
       "Instance abc could not be found."},
      {409,
       R"({"conflictingRequest": {"message": "Cannot 'delete' instance while it is in task_state deleting", "code": 409}})",
       {},
       ErrorKind::kConflict,
       "task_state deleting"},
      {429,
       R"({"error_code": "APIG.0308", "error_msg": "The request is throttled.", "request_id": "r1"})",
       {},
       ErrorKind::kTransient,
       "APIG.0308 The request is throttled."},
      {401,
       R"({"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}})",
       {},
       ErrorKind::kAuth,
       "requires authentication"},
      {404,
       R"({"code": 404, "type": "zone_not_found", "message": "Could not find Zone", "request_id": "req-1"})",
       {},
       ErrorKind::kNotFound,
       "Could not find Zone"},
      {503, "<html>Service Unavailable</html>", {}, ErrorKind::kTransient, "<html>"},
      {500,
       R"({"computeFault": {"message": "Unexpected API Error.", "code": 500}})",
       {{"X-Openstack-Request-Id", "req-77"}},
       ErrorKind::kTransient,
       "(request req-77)"},
  };
  for (const Case& c : cases) {
    Error e = ErrorFromResponse(HttpResponse{c.status, c.headers, c.body}, "test");
    EXPECT_EQ(e.kind, c.kind) << c.body;
    EXPECT_NE(e.message.find(c.message), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("HTTP " + std::to_string(c.status)), std::string::npos);
  }
}

// A scheduler that finds no room answers at once on some clouds: 500 or 409 with Nova's words.
TEST(Errors, NoValidHostIsCapacityNotTransientOrConflict) {
  const HttpResponse refused500{
      500,
      {},
      R"({"computeFault": {"message": "No valid host was found. There are not enough hosts available.", "code": 500}})"};
  Error e = ErrorFromResponse(refused500, "nova: create server main-r1");
  EXPECT_EQ(e.kind, ErrorKind::kCapacity);
  EXPECT_NE(e.message.find("No valid host was found"), std::string::npos) << e.message;

  const HttpResponse refused409{
      409, {}, R"({"conflictingRequest": {"message": "No valid host was found. ", "code": 409}})"};
  EXPECT_EQ(ErrorFromResponse(refused409, "nova: create server").kind, ErrorKind::kCapacity);

  const HttpResponse cinder{
      500,
      {},
      R"({"computeFault": {"message": "Insufficient free space for volume creation on host cinder@lvm#LVM", "code": 500}})"};
  EXPECT_EQ(ErrorFromResponse(cinder, "cinder: create volume").kind, ErrorKind::kCapacity);

  // Other 500s and 409s keep their kinds.
  const HttpResponse fault{
      500, {}, R"({"computeFault": {"message": "Unexpected API Error.", "code": 500}})"};
  EXPECT_EQ(ErrorFromResponse(fault, "nova").kind, ErrorKind::kTransient);
  const HttpResponse locked{
      409, {}, R"({"conflictingRequest": {"message": "Instance is locked", "code": 409}})"};
  EXPECT_EQ(ErrorFromResponse(locked, "nova").kind, ErrorKind::kConflict);
}

TEST(Errors, ServerFaultKindReadsNovaAndCinderFaults) {
  struct Case {
    const char* fault;
    ErrorKind kind;
  };
  for (const Case& c : {
           Case{"No valid host was found. There are not enough hosts available.",
                ErrorKind::kCapacity},
           Case{"no valid host was found", ErrorKind::kCapacity},
           Case{"No valid backend was found. Exceeded max scheduling attempts 3",
                ErrorKind::kCapacity},
           Case{"Insufficient free space for volume creation", ErrorKind::kCapacity},
           Case{"InsufficientInstanceCapacity: not enough capacity in az1", ErrorKind::kCapacity},
           Case{"Quota exceeded for cores: Requested 4, but already used 20 of 20 cores",
                ErrorKind::kQuota},
           Case{"VolumeSizeExceedsAvailableQuota: insufficient gigabytes quota", ErrorKind::kQuota},
           Case{"Build of instance abc aborted: Failed to allocate the network(s)",
                ErrorKind::kInternal},
           Case{"", ErrorKind::kInternal},
       }) {
    EXPECT_EQ(ServerFaultKind(c.fault), c.kind) << c.fault;
  }
}

TEST(Errors, RetryAfterSecondsAndHttpDate) {
  const TimePoint now = *ParseTimestamp("2026-11-21T04:43:30Z");
  EXPECT_EQ(*ParseRetryAfter("7", now), 7s);
  EXPECT_EQ(*ParseRetryAfter("Sat, 21 Nov 2026 04:43:40 GMT", now), 10s);
  EXPECT_EQ(*ParseRetryAfter("Sat, 21 Nov 2026 04:43:00 GMT", now), 0s);
  EXPECT_FALSE(ParseRetryAfter("", now));
  EXPECT_FALSE(ParseRetryAfter("soon", now));
  EXPECT_FALSE(ParseRetryAfter("-3", now));
  // Years are four digits: no overflow on the way to a time (UBSan aborts on one).
  EXPECT_FALSE(ParseRetryAfter("Sun, 06 Nov -2147483648 08:49:37 GMT", now));
  EXPECT_EQ(*ParseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", now), 24h * 365);
}

// A non-JSON body is cut to an excerpt; a secret straddling the cut must not survive as a prefix
// that redaction no longer recognises.
TEST(Errors, ASecretAcrossTheExcerptCutIsStillRedacted) {
  log::ResetForTesting();
  const Secret secret("very-secret-password-value");
  HttpResponse r{502, {}, std::string(185, 'x') + secret.Reveal() + std::string(100, 'y')};
  const Error e = ErrorFromResponse(r, "nova: get");
  EXPECT_EQ(e.message.find("very-secret-pas"), std::string::npos) << e.message;
  log::ResetForTesting();
}

}  // namespace
}  // namespace ra::openstack
