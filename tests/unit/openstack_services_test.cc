#include <gtest/gtest.h>

#include "core/base64.h"
#include "openstack/cinder.h"
#include "openstack/designate.h"
#include "openstack/nova.h"
#include "openstack_test_support.h"

namespace ra::openstack {
namespace {

using testing::BodyOf;
using testing::Harness;

// A GET /servers/{id} answer of Nova 2.52, trimmed.
constexpr const char* kServerError = R"({"server": {
  "id": "9168b536-cd40-4630-b43f-b259807c6e87", "name": "main-r1", "status": "ERROR",
  "tenant_id": "p-42", "user_id": "u-1", "metadata": {"ra_cluster": "main", "ra_replica": "r1"},
  "hostId": "", "image": "", "flavor": {"vcpus": 2, "ram": 4096, "disk": 0, "ephemeral": 0,
  "swap": 0, "original_name": "m1.medium", "extra_specs": {}},
  "created": "2026-11-21T04:43:40Z", "updated": "2026-11-21T04:44:10Z",
  "addresses": {"private": [{"version": 4, "addr": "10.0.0.7", "OS-EXT-IPS:type": "fixed",
                             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]},
  "accessIPv4": "", "accessIPv6": "", "links": [], "OS-DCF:diskConfig": "MANUAL",
  "OS-EXT-AZ:availability_zone": "az1", "config_drive": "True", "key_name": "ops",
  "OS-SRV-USG:launched_at": null, "OS-SRV-USG:terminated_at": null,
  "OS-EXT-STS:task_state": null, "OS-EXT-STS:vm_state": "error", "OS-EXT-STS:power_state": 0,
  "os-extended-volumes:volumes_attached": [{"id": "v-1", "delete_on_termination": false}],
  "fault": {"code": 500, "created": "2026-11-21T04:44:10Z",
            "message": "No valid host was found. There are not enough hosts available."},
  "locked": false, "description": null, "tags": ["replica-autoscaler", "ra-cluster:main"],
  "progress": 0, "security_groups": [{"name": "default"}]}})";

// The replica's system disk is the image at boot_index 0 (image -> local, which Nova accepts only
// together with imageRef) and its PGDATA clone a non-boot volume (boot_index -1): Nova adds no
// image disk of its own when block_device_mapping_v2 is given, so a volume at boot_index 0 would
// be the root disk.
TEST(Nova, CreateServerPutsTheImageAtTheRootAndTheCloneBesideIt) {
  Harness h;
  h.PushToken();
  h.transport.Push(202, R"({"server": {"id": "s-1", "links": [], "OS-DCF:diskConfig": "MANUAL",
                      "security_groups": [{"name": "pg"}], "adminPass": "Zz9wLrJ4"}})");
  NovaClient nova(h.session);
  ServerCreate c{.name = "main-r1",
                 .flavor_ref = "m1.medium",
                 .image_ref = "img-1",
                 .data_volume_id = "v-1",
                 .network_ids = {"net-1"},
                 .security_groups = {"pg"},
                 .availability_zone = "az1",
                 .key_name = "ops",
                 .tags = {"replica-autoscaler", "ra-cluster:main"},
                 .metadata = {{"ra_cluster", "main"}},
                 .user_data = R"({"primary_host":"10.0.0.5"})"};
  auto server = nova.CreateServer(c);
  ASSERT_TRUE(server) << server.error().message;
  EXPECT_EQ(server->id, "s-1");
  EXPECT_EQ(server->status, "BUILD");
  const HttpRequest call = h.transport.requests()[1];
  EXPECT_EQ(call.method, "POST");
  EXPECT_EQ(call.url, "https://compute.example/v2.1/servers");
  EXPECT_EQ(call.headers.at("Content-Type"), "application/json");
  auto s = BodyOf(call)["server"];
  EXPECT_EQ(s["name"], "main-r1");
  EXPECT_EQ(s["flavorRef"], "m1.medium");
  EXPECT_EQ(s["imageRef"], "img-1");
  ASSERT_EQ(s["block_device_mapping_v2"].size(), 2u);
  const auto& root = s["block_device_mapping_v2"][0];
  EXPECT_EQ(root["boot_index"], 0);
  EXPECT_EQ(root["uuid"], "img-1");
  EXPECT_EQ(root["source_type"], "image");
  EXPECT_EQ(root["destination_type"], "local");
  const auto& data = s["block_device_mapping_v2"][1];
  EXPECT_EQ(data["boot_index"], -1);
  EXPECT_EQ(data["uuid"], "v-1");
  EXPECT_EQ(data["source_type"], "volume");
  EXPECT_EQ(data["destination_type"], "volume");
  EXPECT_EQ(data["delete_on_termination"], false);
  EXPECT_EQ(s["networks"], nlohmann::json::parse(R"([{"uuid": "net-1"}])"));
  EXPECT_EQ(s["security_groups"], nlohmann::json::parse(R"([{"name": "pg"}])"));
  EXPECT_EQ(s["availability_zone"], "az1");
  EXPECT_EQ(s["key_name"], "ops");
  EXPECT_EQ(s["tags"], nlohmann::json::parse(R"(["replica-autoscaler", "ra-cluster:main"])"));
  EXPECT_EQ(s["metadata"]["ra_cluster"], "main");
  EXPECT_EQ(s["user_data"], Base64Encode(R"({"primary_host":"10.0.0.5"})"));
}

