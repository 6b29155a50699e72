// The OpenStack client against the real Keystone, Nova, Cinder and Glance from Debian's packages
// (tests/realcloud/openstack.sh starts them; tests/realcloud/run.sh runs this with
// RA_REALCLOUD_ENV set to the openstack.env it writes). Nothing here is a double: what these
// tests assert is what the real services answered.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "core/http_transport.h"
#include "core/sleeper.h"
#include "openstack/cinder.h"
#include "openstack/nova.h"
#include "openstack/openstack_cloud_provider.h"
#include "openstack/resolver.h"
#include "openstack/session.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace ra::openstack {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::testing::HasSubstr;

std::map<std::string, std::string> ReadEnv() {
  std::map<std::string, std::string> env;
  const char* path = std::getenv("RA_REALCLOUD_ENV");
  if (path == nullptr) return env;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    std::string key = line.substr(0, eq);
    if (key.rfind("export ", 0) == 0) key = key.substr(7);
    std::string value = line.substr(eq + 1);
    if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"')) {
      value = value.substr(1, value.size() - 2);
    }
    env[key] = value;
  }
  return env;
}

const std::map<std::string, std::string>& Env() {
  static const auto env = ReadEnv();
  return env;
}

std::string Get(const std::string& key) {
  auto it = Env().find(key);
  return it == Env().end() ? "" : it->second;
}

OpenStackOptions UserOptions() {
  OpenStackOptions o;
  o.auth.auth_url = Get("OS_AUTH_URL");
  o.auth.username = Get("OS_USERNAME");
  o.auth.password = Secret(Get("OS_PASSWORD"));
  o.auth.user_domain_name =
      Get("OS_USER_DOMAIN_NAME").empty() ? "Default" : Get("OS_USER_DOMAIN_NAME");
  o.auth.project_name = Get("OS_PROJECT_NAME");
  o.auth.project_domain_name =
      Get("OS_PROJECT_DOMAIN_NAME").empty() ? "Default" : Get("OS_PROJECT_DOMAIN_NAME");
  o.region_name = Get("OS_REGION_NAME");
  o.retry.initial_backoff = 200ms;
  o.retry.max_backoff = 2s;
  o.requests_per_second = 0;
  return o;
}

OpenStackOptions AdminOptions() {
  OpenStackOptions o = UserOptions();
  o.auth.username = Get("RA_ADMIN_USERNAME");
  o.auth.password = Secret(Get("RA_ADMIN_PASSWORD"));
  o.auth.project_name = Get("RA_ADMIN_PROJECT");
  return o;
}

