#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "core/url.h"
#include "openstack/errors.h"
#include "openstack/resolver.h"
#include "tests/unit/openstack_test_support.h"

namespace ra::openstack {
namespace {

using testing::Harness;
using ::testing::HasSubstr;
using testing::PasswordOptions;

constexpr const char* kCompute = "https://compute.example/v2.1";
constexpr const char* kVolume = "https://volume.example/v3/p-42";
constexpr const char* kImage = "https://image.example";           // Glance without a version
constexpr const char* kNetwork = "https://network.example/v2.0";  // Neutron with its version

OpenStackOptions Options() {
  OpenStackOptions o = PasswordOptions();
  o.endpoint_overrides = {
      {"compute", kCompute}, {"block-storage", kVolume}, {"image", kImage}, {"network", kNetwork}};
  return o;
}

// Answers GETs from a table of URLs; anything else is Nova's 404.
class ResolverTest : public ::testing::Test {
 protected:
  ResolverTest() : h_(Options()) {
    h_.PushToken();
    h_.transport.SetResponder([this](const HttpRequest& r) -> Result<HttpResponse> {
      auto it = routes_.find(r.method + " " + r.url);
      if (it != routes_.end()) return it->second;
      return HttpResponse{
          404, {}, R"({"itemNotFound": {"code": 404, "message": "not found: )" + r.url + "\"}}"};
    });
  }

  void Route(const std::string& url, nlohmann::json body, int status = 200) {
    routes_["GET " + url] = HttpResponse{status, {}, body.dump()};
  }

  std::vector<std::string> Urls() const {
    std::vector<std::string> out;
    for (const HttpRequest& r : h_.transport.requests()) out.push_back(r.url);
    return out;
  }

  void FlavorList() {
    Route(std::string(kCompute) + "/flavors/detail",
          {{"flavors",
            {{{"id", "1"}, {"name", "m1.tiny"}},
             {{"id", "2"}, {"name", "m1.small"}},
             {{"id", "pg.replica"}, {"name", "pg.replica"}}}}});
  }

  void Donor(const std::string& id, const std::string& name,
             const std::vector<std::string>& volume_ids) {
    nlohmann::json attached = nlohmann::json::array();
    for (const std::string& v : volume_ids) attached.push_back({{"id", v}});
    nlohmann::json server = {{"id", id},
                             {"name", name},
                             {"status", "ACTIVE"},
                             {"os-extended-volumes:volumes_attached", attached}};
    Route(std::string(kCompute) + "/servers/" + id, {{"server", server}});
    servers_.push_back(server);
    std::string regex = "^";
    for (char c : name) regex += c == '.' ? std::string("\\.") : std::string(1, c);
    Route(std::string(kCompute) + "/servers/detail?name=" + UrlEncode(regex + "$"),
          {{"servers", servers_}});
  }

  void Volume(const std::string& id, const std::string& name, const std::string& bootable,
              const std::string& server_id, const std::string& device) {
    Route(std::string(kVolume) + "/volumes/" + id,
          {{"volume",
            {{"id", id},
             {"name", name},
             {"bootable", bootable},
             {"attachments", {{{"server_id", server_id}, {"device", device}}}}}}});
  }

  Harness h_;
  std::map<std::string, HttpResponse> routes_;
  nlohmann::json servers_ = nlohmann::json::array();
};

TEST(LooksLikeUuid, DashedAndPlainHexOnly) {
  EXPECT_TRUE(LooksLikeUuid("c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1e"));
  EXPECT_TRUE(LooksLikeUuid("c1b7bd391c6e4c6e8b0c7a9fb04f1d1e"));
  EXPECT_FALSE(LooksLikeUuid("replica-image"));
  EXPECT_FALSE(LooksLikeUuid("c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1g"));
  EXPECT_FALSE(LooksLikeUuid("c1b7bd39x1c6e-4c6e-8b0c-7a9fb04f1d1e"));
  EXPECT_FALSE(LooksLikeUuid(""));
}

TEST_F(ResolverTest, FlavorByIdNeedsOneRequest) {
  Route(std::string(kCompute) + "/flavors/pg.replica",
        {{"flavor", {{"id", "pg.replica"}, {"name", "pg.replica"}}}});
  auto r = ResolveTemplate(h_.session, "pg.replica", "", {});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->flavor_id, "pg.replica");
  EXPECT_EQ(r->image_id, "");
  EXPECT_TRUE(r->network_ids.empty());
}

TEST_F(ResolverTest, FlavorByExactNameAfterTheIdIsNotFound) {
  FlavorList();
  auto r = ResolveTemplate(h_.session, "m1.small", "", {});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->flavor_id, "2");
  EXPECT_THAT(Urls(), ::testing::Contains(std::string(kCompute) + "/flavors/m1.small"));
}

TEST_F(ResolverTest, FlavorListIsFollowedAcrossPages) {
  Route(std::string(kCompute) + "/flavors/detail",
        {{"flavors", {{{"id", "1"}, {"name", "m1.tiny"}}}},
         {"flavors_links", {{{"rel", "next"}, {"href", "x"}}}}});
  Route(std::string(kCompute) + "/flavors/detail?marker=1",
        {{"flavors", {{{"id", "7"}, {"name", "big"}}}}});
  auto r = ResolveTemplate(h_.session, "big", "", {});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->flavor_id, "7");
}