TEST(Nova, CreateServerRejectsBadTagsBeforeSending) {
  Harness h;
  NovaClient nova(h.session);
  for (const char* tag : {"a,b", "a/b", ""}) {
    auto r = nova.CreateServer({.name = "x", .flavor_ref = "f", .image_ref = "i", .tags = {tag}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::kBadRequest);
  }
  EXPECT_TRUE(h.transport.requests().empty());
}

TEST(Nova, OversizedUserDataIsRefusedBeforeSending) {
  Harness h;
  NovaClient nova(h.session);
  auto r = nova.CreateServer(
      {.name = "x", .flavor_ref = "f", .image_ref = "i", .user_data = std::string(50000, 'x')});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kBadRequest);
  EXPECT_NE(r.error().message.find("65535"), std::string::npos);
  EXPECT_TRUE(h.transport.requests().empty());
}

TEST(Nova, AServerWithoutAnImageIsRefusedBeforeSending) {
  Harness h;
  NovaClient nova(h.session);
  auto r = nova.CreateServer({.name = "x", .flavor_ref = "f", .data_volume_id = "v"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kBadRequest);
  EXPECT_NE(r.error().message.find("image"), std::string::npos);
  EXPECT_TRUE(h.transport.requests().empty());
}

// Cinder cuts lists at osapi_max_limit and says so with volumes_links/snapshots_links; every
// page is read, continuing from the last id as Cinder's own next link does.
TEST(Cinder, ListsFollowTheNextLinkToTheLastPage) {
  Harness h;
  h.PushToken();
  h.transport.Push(200, R"({"volumes": [{"id": "v1", "status": "available"},
      {"id": "v2", "status": "available"}], "volumes_links": [{"rel": "next",
      "href": "https://volume.example/v3/p-42/volumes/detail?limit=2&marker=v2"}]})");
  h.transport.Push(200, R"({"volumes": [{"id": "v3", "status": "in-use"}]})");
  h.transport.Push(200, R"({"snapshots": [{"id": "s1", "status": "available"}],
      "snapshots_links": [{"rel": "next", "href": "https://volume.example/x?marker=s1"}]})");
  h.transport.Push(200, R"({"snapshots": [{"id": "s2", "status": "available"}],
      "snapshots_links": []})");
  CinderClient cinder(h.session);
  auto volumes = cinder.ListVolumes({{"ra_cluster", "main"}});
  ASSERT_TRUE(volumes) << volumes.error().message;
  ASSERT_EQ(volumes->size(), 3u);
  EXPECT_EQ((*volumes)[2].id, "v3");
  const auto requests = h.transport.requests();
  EXPECT_NE(requests[2].url.find("metadata="), std::string::npos) << "the filter stays";
  EXPECT_NE(requests[2].url.find("&marker=v2"), std::string::npos) << requests[2].url;
  auto snapshots = cinder.ListSnapshots({});
  ASSERT_TRUE(snapshots) << snapshots.error().message;
  ASSERT_EQ(snapshots->size(), 2u);
  EXPECT_NE(h.transport.requests().back().url.find("/snapshots/detail?marker=s1"),
            std::string::npos);
}