class RealCloud : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_FALSE(Env().empty())
        << "RA_REALCLOUD_ENV must name the openstack.env of a running cloud "
           "(tests/realcloud/run.sh starts one)";
  }

  void SetUp() override {
    ASSERT_FALSE(Env().empty());
    session_ = MakeSession(UserOptions());
    admin_ = MakeSession(AdminOptions());
    provider_ = std::make_unique<OpenStackCloudProvider>(*session_);
    cluster_ = "rc" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() %
                                     1000000);
  }

  void TearDown() override {
    // Whatever a test made goes, server first; bounded.
    for (const std::string& id : servers_) NovaClient(*session_).DeleteServer(id);
    for (const std::string& id : servers_) WaitGone("compute", "/servers/" + id);
    auto replicas = provider_->ListReplicas(cluster_);
    if (replicas) {
      for (const auto& r : *replicas) {
        (void)DeleteReplicaAndWait(*provider_, cluster_, r.name, clock_, sleeper_, 120s, 500ms);
      }
    }
    for (const std::string& id : volumes_) {
      WaitVolume(id, {"available", "error"}, 60s);
      CinderClient(*session_).DeleteVolume(id);
    }
    if (auto snaps = provider_->ListSnapshots(cluster_); snaps) {
      for (const auto& s : *snaps) {
        for (int i = 0; i < 60; ++i) {
          if (provider_->DeleteSnapshot(s.id)) break;
          std::this_thread::sleep_for(1s);
        }
      }
    }
  }

  std::unique_ptr<Session> MakeSession(OpenStackOptions o) {
    return std::make_unique<Session>(std::move(o), SessionDeps{transport_, clock_, sleeper_});
  }

  Result<json> Call(Session& s, const std::string& service, const std::string& method,
                    const std::string& path, const json& body = nullptr) {
    auto r = s.Send({.service_type = service,
                     .method = method,
                     .path = path,
                     .body = body.is_null() ? "" : body.dump(),
                     .idempotent = method != "POST",
                     .what = "test: " + method + " " + path});
    if (!r) return Fail(r.error());
    if (r->body.empty()) return json();
    return json::parse(r->body, nullptr, false);
  }

  void WaitGone(const std::string& service, const std::string& path) {
    for (int i = 0; i < 240; ++i) {
      auto r = Call(*session_, service, "GET", path);
      if (!r && r.error().kind == ErrorKind::kNotFound) return;
      std::this_thread::sleep_for(250ms);
    }
    ADD_FAILURE() << path << " still there";
  }

  std::string WaitVolume(const std::string& id, std::vector<std::string> wanted,
                         Duration timeout = 90s) {
    std::string status;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto v = CinderClient(*session_).GetVolume(id);
      if (!v && v.error().kind == ErrorKind::kNotFound) return "gone";
      if (v) status = v->status;
      if (std::find(wanted.begin(), wanted.end(), status) != wanted.end()) return status;
      std::this_thread::sleep_for(250ms);
    }
    return status;
  }

  // A blank data volume attached beside the image on a server of its own: the donor replica.
  std::string MakeDonor() {
    auto volume = Call(*session_, "block-storage", "POST", "/volumes",
                       {{"volume",
                         {{"size", 1},
                          {"name", cluster_ + "-donor-data"},
                          {"availability_zone", Get("RA_AVAILABILITY_ZONE")}}}});
    EXPECT_TRUE(volume) << volume.error().message;
    if (!volume) return "";
    const std::string volume_id = (*volume)["volume"]["id"];
    volumes_.push_back(volume_id);
    EXPECT_EQ(WaitVolume(volume_id, {"available"}), "available");
    NovaClient nova(*session_);
    auto server = nova.CreateServer({.name = cluster_ + "-donor",
                                     .flavor_ref = Get("RA_FLAVOR_ID"),
                                     .image_ref = Get("RA_IMAGE_ID"),
                                     .data_volume_id = volume_id,
                                     .without_network = true,
                                     .availability_zone = Get("RA_AVAILABILITY_ZONE")});
    EXPECT_TRUE(server) << server.error().message;
    if (!server) return "";
    servers_.push_back(server->id);
    EXPECT_EQ(WaitVolume(volume_id, {"in-use"}), "in-use");
    return volume_id;
  }

  ReplicaSpec Spec(const std::string& name, const std::string& snapshot_id) {
    return ReplicaSpec{.cluster = cluster_,
                       .name = name,
                       .snapshot_id = snapshot_id,
                       .availability_zone = Get("RA_AVAILABILITY_ZONE"),
                       .flavor_id = Get("RA_FLAVOR_ID"),
                       .image_id = Get("RA_IMAGE_ID"),
                       .without_network = true,
                       .metadata = {{"purpose", "contract"}},
                       .user_data = R"({"primary_host":"127.0.0.1"})"};
  }

  void SetQuota(const std::string& service, const std::string& key, int value) {
    auto project = session_->ProjectId();
    ASSERT_TRUE(project);
    auto r = Call(*admin_, service, "PUT", "/os-quota-sets/" + *project,
                  {{"quota_set", {{key, value}}}});
    ASSERT_TRUE(r) << r.error().message;
  }

  CurlHttpTransport transport_{HttpOptions{}};
  SystemClock clock_;
  RealSleeper sleeper_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<Session> admin_;
  std::unique_ptr<OpenStackCloudProvider> provider_;
  std::string cluster_;
  std::vector<std::string> servers_;
  std::vector<std::string> volumes_;
};

