// Names from the configuration resolved against the cloud simulator: flavors, Glance images and
// Neutron networks by name or id, and the donor's data volume (the simulator's donor boots from
// its one volume; a second donor is booted from an image with a separate data volume).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/sleeper.h"
#include "openstack/cinder.h"
#include "openstack/resolver.h"
#include "openstack/session.h"
#include "tests/integration/openstack_harness.h"

namespace ra::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr const char* kDonorVolume = "5c2e1d8e-3b4f-4f6e-9dac-1b2c3d4e5f60";
constexpr const char* kNetwork = "6d0a3f7a-2b9c-4a5e-9a57-1f2e3d4c5b6a";
constexpr const char* kImage = "c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1e";

class OpenStackResolver : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.path() + "/donor");
    auto sim = CloudSim::Start({.root = dir_.path() + "/cloud",
                                .donor_dir = dir_.path() + "/donor",
                                .donor_address = "127.0.98.254",
                                .donor_volume_id = kDonorVolume});
    ASSERT_TRUE(sim) << sim.error().message;
    sim_ = std::move(*sim);
    session_ = std::make_unique<openstack::Session>(
        sim_->ClientOptions(), openstack::SessionDeps{transport_, clock_, sleeper_, nullptr});
  }

  Result<HttpResponse> Post(const std::string& service, const std::string& path,
                            const nlohmann::json& body) {
    return session_->Send({.service_type = service,
                           .method = "POST",
                           .path = path,
                           .body = body.dump(),
                           .idempotent = false,
                           .what = "test: POST " + path});
  }

  // A server booted from the image with a separate, empty data volume attached (as /dev/vdb).
  std::string BootFromImageWithDataVolume(const std::string& name) {
    auto made =
        Post("block-storage", "/volumes", {{"volume", {{"size", 1}, {"name", name + "-pgdata"}}}});
    EXPECT_TRUE(made) << made.error().message;
    if (!made) return "";
    const std::string volume_id = nlohmann::json::parse(made->body)["volume"]["id"];
    openstack::CinderClient cinder(*session_);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto v = cinder.GetVolume(volume_id);
      if (v && v->status == "available") break;
      std::this_thread::sleep_for(50ms);
    }
    auto server = Post("compute", "/servers",
                       {{"server",
                         {{"name", name},
                          {"flavorRef", "1"},
                          {"imageRef", kImage},
                          {"networks", {{{"uuid", kNetwork}}}},
                          {"block_device_mapping_v2",
                           {{{"uuid", kImage},
                             {"source_type", "image"},
                             {"destination_type", "local"},
                             {"boot_index", 0}},
                            {{"uuid", volume_id},
                             {"source_type", "volume"},
                             {"destination_type", "volume"},
                             {"boot_index", -1}}}}}}});
    EXPECT_TRUE(server) << server.error().message;
    return volume_id;
  }

  TempDir dir_{"ra-os-resolver"};
  std::unique_ptr<CloudSim> sim_;
  CurlHttpTransport transport_;
  SystemClock clock_;
  RealSleeper sleeper_;
  std::unique_ptr<openstack::Session> session_;
};

TEST_F(OpenStackResolver, TemplateByNamesAndByIdsGivesTheSameIds) {
  auto by_name = openstack::ResolveTemplate(*session_, "m1.small", "replica-image", {"private"});
  ASSERT_TRUE(by_name) << by_name.error().message;
  EXPECT_EQ(by_name->flavor_id, "2");
  EXPECT_EQ(by_name->image_id, kImage);
  EXPECT_EQ(by_name->network_ids, std::vector<std::string>{kNetwork});

  auto by_id = openstack::ResolveTemplate(*session_, "2", kImage, {kNetwork});
  ASSERT_TRUE(by_id) << by_id.error().message;
  EXPECT_EQ(by_id->flavor_id, "2");
  EXPECT_EQ(by_id->image_id, kImage);
  EXPECT_EQ(by_id->network_ids, std::vector<std::string>{kNetwork});

  auto no_image = openstack::ResolveTemplate(*session_, "pg.replica", "", {});
  ASSERT_TRUE(no_image) << no_image.error().message;
  EXPECT_EQ(no_image->flavor_id, "pg.replica");
  EXPECT_EQ(no_image->image_id, "");
}

TEST_F(OpenStackResolver, UnknownNamesAreConfigErrorsThatSayWhat) {
  auto flavor = openstack::ResolveTemplate(*session_, "m1.enormous", "", {});
  ASSERT_FALSE(flavor);
  EXPECT_EQ(flavor.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(flavor.error().message, HasSubstr("m1.tiny"));

  auto image = openstack::ResolveTemplate(*session_, "2", "no-such-image", {});
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(image.error().message, HasSubstr("image 'no-such-image'"));

  // A UUID that is no image: Glance's 404 (an HTML page) leads to the name lookup, then kConfig.
  auto image_id =
      openstack::ResolveTemplate(*session_, "2", "00000000-0000-4000-8000-000000000000", {});
  ASSERT_FALSE(image_id);
  EXPECT_EQ(image_id.error().kind, ErrorKind::kConfig);

  auto network = openstack::ResolveTemplate(*session_, "2", "", {"public"});
  ASSERT_FALSE(network);
  EXPECT_EQ(network.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(network.error().message, HasSubstr("network 'public'"));
}

// The simulator's donor is a replica as the service builds them: the image as its root, its
// data volume beside it (the unit tests cover a donor booted from its volume).
TEST_F(OpenStackResolver, TheDonorsDataVolumeByItselfByNameOrById) {
  auto bare = openstack::ResolveDonorVolume(*session_, "donor");
  ASSERT_TRUE(bare) << bare.error().message;
  EXPECT_EQ(*bare, kDonorVolume);
  auto donor = openstack::ResolveDonor(*session_, "donor");
  ASSERT_TRUE(donor) << donor.error().message;
  EXPECT_FALSE(donor->server_id.empty());
  EXPECT_EQ(donor->address, "127.0.98.254");

  auto by_name = openstack::ResolveDonorVolume(*session_, "donor", "donor-data");
  ASSERT_TRUE(by_name) << by_name.error().message;
  EXPECT_EQ(*by_name, kDonorVolume);
  auto by_id = openstack::ResolveDonorVolume(*session_, "donor", kDonorVolume);
  ASSERT_TRUE(by_id) << by_id.error().message;
  EXPECT_EQ(*by_id, kDonorVolume);

  auto wrong = openstack::ResolveDonorVolume(*session_, "donor", "other-volume");
  ASSERT_FALSE(wrong);
  EXPECT_THAT(wrong.error().message, HasSubstr("is not attached to donor server 'donor'"));
  auto nobody = openstack::ResolveDonorVolume(*session_, "donor.with.dots");
  ASSERT_FALSE(nobody);
  EXPECT_THAT(nobody.error().message, HasSubstr("no server in this project"));
}

TEST_F(OpenStackResolver, DonorBootedFromAnImageGivesItsOnlyDataVolume) {
  const std::string data = BootFromImageWithDataVolume("app-donor");
  ASSERT_FALSE(data.empty());
  auto r = openstack::ResolveDonorVolume(*session_, "app-donor");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, data);
  // "app-donor" is not taken for "app" even though Nova's name filter is a regular expression.
  auto prefix = openstack::ResolveDonorVolume(*session_, "app");
  ASSERT_FALSE(prefix);
}

}  // namespace
}  // namespace ra::testing