TEST(Cinder, ANextLinkThatWouldRepeatAPageIsAnErrorNotALoop) {
  Harness h;
  h.PushToken();
  const char* page = R"({"volumes": [{"id": "v1", "status": "available"}],
      "volumes_links": [{"rel": "next", "href": "https://volume.example/x?marker=v1"}]})";
  h.transport.Push(200, page);
  h.transport.Push(200, page);
  CinderClient cinder(h.session);
  auto volumes = cinder.ListVolumes({});
  ASSERT_FALSE(volumes);
  EXPECT_EQ(volumes.error().kind, ErrorKind::kParse);
}

TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
}

TEST(Nova, ListsByTagsNeverByMetadataAndFollowsPages) {
  Harness h;
  h.PushToken();
  h.transport.Push(200, R"({"servers": [{"id": "a", "name": "r1", "status": "ACTIVE"}],
      "servers_links": [{"rel": "next", "href": "https://compute.example/v2.1/servers/detail?marker=a"}]})");
  h.transport.Push(200, R"({"servers": [{"id": "b", "name": "r2", "status": "BUILD"}]})");
  NovaClient nova(h.session);
  auto servers = nova.ListServersByTags({"replica-autoscaler", "ra-cluster:main"});
  ASSERT_TRUE(servers) << servers.error().message;
  ASSERT_EQ(servers->size(), 2u);
  auto requests = h.transport.requests();
  EXPECT_EQ(
      requests[1].url,
      "https://compute.example/v2.1/servers/detail?tags=replica-autoscaler%2Cra-cluster%3Amain"
      "&limit=200");
  EXPECT_EQ(requests[2].url.find("marker=a") != std::string::npos, true);
  for (const auto& r : requests) EXPECT_EQ(r.url.find("metadata"), std::string::npos);
}

TEST(Nova, ParsesAFailedServer) {
  auto j = nlohmann::json::parse(kServerError);
  auto s = NovaClient::ParseServer(j["server"]);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->status, "ERROR");
  EXPECT_EQ(s->fault_code, 500);
  EXPECT_NE(s->fault_message.find("No valid host"), std::string::npos);
  EXPECT_EQ(s->FixedIpv4(), "10.0.0.7");
  EXPECT_EQ(s->availability_zone, "az1");
  EXPECT_EQ(s->volume_ids, std::vector<std::string>{"v-1"});
  EXPECT_EQ(s->tags.size(), 2u);
  EXPECT_EQ(s->metadata.at("ra_replica"), "r1");
  EXPECT_TRUE(s->created.has_value());
  EXPECT_FALSE(NovaClient::ParseServer(nlohmann::json::parse(R"({"name": "x"})")));
}

TEST(Nova, DeleteOfAMissingServerIsSuccessAndShowIsNotFound) {
  Harness h;
  h.PushToken();
  h.transport.Push(
      404, R"({"itemNotFound": {"message": "Instance s-9 could not be found.", "code": 404}})");
  h.transport.Push(
      404, R"({"itemNotFound": {"message": "Instance s-9 could not be found.", "code": 404}})");
  NovaClient nova(h.session);
  EXPECT_TRUE(nova.DeleteServer("s-9"));
  auto shown = nova.GetServer("s-9");
  ASSERT_FALSE(shown);
  EXPECT_EQ(shown.error().kind, ErrorKind::kNotFound);
  EXPECT_NE(shown.error().message.find("could not be found"), std::string::npos);
}