TEST_F(ResolverTest, UnknownFlavorListsTheCandidates) {
  FlavorList();
  auto r = ResolveTemplate(h_.session, "m1.huge", "", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(r.error().message, HasSubstr("flavor 'm1.huge'"));
  EXPECT_THAT(r.error().message, HasSubstr("m1.tiny, m1.small, pg.replica"));
}

TEST_F(ResolverTest, AmbiguousFlavorNameAsksForAnId) {
  Route(std::string(kCompute) + "/flavors/detail",
        {{"flavors", {{{"id", "a1"}, {"name", "dup"}}, {{"id", "a2"}, {"name", "dup"}}}}});
  auto r = ResolveTemplate(h_.session, "dup", "", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(r.error().message, HasSubstr("2 flavors have this name (a1, a2): use an id"));
}

TEST_F(ResolverTest, ImageByIdFirstThenByExactActiveName) {
  Route(std::string(kCompute) + "/flavors/1", {{"flavor", {{"id", "1"}}}});
  const std::string id = "c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1e";
  Route(std::string(kImage) + "/v2/images/" + id, {{"id", id}, {"status", "active"}});
  auto by_id = ResolveTemplate(h_.session, "1", id, {});
  ASSERT_TRUE(by_id) << by_id.error().message;
  EXPECT_EQ(by_id->image_id, id);

  Route(std::string(kImage) + "/v2/images?name=replica-image",
        {{"images",
          {{{"id", "old"}, {"name", "replica-image"}, {"status", "deactivated"}},
           {{"id", "new"}, {"name", "replica-image"}, {"status", "active"}}}}});
  auto by_name = ResolveTemplate(h_.session, "1", "replica-image", {});
  ASSERT_TRUE(by_name) << by_name.error().message;
  EXPECT_EQ(by_name->image_id, "new");
}

TEST_F(ResolverTest, ImageProblemsAreSpecific) {
  Route(std::string(kCompute) + "/flavors/1", {{"flavor", {{"id", "1"}}}});
  Route(std::string(kImage) + "/v2/images?name=two",
        {{"images",
          {{{"id", "i1"}, {"name", "two"}, {"status", "active"}},
           {{"id", "i2"}, {"name", "two"}, {"status", "active"}}}}});
  Route(std::string(kImage) + "/v2/images?name=queued",
        {{"images", {{{"id", "q1"}, {"name", "queued"}, {"status", "queued"}}}}});
  Route(std::string(kImage) + "/v2/images?name=none", {{"images", nlohmann::json::array()}});

  auto two = ResolveTemplate(h_.session, "1", "two", {});
  ASSERT_FALSE(two);
  EXPECT_THAT(two.error().message, HasSubstr("2 active images have this name (i1, i2)"));
  auto queued = ResolveTemplate(h_.session, "1", "queued", {});
  ASSERT_FALSE(queued);
  EXPECT_THAT(queued.error().message, HasSubstr("q1 is 'queued'"));
  auto none = ResolveTemplate(h_.session, "1", "none", {});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(none.error().message, HasSubstr("image 'none'"));
}

TEST_F(ResolverTest, NetworksByIdOrNameInOrderWithoutDoublingTheVersion) {
  Route(std::string(kCompute) + "/flavors/1", {{"flavor", {{"id", "1"}}}});
  const std::string id = "6d0a3f7a-2b9c-4a5e-9a57-1f2e3d4c5b6a";
  Route(std::string(kNetwork) + "/networks/" + id, {{"network", {{"id", id}}}});
  Route(std::string(kNetwork) + "/networks?name=private",
        {{"networks", {{{"id", "n-private"}, {"name", "private"}}}}});
  auto r = ResolveTemplate(h_.session, "1", "", {"private", id});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->network_ids, (std::vector<std::string>{"n-private", id}));
}

TEST_F(ResolverTest, AmbiguousOrUnknownNetwork) {
  Route(std::string(kCompute) + "/flavors/1", {{"flavor", {{"id", "1"}}}});
  Route(std::string(kNetwork) + "/networks?name=dup",
        {{"networks", {{{"id", "x1"}, {"name", "dup"}}, {{"id", "x2"}, {"name", "dup"}}}}});
  Route(std::string(kNetwork) + "/networks?name=gone", {{"networks", nlohmann::json::array()}});
  auto dup = ResolveTemplate(h_.session, "1", "", {"dup"});
  ASSERT_FALSE(dup);
  EXPECT_THAT(dup.error().message, HasSubstr("2 networks have this name (x1, x2)"));
  auto gone = ResolveTemplate(h_.session, "1", "", {"gone"});
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(gone.error().message, HasSubstr("network 'gone'"));
}

TEST_F(ResolverTest, CloudErrorsKeepTheirKind) {
  routes_["GET " + std::string(kCompute) + "/flavors/m1"] = HttpResponse{
      403, {}, R"({"forbidden": {"code": 403, "message": "Policy does not allow it."}})"};
  auto r = ResolveTemplate(h_.session, "m1", "", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kAuth);
}

TEST_F(ResolverTest, DonorByNameTakesTheOnlyDataVolume) {
  Donor("s-1", "db.donor", {"v-boot", "v-data"});
  Volume("v-boot", "root", "true", "s-1", "/dev/vda");
  Volume("v-data", "pgdata", "false", "s-1", "/dev/vdb");
  auto r = ResolveDonorVolume(h_.session, "db.donor");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "v-data");
  // The name is matched literally: Nova's filter is a regular expression.
  EXPECT_THAT(Urls(), ::testing::Contains(std::string(kCompute) +
                                          "/servers/detail?name=" + UrlEncode("^db\\.donor$")));
}

