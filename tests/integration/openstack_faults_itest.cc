// The OpenStack client and CloudProvider against the simulator's injected faults: servers that
// go ERROR or stay in BUILD, failing volumes, quotas, throttling with Retry-After (Huawei's API
// gateway style too), 5xx, revoked tokens, endpoint overrides. No PostgreSQL here: the donor's
// volume is an empty directory, so servers boot nothing.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/sleeper.h"
#include "openstack/openstack_cloud_provider.h"
#include "openstack/session.h"
#include "tests/integration/openstack_harness.h"

namespace ra::testing {
namespace {

using namespace std::chrono_literals;
using openstack::OpenStackCloudProvider;
using openstack::ReplicaSpec;

constexpr const char* kDonorVolume = "4b1e0c7d-2a3f-4e5d-8c9b-0a1b2c3d4e5f";
constexpr const char* kNetwork = "6d0a3f7a-2b9c-4a5e-9a57-1f2e3d4c5b6a";

class OpenStackFaults : public ::testing::Test {
 protected:
  void StartCloud(bool sbercloud = false) {
    std::filesystem::create_directories(dir_.path() + "/donor");
    auto sim = CloudSim::Start({.root = dir_.path() + "/cloud",
                                .donor_dir = dir_.path() + "/donor",
                                .donor_address = "127.0.99.254",
                                .donor_volume_id = kDonorVolume,
                                .sbercloud = sbercloud});
    ASSERT_TRUE(sim) << sim.error().message;
    sim_ = std::move(*sim);
    Connect(sim_->ClientOptions());
  }

  void Connect(openstack::OpenStackOptions options) {
    options.retry.initial_backoff = 50ms;
    options.retry.max_backoff = 200ms;
    provider_.reset();
    session_ = std::make_unique<openstack::Session>(
        std::move(options), openstack::SessionDeps{transport_, clock_, sleeper_, nullptr});
    provider_ = std::make_unique<OpenStackCloudProvider>(*session_);
  }

  std::string Snapshot() {
    auto snap = provider_->SnapshotVolume("main", kDonorVolume, "golden");
    EXPECT_TRUE(snap) << snap.error().message;
    auto ready =
        openstack::WaitForSnapshot(*provider_, "main", snap->id, clock_, sleeper_, 30s, 50ms);
    EXPECT_TRUE(ready) << ready.error().message;
    return snap->id;
  }

  ReplicaSpec Spec(const std::string& name, const std::string& snapshot) {
    return ReplicaSpec{.cluster = "main",
                       .name = name,
                       .snapshot_id = snapshot,
                       .flavor_id = "2",
                       .image_id = "c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1e",
                       .network_ids = {kNetwork},
                       .user_data = R"({"primary_host":"127.0.0.1"})"};
  }

  void Fault(const nlohmann::json& body, const std::string& path = "/control/faults") {
    auto r = sim_->Control("POST", path, body.dump());
    ASSERT_TRUE(r) << r.error().message;
  }