TEST(Nova, ZonesAndLimits) {
  Harness h;
  h.PushToken();
  h.transport.Push(200, R"({"availabilityZoneInfo": [
      {"zoneName": "az1", "zoneState": {"available": true}, "hosts": null},
      {"zoneName": "az2", "zoneState": {"available": false}, "hosts": null}]})");
  h.transport.Push(200, R"({"limits": {"rate": [], "absolute": {"maxServerMeta": 128,
      "maxTotalInstances": 10, "totalInstancesUsed": 4, "maxTotalCores": 20, "totalCoresUsed": 8,
      "maxTotalRAMSize": 51200, "totalRAMUsed": 16384, "maxTotalKeypairs": 100,
      "maxServerGroups": 10, "maxServerGroupMembers": 10, "totalServerGroupsUsed": 0,
      "maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240}}})");
  NovaClient nova(h.session);
  auto zones = nova.ListAvailabilityZones();
  ASSERT_TRUE(zones);
  ASSERT_EQ(zones->size(), 2u);
  EXPECT_TRUE((*zones)[0].available);
  EXPECT_FALSE((*zones)[1].available);
  auto limits = nova.GetLimits();
  ASSERT_TRUE(limits);
  EXPECT_EQ(limits->max_instances, 10);
  EXPECT_EQ(limits->used_cores, 8);
  EXPECT_EQ(h.transport.requests()[1].url, "https://compute.example/v2.1/os-availability-zone");
}

TEST(Cinder, SnapshotOfAnInUseVolumeIsForced) {
  Harness h;
  h.PushToken();
  h.transport.Push(202, R"({"snapshot": {"id": "sn-1", "volume_id": "v-d", "status": "creating",
      "size": 10, "metadata": {"ra_cluster": "main"}, "name": "golden-1", "description": null,
      "created_at": "2026-11-21T04:43:40.000000", "updated_at": null}})");
  CinderClient cinder(h.session);
  auto snap = cinder.CreateSnapshot(
      {.volume_id = "v-d", .name = "golden-1", .metadata = {{"ra_cluster", "main"}}});
  ASSERT_TRUE(snap) << snap.error().message;
  EXPECT_EQ(snap->status, "creating");
  EXPECT_EQ(snap->size_gb, 10);
  const HttpRequest call = h.transport.requests()[1];
  EXPECT_EQ(call.url, "https://volume.example/v3/p-42/snapshots");
  auto s = BodyOf(call)["snapshot"];
  EXPECT_EQ(s["force"], true);
  EXPECT_EQ(s["volume_id"], "v-d");
  EXPECT_EQ(s["metadata"]["ra_cluster"], "main");
}

TEST(Cinder, VolumeFromSnapshotTakesTheSnapshotsSizeAndCarriesMetadata) {
  Harness h;
  h.PushToken();
  h.transport.Push(200, R"({"snapshot": {"id": "sn-1", "volume_id": "v-d", "status": "available",
      "size": 25, "metadata": {}, "name": "g", "created_at": "2026-11-21T04:43:40.000000"}})");
  h.transport.Push(202, R"({"volume": {"id": "v-new", "status": "creating", "size": 25,
      "availability_zone": "az1", "snapshot_id": "sn-1", "metadata": {"ra_replica": "r1"},
      "attachments": [], "name": "r1", "created_at": "2026-11-21T04:43:41.000000"}})");
  CinderClient cinder(h.session);
  auto v = cinder.CreateVolume({.name = "r1",
                                .snapshot_id = "sn-1",
                                .availability_zone = "az1",
                                .metadata = {{"ra_replica", "r1"}}});
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->id, "v-new");
  auto body = BodyOf(h.transport.requests()[2])["volume"];
  EXPECT_EQ(body["size"], 25);
  EXPECT_EQ(body["snapshot_id"], "sn-1");
  EXPECT_EQ(body["availability_zone"], "az1");
  EXPECT_EQ(body["metadata"]["ra_replica"], "r1");
}