TEST_F(ResolverTest, AVolumeOnVdaCountsAsBootEvenIfNotMarkedBootable) {
  Donor("s-1", "donor", {"v-root", "v-data"});
  Volume("v-root", "", "false", "s-1", "/dev/vda");
  Volume("v-data", "", "false", "s-1", "/dev/vdc");
  auto r = ResolveDonorVolume(h_.session, "donor");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "v-data");
}

TEST_F(ResolverTest, TwoDataVolumesNeedTheVolumeConfigured) {
  Donor("s-1", "donor", {"v-a", "v-b"});
  Volume("v-a", "a", "false", "s-1", "/dev/vdb");
  Volume("v-b", "b", "false", "s-1", "/dev/vdc");
  auto r = ResolveDonorVolume(h_.session, "donor");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kConfig);
  EXPECT_EQ(r.error().message,
            "donor server 'donor' has 2 data volumes (a (v-a), b (v-b)): set "
            "clusters[].donor.volume");

  auto named = ResolveDonorVolume(h_.session, "donor", "b");
  ASSERT_TRUE(named) << named.error().message;
  EXPECT_EQ(*named, "v-b");
  auto by_id = ResolveDonorVolume(h_.session, "donor", "v-a");
  ASSERT_TRUE(by_id) << by_id.error().message;
  EXPECT_EQ(*by_id, "v-a");
}

TEST_F(ResolverTest, OnlyABootVolumeIsAnErrorUnlessNamed) {
  const std::string sid = "0a1b2c3d-0000-4000-8000-000000000001";
  Donor(sid, "donor", {"v-boot"});
  Volume("v-boot", "donor-data", "true", sid, "/dev/vda");
  auto r = ResolveDonorVolume(h_.session, "donor");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("no data volume besides its boot volume"));
  EXPECT_THAT(r.error().message, HasSubstr("set clusters[].donor.volume"));
  // Booted from its data volume: naming it is allowed, and the server may be given by id.
  auto named = ResolveDonorVolume(h_.session, sid, "donor-data");
  ASSERT_TRUE(named) << named.error().message;
  EXPECT_EQ(*named, "v-boot");
}

TEST_F(ResolverTest, DonorProblemsAreSpecific) {
  Donor("s-1", "twin", {"v-1"});
  Donor("s-2", "twin", {"v-2"});
  auto twins = ResolveDonorVolume(h_.session, "twin");
  ASSERT_FALSE(twins);
  EXPECT_THAT(twins.error().message, HasSubstr("2 servers have this name (s-1, s-2)"));

  servers_ = nlohmann::json::array();
  Donor("s-3", "lonely", {});
  auto none = ResolveDonorVolume(h_.session, "lonely");
  ASSERT_FALSE(none);
  EXPECT_THAT(none.error().message, HasSubstr("has no attached volume"));

  servers_ = nlohmann::json::array();
  Donor("s-4", "donor", {"v-4"});
  Volume("v-4", "data", "false", "s-4", "/dev/vdb");
  auto wrong = ResolveDonorVolume(h_.session, "donor", "other");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().message,
            "donor volume 'other' is not attached to donor server 'donor' (attached: data (v-4))");

  Route(std::string(kCompute) + "/servers/detail?name=" + UrlEncode("^nobody$"),
        {{"servers", nlohmann::json::array()}});
  auto nobody = ResolveDonorVolume(h_.session, "nobody");
  ASSERT_FALSE(nobody);
  EXPECT_EQ(nobody.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(nobody.error().message, HasSubstr("donor server 'nobody'"));

  auto empty = ResolveDonorVolume(h_.session, "");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().kind, ErrorKind::kConfig);
}

TEST_F(ResolverTest, ANearNameFromNovasRegexIsNotTaken) {
  // A Nova that ignored the anchors would return "donor-2" for "donor".
  servers_ = nlohmann::json::array();
  nlohmann::json other = {{"id", "s-9"},
                          {"name", "donor-2"},
                          {"os-extended-volumes:volumes_attached", {{{"id", "v-9"}}}}};
  Route(std::string(kCompute) + "/servers/detail?name=" + UrlEncode("^donor$"),
        {{"servers", {other}}});
  auto r = ResolveDonorVolume(h_.session, "donor");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("no server in this project"));
}

}  // namespace
}  // namespace ra::openstack