  TempDir dir_{"ra-os-faults"};
  std::unique_ptr<CloudSim> sim_;
  CurlHttpTransport transport_;
  SystemClock clock_;
  RealSleeper sleeper_;
  std::unique_ptr<openstack::Session> session_;
  std::unique_ptr<OpenStackCloudProvider> provider_;
};

TEST_F(OpenStackFaults, AServerThatGoesErrorShowsNovasFaultAndIsCleanedUp) {
  StartCloud();
  Fault({{"match", "doomed"}, {"outcome", "error"}, {"fault", "No valid host was found. "}},
        "/control/servers");
  const std::string snap = Snapshot();
  auto r = openstack::CreateReplicaAndWait(*provider_, Spec("doomed-1", snap), clock_, sleeper_,
                                           30s, 50ms);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("No valid host was found"), std::string::npos)
      << r.error().message;
  auto listed = provider_->ListReplicas("main");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  ASSERT_TRUE((*listed)[0].server);
  EXPECT_EQ((*listed)[0].server->status, "ERROR");
  EXPECT_NE((*listed)[0].server->fault.find("No valid host"), std::string::npos);
  // The volume went back to available when the build failed, so teardown completes.
  ASSERT_TRUE(
      openstack::DeleteReplicaAndWait(*provider_, "main", "doomed-1", clock_, sleeper_, 30s, 50ms));
  EXPECT_TRUE(provider_->ListReplicas("main")->empty());
}

TEST_F(OpenStackFaults, AServerStuckInBuildTimesOutAndStaysVisible) {
  StartCloud();
  Fault({{"match", "stuck"}, {"outcome", "stuck"}}, "/control/servers");
  const std::string snap = Snapshot();
  auto r = openstack::CreateReplicaAndWait(*provider_, Spec("stuck-1", snap), clock_, sleeper_, 2s,
                                           50ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kTimeout);
  auto listed = provider_->ListReplicas("main");
  ASSERT_TRUE(listed && listed->size() == 1 && (*listed)[0].server);
  EXPECT_EQ((*listed)[0].server->status, "BUILD");
}

TEST_F(OpenStackFaults, AFailedVolumeIsReportedAndAnotherCallMakesANewOne) {
  StartCloud();
  Fault({{"match", "flaky"}, {"outcome", "error"}, {"count", 1}}, "/control/volumes");
  const std::string snap = Snapshot();
  auto r = openstack::CreateReplicaAndWait(*provider_, Spec("flaky-1", snap), clock_, sleeper_, 30s,
                                           50ms);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("went to error"), std::string::npos) << r.error().message;
  // A volume in error is not adopted: the next attempt creates a fresh one and succeeds.
  auto again = openstack::CreateReplicaAndWait(*provider_, Spec("flaky-1", snap), clock_, sleeper_,
                                               30s, 50ms);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->server->status, "ACTIVE");
}

TEST_F(OpenStackFaults, QuotasAreTypedWithTheCloudsOwnMessages) {
  StartCloud();
  const std::string snap = Snapshot();
  ASSERT_TRUE(sim_->Control("POST", "/control/quotas", R"({"volumes": 1})"));
  auto volume = provider_->CreateReplicaVolume(Spec("q-1", snap));
  ASSERT_FALSE(volume);  // the donor's volume already uses the only one
  EXPECT_EQ(volume.error().kind, ErrorKind::kQuota);
  EXPECT_NE(volume.error().message.find("VolumeLimitExceeded"), std::string::npos);

  ASSERT_TRUE(sim_->Control("POST", "/control/quotas", R"({"volumes": 10, "instances": 1})"));
  auto quota = provider_->RemainingQuota();
  ASSERT_TRUE(quota) << quota.error().message;
  EXPECT_EQ(quota->instances, 0);  // the donor's server
  EXPECT_EQ(quota->volumes, 9);
  auto v = provider_->CreateReplicaVolume(Spec("q-2", snap));
  ASSERT_TRUE(v) << v.error().message;
  auto blocked =
      openstack::CreateReplicaAndWait(*provider_, Spec("q-2", snap), clock_, sleeper_, 30s, 50ms);
  ASSERT_FALSE(blocked);
  EXPECT_EQ(blocked.error().kind, ErrorKind::kQuota);
  EXPECT_NE(blocked.error().message.find("Quota exceeded for instances"), std::string::npos)
      << blocked.error().message;
}

TEST_F(OpenStackFaults, ThrottlingIsRetriedAfterRetryAfterAndApigStyleToo) {
  StartCloud(/*sbercloud=*/true);
  Fault({{"op", "nova.list_servers"}, {"status", 429}, {"count", 1}, {"retry_after", 1}});
  const auto start = std::chrono::steady_clock::now();
  auto listed = provider_->ListReplicas("main");
  ASSERT_TRUE(listed) << listed.error().message;
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1s) << "Retry-After was not honoured";

  // Huawei's gateway without Retry-After: plain backoff, then success.
  Fault({{"op", "cinder.list_volumes"}, {"status", 429}, {"count", 2}});
  ASSERT_TRUE(provider_->ListReplicas("main"));

  // More failures than attempts: a transient error carrying the gateway's code.
  Fault({{"op", "nova.zones"}, {"status", 429}, {"count", 10}});
  auto zones = provider_->AvailabilityZones();
  ASSERT_FALSE(zones);
  EXPECT_EQ(zones.error().kind, ErrorKind::kTransient);
  EXPECT_NE(zones.error().message.find("APIG.0308"), std::string::npos) << zones.error().message;
}