TEST_F(RealCloud, PasswordAndApplicationCredentialsBothGetTheCatalog) {
  std::printf("services: nova %s, cinder %s, keystone %s, glance %s, placement %s\n",
              Get("RA_VERSION_NOVA").c_str(), Get("RA_VERSION_CINDER").c_str(),
              Get("RA_VERSION_KEYSTONE").c_str(), Get("RA_VERSION_GLANCE").c_str(),
              Get("RA_VERSION_PLACEMENT").c_str());
  for (const std::string service : {"compute", "block-storage", "image"}) {
    auto url = session_->Endpoint(service);
    EXPECT_TRUE(url) << service << ": " << url.error().message;
  }
  OpenStackOptions app = UserOptions();
  app.auth = AuthOptions{.type = AuthType::kApplicationCredential,
                         .auth_url = Get("OS_AUTH_URL"),
                         .application_credential_id = Get("RA_APP_CRED_ID"),
                         .application_credential_secret = Secret(Get("RA_APP_CRED_SECRET"))};
  auto by_app = MakeSession(app);
  auto project = by_app->ProjectId();
  ASSERT_TRUE(project) << project.error().message;
  EXPECT_EQ(*project, *session_->ProjectId()) << "the credential is scoped to the user's project";
  OpenStackCloudProvider provider(*by_app);
  auto zones = provider.AvailabilityZones();
  ASSERT_TRUE(zones) << zones.error().message;
  EXPECT_THAT(*zones, ::testing::Contains(Get("RA_AVAILABILITY_ZONE")));

  OpenStackOptions wrong = UserOptions();
  wrong.auth.password = Secret("not-the-password");
  auto refused = MakeSession(wrong)->ProjectId();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::kAuth);
  EXPECT_THAT(refused.error().message, ::testing::Not(HasSubstr("not-the-password")));
}

// Tokens are renewed from Keystone's own expires_at, before they expire. (Revoking a token is no
// way to test the 401 path here: Nova's keystonemiddleware caches a validated token for
// token_cache_time, 300 s by default, and keeps accepting it; the simulator refuses at once.)
TEST_F(RealCloud, ATokenIsRenewedBeforeKeystonesExpiry) {
  const int lifetime = std::atoi(Get("RA_TOKEN_EXPIRATION").c_str());
  ASSERT_GT(lifetime, 10) << "RA_TOKEN_EXPIRATION";
  OpenStackOptions o = UserOptions();
  // Renewal due 15 s after issue: long enough for the first calls on a loaded machine.
  const auto margin = std::chrono::seconds(lifetime - 15);
  o.token_refresh_margin = margin;
  auto session = MakeSession(o);
  OpenStackCloudProvider provider(*session);
  ASSERT_TRUE(provider.AvailabilityZones());
  auto first = session->auth().GetToken();
  ASSERT_TRUE(first);
  const auto left = (*first)->expires_at - clock_.Now();
  EXPECT_GT(left, std::chrono::seconds(lifetime - 60)) << "expires_at is read from Keystone";
  EXPECT_LE(left, std::chrono::seconds(lifetime + 5));
  const int before = session->auth().authentications();
  const auto due =
      std::chrono::duration_cast<Duration>((*first)->expires_at - margin - clock_.Now());
  std::this_thread::sleep_for(std::clamp<Duration>(due + 1s, Duration(0), Duration(20s)));
  auto zones = provider.AvailabilityZones();
  ASSERT_TRUE(zones) << zones.error().message;
  EXPECT_EQ(session->auth().authentications(), before + 1)
      << "renewed once inside the margin, before expiry, without a 401";
}

TEST_F(RealCloud, MicroversionsAreNegotiatedFromTheVersionDocuments) {
  auto compute = session_->Microversion("compute");
  ASSERT_TRUE(compute) << compute.error().message;
  EXPECT_EQ(*compute, "2.52");
  auto volume = session_->Microversion("block-storage");
  ASSERT_TRUE(volume) << volume.error().message;
  EXPECT_EQ(*volume, "3.22");
}

