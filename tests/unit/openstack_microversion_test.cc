#include <gtest/gtest.h>

#include "openstack/microversion.h"
#include "openstack_test_support.h"

namespace ra::openstack {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using testing::PasswordOptions;

// Nova's GET /v2.1/ and Cinder's GET /v3/, as nova/api/openstack/compute/versionsV21.py and
// cinder/api/versions.py answer them (Zed: 2.93 and 3.70).
constexpr const char* kNovaDocument = R"({"version": {"id": "v2.1", "status": "CURRENT",
    "version": "2.93", "min_version": "2.1", "updated": "2013-07-23T11:33:21Z", "links": []}})";
constexpr const char* kCinderDocument = R"({"versions": [{"id": "v3.0", "status": "CURRENT",
    "version": "3.70", "min_version": "3.0", "updated": "2023-08-31T00:00:00Z", "links": []}]})";

TEST(Microversion, Parses) {
  EXPECT_EQ(ParseMicroversion("2.52"), std::make_pair(2, 52));
  EXPECT_EQ(ParseMicroversion("3.0"), std::make_pair(3, 0));
  for (const char* bad : {"", "2", "2.", ".5", "2.x", "latest", "2.52.1", " 2.52"}) {
    EXPECT_FALSE(ParseMicroversion(bad)) << bad;
  }
}

TEST(Microversion, TheVersionDocumentIsTheEndpointCutAfterItsVersion) {
  EXPECT_EQ(**VersionDocumentUrl("https://nova.example/v2.1", true), "https://nova.example/v2.1/");
  EXPECT_EQ(**VersionDocumentUrl("https://ecs.example/v2.1/p-1", true),
            "https://ecs.example/v2.1/");
  EXPECT_EQ(**VersionDocumentUrl("https://c.example/volume/v3/p-1", false),
            "https://c.example/volume/v3/");
  EXPECT_FALSE(*VersionDocumentUrl("https://c.example/compute", true));
  // "/v3" must be a whole path segment.
  EXPECT_FALSE(*VersionDocumentUrl("https://c.example/v30/p", false));
  auto legacy = VersionDocumentUrl("https://nova.example/v2/p-1", true);
  ASSERT_FALSE(legacy);
  EXPECT_EQ(legacy.error().kind, ErrorKind::kConfig);
}

TEST(Microversion, TheLeastThatHasEveryFeatureIsChosen) {
  EXPECT_EQ(*ChooseMicroversion(kNovaDocument, true, kComputeNeed, "u"), "2.52");
  EXPECT_EQ(*ChooseMicroversion(kCinderDocument, false, kVolumeNeed, "u"), "3.22");
  // A service whose oldest microversion is newer than what is needed: its oldest.
  EXPECT_EQ(*ChooseMicroversion(R"({"version": {"version": "2.95", "min_version": "2.60"}})", true,
                                kComputeNeed, "u"),
            "2.60");
}

TEST(Microversion, AServiceThatCannotGiveItIsRefusedByName) {
  auto old = ChooseMicroversion(R"({"version": {"version": "2.40", "min_version": "2.1"}})", true,
                                kComputeNeed, "https://nova.example/v2.1/");
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().kind, ErrorKind::kConfig);
  EXPECT_NE(old.error().message.find("2.1 to 2.40"), std::string::npos) << old.error().message;
  EXPECT_NE(old.error().message.find("needs 2.52"), std::string::npos);
  auto none = ChooseMicroversion(R"({"version": {"version": "", "min_version": ""}})", true,
                                 kComputeNeed, "u");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, ErrorKind::kConfig);
  EXPECT_EQ(ChooseMicroversion("<html>", true, kComputeNeed, "u").error().kind, ErrorKind::kParse);
  EXPECT_EQ(ChooseMicroversion(R"({"other": 1})", false, kVolumeNeed, "u").error().kind,
            ErrorKind::kParse);
}

OpenStackOptions Negotiating() {
  OpenStackOptions o = PasswordOptions();
  o.compute_microversion.clear();
  o.volume_microversion.clear();
  return o;
}

TEST(SessionMicroversion, NegotiatedOnceFromTheVersionDocumentThenSentOnEveryCall) {
  Harness h(Negotiating());
  h.PushToken();
  h.transport.Push(200, kNovaDocument);
  h.transport.Push(200, R"({"servers": []})");
  h.transport.Push(200, R"({"servers": []})");
  ASSERT_TRUE(h.session.Send({.service_type = "compute", .path = "/servers"}));
  ASSERT_TRUE(h.session.Send({.service_type = "compute", .path = "/servers"}));
  const auto requests = h.transport.requests();
  ASSERT_EQ(requests.size(), 4u) << "token, version document, two calls";
  EXPECT_EQ(requests[1].url, "https://compute.example/v2.1/");
  EXPECT_EQ(requests[1].headers.at("X-Auth-Token"), "gAAAAAB-token-one");
  for (size_t i : {2u, 3u}) {
    EXPECT_EQ(requests[i].headers.at("OpenStack-API-Version"), "compute 2.52");
    EXPECT_EQ(requests[i].headers.at("X-OpenStack-Nova-API-Version"), "2.52");
  }
}

TEST(SessionMicroversion, ACloudTooOldForTheClientFailsEveryCallWithItsRange) {
  Harness h(Negotiating());
  h.PushToken();
  h.transport.Push(200, R"({"version": {"version": "2.38", "min_version": "2.1"}})");
  auto r = h.session.Send({.service_type = "compute", .path = "/servers"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kConfig);
  EXPECT_NE(r.error().message.find("2.38"), std::string::npos);
  EXPECT_EQ(h.transport.requests().size(), 2u) << "the call itself is never sent";
}

TEST(SessionMicroversion, NoVersionDocumentMeansTheLeastNeededIsSent) {
  Harness h(Negotiating());
  h.PushToken();
  h.transport.Push(404, "<html>not here</html>");
  h.transport.Push(200, R"({"volumes": []})");
  ASSERT_TRUE(h.session.Send({.service_type = "block-storage", .path = "/volumes"}));
  EXPECT_EQ(h.transport.requests().back().headers.at("OpenStack-API-Version"), "volume 3.22");
}

TEST(SessionMicroversion, AFailedReadOfTheDocumentIsRetriedLikeAnyCall) {
  Harness h(Negotiating());
  h.PushToken();
  h.transport.Push(503, "busy");
  h.transport.Push(200, kCinderDocument);
  h.transport.Push(200, R"({"volumes": []})");
  ASSERT_TRUE(h.session.Send({.service_type = "block-storage", .path = "/volumes"}));
  EXPECT_EQ(h.transport.requests().back().headers.at("OpenStack-API-Version"), "volume 3.22");
}

TEST(SessionMicroversion, APinIsSentAsConfiguredWithoutAsking) {
  OpenStackOptions o = Negotiating();
  o.compute_microversion = "2.60";
  Harness h(o);
  h.PushToken();
  h.transport.Push(200, R"({"servers": []})");
  ASSERT_TRUE(h.session.Send({.service_type = "compute", .path = "/servers"}));
  ASSERT_EQ(h.transport.requests().size(), 2u);
  EXPECT_EQ(h.transport.requests()[1].headers.at("OpenStack-API-Version"), "compute 2.60");
}

}  // namespace
}  // namespace ra::openstack