TEST_F(OpenStackFaults, ServerErrorsAreRetriedForReadsOnly) {
  StartCloud();
  Fault({{"op", "nova.list_servers"}, {"status", 503}, {"count", 2}});
  ASSERT_TRUE(provider_->ListReplicas("main"));
  const std::string snap = Snapshot();
  auto volume = provider_->CreateReplicaVolume(Spec("p-1", snap));
  ASSERT_TRUE(volume);
  ASSERT_TRUE(
      openstack::CreateReplicaAndWait(*provider_, Spec("p-1", snap), clock_, sleeper_, 30s, 50ms));
  // A create that fails with 500 is not sent again: it may have been processed.
  Fault({{"op", "cinder.create_snapshot"}, {"status", 500}, {"count", 1}});
  auto failed = provider_->SnapshotVolume("main", kDonorVolume, "golden-2");
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().kind, ErrorKind::kTransient);
  auto requests = sim_->Control("GET", "/control/requests?service=volume");
  ASSERT_TRUE(requests);
  int snapshot_posts = 0;
  const nlohmann::json captured = nlohmann::json::parse(*requests);
  for (const auto& r : captured["requests"]) {
    if (r["method"] == "POST" && r["path"].get<std::string>().ends_with("/snapshots")) {
      ++snapshot_posts;
    }
  }
  EXPECT_EQ(snapshot_posts, 2);  // the first golden snapshot, and the failed one once
}

TEST_F(OpenStackFaults, RevokedTokensCauseExactlyOneReauthentication) {
  StartCloud();
  ASSERT_TRUE(provider_->ListReplicas("main"));
  EXPECT_EQ(session_->auth().authentications(), 1);
  ASSERT_TRUE(sim_->Control("POST", "/control/expire-tokens"));
  ASSERT_TRUE(provider_->ListReplicas("main"));
  EXPECT_EQ(session_->auth().authentications(), 2);

  // Wrong credentials are an auth error with Keystone's message, not retried.
  auto options = sim_->ClientOptions();
  options.auth.password = Secret("not-the-password");
  Connect(options);
  auto r = provider_->ListReplicas("main");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kAuth);
  EXPECT_NE(r.error().message.find("requires authentication"), std::string::npos);
  EXPECT_EQ(r.error().message.find("not-the-password"), std::string::npos);
}

TEST_F(OpenStackFaults, SberCloudStyleEndpointOverridesAndApplicationCredentials) {
  StartCloud(/*sbercloud=*/true);
  auto options = sim_->ClientOptions();
  options.auth = {};
  options.auth.type = openstack::AuthType::kApplicationCredential;
  options.auth.auth_url = sim_->auth_url();
  options.auth.application_credential_id = "ac-demo";
  options.auth.application_credential_secret = Secret("ac-demo-secret");
  options.endpoint_overrides["compute"] = sim_->base_url() + "/compute/v2.1/{project_id}";
  options.endpoint_overrides["volumev3"] = sim_->base_url() + "/volume/v3/$(project_id)s";
  Connect(options);
  const std::string snap = Snapshot();
  auto r = openstack::CreateReplicaAndWait(*provider_, Spec("sber-1", snap), clock_, sleeper_, 30s,
                                           50ms);
  ASSERT_TRUE(r) << r.error().message;
  auto project = session_->ProjectId();
  ASSERT_TRUE(project);
  EXPECT_EQ(*session_->Endpoint("compute"), sim_->base_url() + "/compute/v2.1/" + *project);
}

}  // namespace
}  // namespace ra::testing