// The whole life of a replica, through the provider: a golden snapshot of an in-use volume, a
// volume from it with our metadata, a server with the image as its root and the clone as a data
// disk, found by its tags, then deleted server first, volume second.
TEST_F(RealCloud, AReplicaIsBuiltFromASnapshotWithTheImageAsItsRootAndDeleted) {
  const std::string donor_volume = MakeDonor();
  ASSERT_FALSE(donor_volume.empty());
  auto snapshot = provider_->SnapshotVolume(cluster_, donor_volume, cluster_ + "-golden");
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  auto ready = WaitForSnapshot(*provider_, cluster_, snapshot->id, clock_, sleeper_, 90s, 500ms);
  ASSERT_TRUE(ready) << ready.error().message;

  const std::string name = cluster_ + "-r1";
  auto replica =
      CreateReplicaAndWait(*provider_, Spec(name, snapshot->id), clock_, sleeper_, 180s, 500ms);
  ASSERT_TRUE(replica) << replica.error().message;
  ASSERT_TRUE(replica->server && replica->volume);
  servers_.push_back(replica->server->id);
  EXPECT_EQ(replica->volume->snapshot_id, snapshot->id);

  // Nova's own answer: the root is the image; the clone is attached, not booted.
  auto server = Call(*session_, "compute", "GET", "/servers/" + replica->server->id);
  ASSERT_TRUE(server) << server.error().message;
  EXPECT_EQ((*server)["server"]["image"]["id"], Get("RA_IMAGE_ID"));
  EXPECT_THAT((*server)["server"]["tags"].dump(), HasSubstr("ra-cluster:" + cluster_));
  EXPECT_EQ((*server)["server"]["metadata"]["ra_managed_by"], "replica-autoscaler");
  // Cinder's: the clone is attached as a device that is not the root.
  auto volume = CinderClient(*session_).GetVolume(replica->volume->id);
  ASSERT_TRUE(volume);
  EXPECT_EQ(volume->status, "in-use");
  ASSERT_EQ(volume->attached_server_ids.size(), 1u);
  EXPECT_EQ(volume->attached_server_ids[0], replica->server->id);
  auto raw = Call(*session_, "block-storage", "GET", "/volumes/" + replica->volume->id);
  ASSERT_TRUE(raw);
  const std::string device = (*raw)["volume"]["attachments"][0].value("device", "");
  // The root device's name is admin-only (OS-EXT-SRV-ATTR:root_device_name, 2.3+).
  auto as_admin = Call(*admin_, "compute", "GET", "/servers/" + replica->server->id);
  ASSERT_TRUE(as_admin) << as_admin.error().message;
  const std::string root = (*as_admin)["server"].value("OS-EXT-SRV-ATTR:root_device_name", "");
  std::printf("replica %s: root %s = image %s, data volume at %s\n", name.c_str(), root.c_str(),
              Get("RA_IMAGE_ID").c_str(), device.c_str());
  EXPECT_FALSE(root.empty());
  EXPECT_FALSE(device.empty());
  EXPECT_NE(device, root) << "the clone must not be the root disk";
  EXPECT_EQ((*raw)["volume"]["metadata"]["ra_replica"], name);

  auto listed = provider_->ListReplicas(cluster_);
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, name);

  // The single GETs that follow a transition between cycles read the words the lists read.
  auto server_status = provider_->ServerStatus(replica->server->id);
  ASSERT_TRUE(server_status) << server_status.error().message;
  EXPECT_EQ(*server_status, "ACTIVE");
  auto volume_status = provider_->VolumeStatus(replica->volume->id);
  ASSERT_TRUE(volume_status) << volume_status.error().message;
  EXPECT_EQ(*volume_status, "in-use");
  auto snapshot_status = provider_->SnapshotStatus(snapshot->id);
  ASSERT_TRUE(snapshot_status) << snapshot_status.error().message;
  EXPECT_EQ(*snapshot_status, "available");

  auto again = provider_->CreateReplicaServer(Spec(name, snapshot->id), replica->volume->id);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->id, replica->server->id) << "asked again, nothing new is booted";

  auto gone = DeleteReplicaAndWait(*provider_, cluster_, name, clock_, sleeper_, 180s, 500ms);
  ASSERT_TRUE(gone) << gone.error().message;
  EXPECT_EQ(WaitVolume(replica->volume->id, {"gone"}), "gone");
  auto left = provider_->ListReplicas(cluster_);
  ASSERT_TRUE(left);
  EXPECT_TRUE(left->empty());
  // Gone is kNotFound, which the watcher takes as "moved on".
  auto server_gone = provider_->ServerStatus(replica->server->id);
  ASSERT_FALSE(server_gone);
  EXPECT_EQ(server_gone.error().kind, ErrorKind::kNotFound) << server_gone.error().message;
  auto volume_gone = provider_->VolumeStatus(replica->volume->id);
  ASSERT_FALSE(volume_gone);
  EXPECT_EQ(volume_gone.error().kind, ErrorKind::kNotFound) << volume_gone.error().message;
}