TEST(Cinder, ListsByMetadataAsJsonInTheQuery) {
  Harness h;
  h.PushToken();
  h.transport.Push(200, R"({"snapshots": []})");
  h.transport.Push(200, R"({"volumes": [{"id": "v1", "status": "in-use", "size": 10,
      "metadata": {"ra_cluster": "main"}, "attachments": [{"server_id": "s1",
      "attachment_id": "a1", "volume_id": "v1", "device": "/dev/vda"}]}]})");
  CinderClient cinder(h.session);
  ASSERT_TRUE(cinder.ListSnapshots({{"ra_cluster", "main"}}));
  auto volumes = cinder.ListVolumes({{"ra_cluster", "main"}});
  ASSERT_TRUE(volumes);
  EXPECT_EQ((*volumes)[0].attached_server_ids, std::vector<std::string>{"s1"});
  auto requests = h.transport.requests();
  EXPECT_EQ(requests[1].url,
            "https://volume.example/v3/p-42/snapshots/"
            "detail?metadata=%7B%22ra_cluster%22%3A%22main%22%7D");
  EXPECT_EQ(
      requests[2].url,
      "https://volume.example/v3/p-42/volumes/detail?metadata=%7B%22ra_cluster%22%3A%22main%22%7D");
}

TEST(Cinder, QuotaErrorAndLimits) {
  Harness h;
  h.PushToken();
  h.transport.Push(
      413,
      R"({"overLimit": {"code": 413, "message": "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 25G, quota is 100G and 90G has been consumed."}})");
  h.transport.Push(200, R"({"limits": {"rate": [], "absolute": {"totalSnapshotsUsed": 1,
      "maxTotalBackups": 10, "maxTotalVolumeGigabytes": 1000, "maxTotalSnapshots": 10,
      "maxTotalBackupGigabytes": 1000, "totalBackupGigabytesUsed": 0, "maxTotalVolumes": 10,
      "totalVolumesUsed": 3, "totalBackupsUsed": 0, "totalGigabytesUsed": 30}}})");
  CinderClient cinder(h.session);
  auto v = cinder.CreateVolume({.name = "r1", .snapshot_id = "sn-1", .size_gb = 25});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().kind, ErrorKind::kQuota);
  EXPECT_NE(v.error().message.find("VolumeSizeExceedsAvailableQuota"), std::string::npos);
  auto limits = cinder.GetLimits();
  ASSERT_TRUE(limits);
  EXPECT_EQ(limits->max_volumes, 10);
  EXPECT_EQ(limits->used_gigabytes, 30);
}

TEST(Designate, CreatesAndDeletesARecordsets) {
  Harness h;
  h.PushToken();
  h.transport.Push(200, R"({"zones": [{"id": "z-1", "name": "db.example.com.", "status": "ACTIVE"}],
      "links": {"self": "x"}, "metadata": {"total_count": 1}})");
  h.transport.Push(202, R"({"id": "rs-1", "zone_id": "z-1", "name": "r1.db.example.com.",
      "type": "A", "records": ["10.0.0.7"], "ttl": 60, "status": "PENDING", "action": "CREATE",
      "version": 1, "links": {"self": "x"}})");
  h.transport.Push(202, "");
  DesignateClient dns(h.session);
  auto zone = dns.FindZone("db.example.com");
  ASSERT_TRUE(zone) << zone.error().message;
  EXPECT_EQ(*zone, "z-1");
  auto rs = dns.CreateARecordset(*zone, "r1.db.example.com", {"10.0.0.7"}, 60);
  ASSERT_TRUE(rs) << rs.error().message;
  EXPECT_EQ(rs->id, "rs-1");
  EXPECT_EQ(rs->records, std::vector<std::string>{"10.0.0.7"});
  EXPECT_TRUE(dns.DeleteRecordset("z-1", "rs-1"));
  auto requests = h.transport.requests();
  EXPECT_EQ(requests[1].url, "https://dns.example/v2/zones?name=db.example.com.");
  EXPECT_EQ(requests[2].url, "https://dns.example/v2/zones/z-1/recordsets");
  auto body = BodyOf(requests[2]);
  EXPECT_EQ(body["name"], "r1.db.example.com.");
  EXPECT_EQ(body["type"], "A");
  EXPECT_EQ(body["ttl"], 60);
  EXPECT_EQ(requests[3].method, "DELETE");
  EXPECT_EQ(requests[3].url, "https://dns.example/v2/zones/z-1/recordsets/rs-1");
}

}  // namespace
}  // namespace ra::openstack
