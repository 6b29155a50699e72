#include <gtest/gtest.h>

#include "openstack/session.h"
#include "openstack_test_support.h"

namespace ra::openstack {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using testing::PasswordOptions;
using testing::TokenResponse;

ServiceRequest Get(const std::string& path) {
  return {.service_type = "compute", .path = path, .what = "nova: get"};
}

ServiceRequest Post(const std::string& path) {
  return {.service_type = "compute",
          .method = "POST",
          .path = path,
          .body = "{}",
          .idempotent = false,
          .what = "nova: post"};
}

TEST(Session, SendsTokenAndBothComputeMicroversionHeaders) {
  Harness h;
  h.PushToken("gAAAAAB-token-one");
  h.transport.Push(200, R"({"servers": []})");
  auto r = h.session.Send(Get("/servers/detail?tags=a"));
  ASSERT_TRUE(r) << r.error().message;
  auto requests = h.transport.requests();
  ASSERT_EQ(requests.size(), 2u);
  const HttpRequest& call = requests[1];
  EXPECT_EQ(call.url, "https://compute.example/v2.1/servers/detail?tags=a");
  EXPECT_EQ(call.headers.at("x-auth-token"), "gAAAAAB-token-one");
  EXPECT_EQ(call.headers.at("X-OpenStack-Nova-API-Version"), "2.52");
  EXPECT_EQ(call.headers.at("OpenStack-API-Version"), "compute 2.52");
}

TEST(Session, ObserverSeesEveryExchangeWithItsStatus) {
  Harness h;
  std::vector<RequestRecord> seen;
  h.session.SetObserver([&](const RequestRecord& r) { seen.push_back(r); });
  h.PushToken();
  h.transport.Push(503, "");
  h.transport.Push(Fail(ErrorKind::kTransient, "connection reset"));
  h.transport.Push(200, "{}");
  ASSERT_TRUE(h.session.Send(Get("/servers")));
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].status, 503);
  EXPECT_EQ(seen[1].status, 0);
  EXPECT_EQ(seen[2].status, 200);
  EXPECT_EQ(seen[2].attempt, 3);
  EXPECT_EQ(seen[2].service_type, "compute");
  EXPECT_EQ(seen[2].what, "nova: get");
}

TEST(Session, VolumeMicroversionHeader) {
  Harness h;
  h.PushToken();
  h.transport.Push(200, R"({"volumes": []})");
  ASSERT_TRUE(h.session.Send({.service_type = "block-storage", .path = "/volumes", .what = "c"}));
  const HttpRequest call = h.transport.requests()[1];
  EXPECT_EQ(call.url, "https://volume.example/v3/p-42/volumes");
  EXPECT_EQ(call.headers.at("OpenStack-API-Version"), "volume 3.22");
  EXPECT_EQ(call.headers.count("X-OpenStack-Nova-API-Version"), 0u);
}

TEST(Session, ReauthenticatesExactlyOnceOn401) {
  Harness h;
  h.PushToken("tok-old-abcdef");
  h.transport.Push(401, R"({"error": {"code": 401, "message": "The token is expired"}})");
  h.PushToken("tok-new-abcdef");
  h.transport.Push(200, "{}");
  ASSERT_TRUE(h.session.Send(Get("/servers")));
  auto requests = h.transport.requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[3].headers.at("X-Auth-Token"), "tok-new-abcdef");
  EXPECT_EQ(h.session.auth().authentications(), 2);
  EXPECT_TRUE(h.sleeper.sleeps.empty());
}