// Servers with our tags but not our metadata, or another cluster's, are not ours: a real Nova
// filters ?tags= correctly, and the client checks each server itself as well.
TEST_F(RealCloud, OnlyServersWhoseOwnTagsAndMetadataSaySoAreOurs) {
  NovaClient nova(*session_);
  const std::vector<std::string> our_tags{"replica-autoscaler", "ra-cluster:" + cluster_};
  auto stranger = nova.CreateServer({.name = cluster_ + "-stranger",
                                     .flavor_ref = Get("RA_FLAVOR_ID"),
                                     .image_ref = Get("RA_IMAGE_ID"),
                                     .without_network = true,
                                     .tags = our_tags,
                                     .metadata = {{"owner", "someone else"}}});
  ASSERT_TRUE(stranger) << stranger.error().message;
  servers_.push_back(stranger->id);
  auto other = nova.CreateServer({.name = cluster_ + "-r9",
                                  .flavor_ref = Get("RA_FLAVOR_ID"),
                                  .image_ref = Get("RA_IMAGE_ID"),
                                  .without_network = true,
                                  .tags = our_tags,
                                  .metadata = {{"ra_managed_by", "replica-autoscaler"},
                                               {"ra_cluster", "another"},
                                               {"ra_replica", cluster_ + "-r9"}}});
  ASSERT_TRUE(other) << other.error().message;
  servers_.push_back(other->id);
  auto by_tags = nova.ListServersByTags(our_tags);
  ASSERT_TRUE(by_tags) << by_tags.error().message;
  EXPECT_EQ(by_tags->size(), 2u) << "Nova's tag filter finds both";
  auto ours = provider_->ListReplicas(cluster_);
  ASSERT_TRUE(ours) << ours.error().message;
  EXPECT_TRUE(ours->empty()) << "neither is ours";
}

// Cinder cuts lists at osapi_max_limit (3 in tests/realcloud/realcloud.py); the client reads
// every page.
TEST_F(RealCloud, ListsLongerThanAPageAreReadToTheEnd) {
  // realcloud.py sets Cinder's osapi_max_limit to 3: four of each take two pages.
  const std::string donor_volume = MakeDonor();
  ASSERT_FALSE(donor_volume.empty());
  std::vector<std::string> snapshot_ids;
  for (int i = 0; i < 4; ++i) {
    auto s = provider_->SnapshotVolume(cluster_, donor_volume, cluster_ + "-g" + std::to_string(i));
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE(WaitForSnapshot(*provider_, cluster_, s->id, clock_, sleeper_, 90s, 500ms));
    snapshot_ids.push_back(s->id);
  }
  auto snapshots = provider_->ListSnapshots(cluster_);
  ASSERT_TRUE(snapshots) << snapshots.error().message;
  EXPECT_EQ(snapshots->size(), 4u);
  for (int i = 0; i < 4; ++i) {
    auto v =
        provider_->CreateReplicaVolume(Spec(cluster_ + "-p" + std::to_string(i), snapshot_ids[0]));
    ASSERT_TRUE(v) << v.error().message;
  }
  auto replicas = provider_->ListReplicas(cluster_);
  ASSERT_TRUE(replicas) << replicas.error().message;
  EXPECT_EQ(replicas->size(), 4u) << "four volumes of ours over two pages";
}

