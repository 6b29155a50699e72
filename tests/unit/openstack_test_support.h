#pragma once

// Shared by the openstack_*_test.cc files: recorded Keystone answers, and a session wired to a
// FakeHttpTransport and a FakeSleeper (testing/).

// Requests and specs are written with designated initializers that leave defaults out on
// purpose; GCC 12 warns about every omitted member even then (clang does not).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/duration.h"
#include "openstack/session.h"
#include "testing/fake_http_transport.h"
#include "testing/fake_sleeper.h"

namespace ra::openstack::testing {

using namespace std::chrono_literals;

inline TimePoint Start() { return TimePoint{} + std::chrono::hours(24 * 365 * 56); }  // ~2026

/// A Keystone v3 POST /v3/auth/tokens answer as a real cloud sends it (trimmed catalog).
inline HttpResponse TokenResponse(const std::string& token, TimePoint expires_at,
                                  const std::string& region = "RegionOne") {
  const std::string expires = FormatTime(expires_at);
  std::string body =
      R"({"token": {"methods": ["password"],
    "user": {"domain": {"id": "default", "name": "Default"}, "id": "u-1", "name": "demo",
             "password_expires_at": null},
    "audit_ids": ["3T2dc1CGQxyJsHdDu1xkcw"], "expires_at": ")" +
      expires.substr(0, expires.size() - 1) + R"(000Z",
    "issued_at": "2026-01-01T00:00:00.000000Z",
    "project": {"domain": {"id": "default", "name": "Default"}, "id": "p-42", "name": "demo"},
    "is_domain": false, "roles": [{"id": "r1", "name": "member"}],
    "catalog": [
      {"endpoints": [
         {"id": "e1", "interface": "public", "region_id": ")" +
      region + R"(", "url": "https://compute.example/v2.1", "region": ")" + region + R"("},
         {"id": "e2", "interface": "internal", "region_id": ")" +
      region + R"(", "url": "http://compute.internal/v2.1", "region": ")" + region + R"("}],
       "id": "s1", "type": "compute", "name": "nova"},
      {"endpoints": [
         {"id": "e3", "interface": "public", "region_id": ")" +
      region + R"(", "url": "https://volume.example/v3/p-42", "region": ")" + region + R"("}],
       "id": "s2", "type": "volumev3", "name": "cinderv3"},
      {"endpoints": [
         {"id": "e4", "interface": "public", "region_id": ")" +
      region + R"(", "url": "https://dns.example/", "region": ")" + region +
      R"("}],
       "id": "s3", "type": "dns", "name": "designate"}]}})";
  HttpResponse r;
  r.status = 201;
  r.headers["X-Subject-Token"] = token;
  r.headers["Content-Type"] = "application/json";
  r.body = body;
  return r;
}

inline OpenStackOptions PasswordOptions() {
  OpenStackOptions o;
  o.auth.auth_url = "https://keystone.example:5000";
  o.auth.username = "demo";
  o.auth.password = Secret("s3cret-password");
  o.auth.user_domain_name = "Default";
  o.auth.project_name = "demo";
  o.region_name = "RegionOne";
  o.requests_per_second = 0;
  // Pinned, so that scripted answers need no version documents; negotiation has its own tests
  // (openstack_microversion_test.cc).
  o.compute_microversion = "2.52";
  o.volume_microversion = "3.22";
  return o;
}

/// A session over a FakeHttpTransport with a FakeClock, a FakeSleeper and jitter fixed at 0.
struct Harness {
  explicit Harness(OpenStackOptions options = PasswordOptions())
      : clock(Start()),
        sleeper(clock),
        session(std::move(options), SessionDeps{transport, clock, sleeper, [] { return 0.0; }}) {}

  /// Queues a token answer valid for an hour.
  void PushToken(const std::string& token = "gAAAAAB-token-one") {
    transport.Push(TokenResponse(token, clock.Now() + 1h));
  }

  ra::testing::FakeHttpTransport transport;
  FakeClock clock;
  ra::testing::FakeSleeper sleeper;
  Session session;
};

inline nlohmann::json BodyOf(const HttpRequest& r) { return nlohmann::json::parse(r.body); }

}  // namespace ra::openstack::testing