TEST(Session, A401AfterReauthenticationIsAnAuthError) {
  Harness h;
  h.PushToken("tok-old-abcdef");
  h.transport.Push(401, R"({"error": {"code": 401, "message": "expired"}})");
  h.PushToken("tok-new-abcdef");
  h.transport.Push(401, R"({"error": {"code": 401, "message": "still no"}})");
  auto r = h.session.Send(Get("/servers"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kAuth);
  EXPECT_EQ(h.transport.requests().size(), 4u) << "no third authentication";
}

TEST(Session, RetriesIdempotentCallsOn5xxWithGrowingBackoff) {
  Harness h;
  h.PushToken();
  h.transport.Push(503, "");
  h.transport.Push(Fail(ErrorKind::kTransient, "connection refused"));
  h.transport.Push(502, "<html>bad gateway</html>");
  h.transport.Push(200, "{}");
  auto r = h.session.Send(Get("/servers"));
  ASSERT_TRUE(r) << r.error().message;
  // Jitter is fixed at 0: half of 500ms, 1s, 2s.
  EXPECT_EQ(h.sleeper.sleeps, (std::vector<Duration>{250ms, 500ms, 1000ms}));
}

TEST(Session, GivesUpAfterMaxAttempts) {
  OpenStackOptions o = PasswordOptions();
  o.retry.max_attempts = 3;
  Harness h(o);
  h.PushToken();
  for (int i = 0; i < 3; ++i) h.transport.Push(500, R"({"computeFault":{"message":"boom"}})");
  auto r = h.session.Send(Get("/servers"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kTransient);
  EXPECT_NE(r.error().message.find("boom"), std::string::npos);
  EXPECT_NE(r.error().message.find("3 attempts"), std::string::npos);
  EXPECT_EQ(h.transport.requests().size(), 4u);
}

TEST(Session, StopsRetryingWhenTheTimeBudgetIsSpent) {
  OpenStackOptions o = PasswordOptions();
  o.retry.max_elapsed = 1s;
  o.retry.initial_backoff = 800ms;
  Harness h(o);
  h.PushToken();
  for (int i = 0; i < 5; ++i) h.transport.Push(503, "");
  auto r = h.session.Send(Get("/servers"));
  ASSERT_FALSE(r);
  // The second attempt starts 400ms in, the third would start at 1200ms: past the budget.
  EXPECT_EQ(h.transport.requests().size(), 1u + 2u);
  EXPECT_NE(r.error().message.find("after 2 attempts"), std::string::npos) << r.error().message;
}

TEST(Session, PostIsNotRetriedOn500ButIsOn429WithRetryAfter) {
  Harness h;
  h.PushToken();
  h.transport.Push(500, R"({"computeFault":{"message":"Unexpected API Error."}})");
  auto r = h.session.Send(Post("/servers"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kTransient);
  EXPECT_EQ(h.transport.requests().size(), 2u);

  h.transport.Push(429, R"({"error_code":"APIG.0308","error_msg":"The request is throttled."})",
                   {{"Retry-After", "7"}});
  h.transport.Push(202, R"({"server":{"id":"s1"}})");
  ASSERT_TRUE(h.session.Send(Post("/servers")));
  EXPECT_EQ(h.sleeper.sleeps, (std::vector<Duration>{7s}));
}

TEST(Session, HonoursRetryAfterOn413And503) {
  Harness h;
  h.PushToken();
  h.transport.Push(413, R"({"overLimit":{"message":"rate-limited","code":413}})",
                   {{"Retry-After", "4"}});
  h.transport.Push(503, "", {{"Retry-After", "2"}});
  h.transport.Push(200, "{}");
  ASSERT_TRUE(h.session.Send(Get("/servers")));
  EXPECT_EQ(h.sleeper.sleeps, (std::vector<Duration>{4s, 2s}));
}

TEST(Session, ARetryAfterBeyondTheLimitFailsAtOnce) {
  Harness h;
  h.PushToken();
  h.transport.Push(429, R"({"error_code":"APIG.0308","error_msg":"throttled"})",
                   {{"Retry-After", "3600"}});
  auto r = h.session.Send(Get("/servers"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kTransient);
  EXPECT_NE(r.error().message.find("exceeds"), std::string::npos);
  EXPECT_TRUE(h.sleeper.sleeps.empty());
}

TEST(Session, QuotaAndBadRequestAreNotRetried) {
  Harness h;
  h.PushToken();
  h.transport.Push(403, R"({"forbidden":{"message":"Quota exceeded for cores","code":403}})");
  EXPECT_EQ(h.session.Send(Get("/x")).error().kind, ErrorKind::kQuota);
  h.transport.Push(400, R"({"badRequest":{"message":"Invalid input","code":400}})");
  EXPECT_EQ(h.session.Send(Get("/x")).error().kind, ErrorKind::kBadRequest);
  EXPECT_TRUE(h.sleeper.sleeps.empty());
}

TEST(Session, NoValidHostIsNotRetriedEvenWhenIdempotent) {
  Harness h;
  h.PushToken();
  h.transport.Push(500, R"({"computeFault":{"message":"No valid host was found. ","code":500}})");
  EXPECT_EQ(h.session.Send(Get("/x")).error().kind, ErrorKind::kCapacity);
  EXPECT_TRUE(h.sleeper.sleeps.empty());
}

TEST(Session, TimeoutOfAPostIsNotResent) {
  Harness h;
  h.PushToken();
  h.transport.Push(Fail(ErrorKind::kTimeout, "Operation timed out after 30000 milliseconds"));
  auto r = h.session.Send(Post("/servers"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kTimeout);
  EXPECT_EQ(h.transport.requests().size(), 2u);
}

TEST(RateLimiter, SessionWaitsForTheLimiter) {
  OpenStackOptions o = PasswordOptions();
  o.requests_per_second = 1;
  o.burst = 1;
  Harness h(o);
  h.PushToken();
  h.transport.Push(200, "{}");
  h.transport.Push(200, "{}");
  ASSERT_TRUE(h.session.Send(Get("/a")));
  ASSERT_TRUE(h.session.Send(Get("/b")));
  EXPECT_EQ(h.sleeper.sleeps.back(), 1s);
}

// A connection reset or an empty reply can come after the cloud received the POST: resending it
// could boot a second server, so a failed transport is final for a non-idempotent call.
TEST(Session, PostIsNotResentAfterAConnectionFailure) {
  Harness h;
  h.PushToken();
  h.transport.Push(Fail(ErrorKind::kTransient, "Recv failure: Connection reset by peer"));
  h.transport.Push(202, R"({"server":{"id":"s1"}})");
  auto r = h.session.Send(Post("/servers"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kTransient);
  EXPECT_EQ(h.transport.requests().size(), 2u);  // the token and one POST
  EXPECT_TRUE(h.sleeper.sleeps.empty());
}

// The last attempt's failure is returned at once: a backoff after it delays the caller for no
// retry at all.
TEST(Session, NoBackoffAfterTheLastAttempt) {
  OpenStackOptions o = PasswordOptions();
  o.retry.max_attempts = 2;
  {
    Harness h(o);
    h.PushToken();
    for (int i = 0; i < 2; ++i) h.transport.Push(Fail(ErrorKind::kTransient, "refused"));
    ASSERT_FALSE(h.session.Send(Get("/servers")));
    EXPECT_EQ(h.sleeper.sleeps, (std::vector<Duration>{250ms}));
  }
  {
    Harness h(o);  // Keystone itself is unavailable
    for (int i = 0; i < 2; ++i) h.transport.Push(503, "");
    ASSERT_FALSE(h.session.Send(Get("/servers")));
    EXPECT_EQ(h.sleeper.sleeps, (std::vector<Duration>{250ms}));
  }
}

// An HTTP date far in the future is a very long wait, not a wait of zero.
TEST(Session, AFarFutureRetryAfterDateFailsAtOnce) {
  Harness h;
  h.PushToken();
  h.transport.Push(429, R"({"error_code":"APIG.0308","error_msg":"throttled"})",
                   {{"Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"}});
  h.transport.Push(200, "{}");
  auto r = h.session.Send(Get("/servers"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("exceeds"), std::string::npos) << r.error().message;
  EXPECT_TRUE(h.sleeper.sleeps.empty());
}

}  // namespace
}  // namespace ra::openstack