// Quota refusals come back as kQuota, with the cloud's own words, from Cinder's 413 and Nova's
// 403; nothing is left behind.
TEST_F(RealCloud, QuotaRefusalsAreTypedAsQuota) {
  const std::string donor_volume = MakeDonor();
  ASSERT_FALSE(donor_volume.empty());
  auto snapshot = provider_->SnapshotVolume(cluster_, donor_volume, cluster_ + "-golden");
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  ASSERT_TRUE(WaitForSnapshot(*provider_, cluster_, snapshot->id, clock_, sleeper_, 90s, 500ms));

  auto limits = CinderClient(*session_).GetLimits();
  ASSERT_TRUE(limits);
  SetQuota("block-storage", "volumes", limits->used_volumes);
  auto refused = provider_->CreateReplicaVolume(Spec(cluster_ + "-q1", snapshot->id));
  SetQuota("block-storage", "volumes", -1);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::kQuota) << refused.error().message;
  std::printf("cinder over quota: %s\n", refused.error().message.c_str());

  auto volume = provider_->CreateReplicaVolume(Spec(cluster_ + "-q2", snapshot->id));
  ASSERT_TRUE(volume) << volume.error().message;
  ASSERT_EQ(WaitVolume(volume->id, {"available"}), "available");
  auto compute = NovaClient(*session_).GetLimits();
  ASSERT_TRUE(compute);
  SetQuota("compute", "instances", compute->used_instances);
  auto no_server = provider_->CreateReplicaServer(Spec(cluster_ + "-q2", snapshot->id), volume->id);
  SetQuota("compute", "instances", -1);
  ASSERT_FALSE(no_server);
  EXPECT_EQ(no_server.error().kind, ErrorKind::kQuota) << no_server.error().message;
  std::printf("nova over quota: %s\n", no_server.error().message.c_str());
}

// Each error the provider names, as the real services give it.
TEST_F(RealCloud, ErrorPathsAreTyped) {
  NovaClient nova(*session_);
  auto missing = nova.GetServer("00000000-0000-4000-8000-000000000000");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::kNotFound);
  EXPECT_TRUE(nova.DeleteServer("00000000-0000-4000-8000-000000000000"))
      << "deleting what is gone is success";
  EXPECT_TRUE(CinderClient(*session_).DeleteVolume("00000000-0000-4000-8000-000000000000"));
  EXPECT_TRUE(provider_->DeleteSnapshot("00000000-0000-4000-8000-000000000000"));

  auto bad_flavor = nova.CreateServer({.name = cluster_ + "-bad",
                                       .flavor_ref = "no-such-flavor",
                                       .image_ref = Get("RA_IMAGE_ID"),
                                       .without_network = true});
  ASSERT_FALSE(bad_flavor);
  EXPECT_EQ(bad_flavor.error().kind, ErrorKind::kBadRequest) << bad_flavor.error().message;

  auto no_snapshot =
      provider_->CreateReplicaVolume(Spec(cluster_ + "-x", "00000000-0000-4000-8000-000000000000"));
  ASSERT_FALSE(no_snapshot);
  EXPECT_EQ(no_snapshot.error().kind, ErrorKind::kNotFound) << no_snapshot.error().message;

  const std::string donor_volume = MakeDonor();
  ASSERT_FALSE(donor_volume.empty());
  auto in_use = CinderClient(*session_).DeleteVolume(donor_volume);
  ASSERT_FALSE(in_use);
  EXPECT_THAT(ToString(in_use.error().kind), ::testing::AnyOf("bad-request", "conflict"))
      << in_use.error().message;
  auto not_available = provider_->CreateReplicaServer(Spec(cluster_ + "-y", "-"), donor_volume);
  ASSERT_FALSE(not_available);
  EXPECT_EQ(not_available.error().kind, ErrorKind::kConflict);

  auto donor = ResolveDonor(*session_, cluster_ + "-donor");
  ASSERT_TRUE(donor) << donor.error().message;
  EXPECT_EQ(donor->volume_id, donor_volume) << "the data volume, not the image's root";
}

}  // namespace
}  // namespace ra::openstack
