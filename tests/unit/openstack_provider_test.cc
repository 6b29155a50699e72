#include <gtest/gtest.h>

#include "openstack/openstack_cloud_provider.h"
#include "openstack_test_support.h"
#include "testing/fake_cloud_provider.h"

namespace ra::openstack {
namespace {

using namespace std::chrono_literals;
using ra::testing::FakeCloudProvider;
using testing::BodyOf;
using testing::Harness;

ReplicaSpec Spec() {
  return ReplicaSpec{.cluster = "main",
                     .name = "main-r1",
                     .snapshot_id = "sn-1",
                     .volume_size_gb = 10,
                     .availability_zone = "az1",
                     .flavor_id = "m1",
                     .image_id = "img-1",
                     .network_ids = {"net-1"},
                     .security_groups = {"pg"},
                     .key_name = "ops",
                     .metadata = {{"purpose", "read"}},
                     .user_data = "{}"};
}

TEST(OpenStackCloudProvider, ListReplicasJoinsServersAndVolumesByReplicaName) {
  Harness h;
  h.PushToken();
  h.transport.Push(200, R"({"servers": [
      {"id": "s1", "name": "main-r1", "status": "ACTIVE", "tags": ["replica-autoscaler", "ra-cluster:main"], "metadata": {"ra_managed_by": "replica-autoscaler", "ra_cluster": "main", "ra_replica": "main-r1"},
       "addresses": {"net": [{"addr": "10.0.0.7", "version": 4, "OS-EXT-IPS:type": "fixed"}]},
       "OS-EXT-STS:task_state": null},
      {"id": "s2", "name": "main-r3", "status": "BUILD", "tags": ["replica-autoscaler", "ra-cluster:main"], "metadata": {"ra_managed_by": "replica-autoscaler", "ra_cluster": "main", "ra_replica": "main-r3"}},
      {"id": "s3", "name": "main-r4", "status": "ACTIVE", "tags": ["replica-autoscaler", "ra-cluster:main"],
       "metadata": {"ra_replica": "main-r4"}},
      {"id": "s4", "name": "main-r5", "status": "ACTIVE", "tags": ["replica-autoscaler", "ra-cluster:other"],
       "metadata": {"ra_managed_by": "replica-autoscaler", "ra_cluster": "main", "ra_replica": "main-r5"}},
      {"id": "s5", "name": "primary", "status": "ACTIVE", "tags": [], "metadata": {}}]})");
  h.transport.Push(200, R"({"volumes": [
      {"id": "v1", "status": "in-use", "size": 10, "name": "main-r1",
       "metadata": {"ra_cluster": "main", "ra_role": "replica", "ra_replica": "main-r1"}},
      {"id": "v2", "status": "available", "size": 10, "name": "main-r2",
       "metadata": {"ra_cluster": "main", "ra_role": "replica", "ra_replica": "main-r2"}},
      {"id": "v9", "status": "available", "size": 10, "name": "stranger",
       "metadata": {"ra_cluster": "other", "ra_role": "replica", "ra_replica": "x"}}]})");
  OpenStackCloudProvider provider(h.session);
  auto replicas = provider.ListReplicas("main");
  ASSERT_TRUE(replicas) << replicas.error().message;
  ASSERT_EQ(replicas->size(), 3u);
  EXPECT_EQ((*replicas)[0].name, "main-r1");
  EXPECT_EQ((*replicas)[0].server->address, "10.0.0.7");
  EXPECT_EQ((*replicas)[0].volume->id, "v1");
  EXPECT_EQ((*replicas)[1].name, "main-r2");  // orphan volume
  EXPECT_FALSE((*replicas)[1].server);
  EXPECT_EQ((*replicas)[2].name, "main-r3");  // server without a volume of ours
  EXPECT_FALSE((*replicas)[2].volume);
  // main-r4 has our tags but not our metadata, main-r5 our metadata but another cluster's tag,
  // "primary" neither (a cloud that ignored ?tags=): none of them is ours.
  auto requests = h.transport.requests();
  EXPECT_NE(requests[1].url.find("tags=replica-autoscaler%2Cra-cluster%3Amain"), std::string::npos);
  EXPECT_NE(requests[2].url.find("volumes/detail?metadata="), std::string::npos);
}

TEST(OpenStackCloudProvider, CreateReplicaVolumeIsIdempotent) {
  Harness h;
  h.PushToken();
  h.transport.Push(200, R"({"volumes": []})");
  h.transport.Push(202, R"({"volume": {"id": "v-new", "status": "creating", "size": 10,
      "metadata": {"ra_replica": "main-r1"}}})");
  h.transport.Push(200, R"({"volumes": [{"id": "v-new", "status": "creating", "size": 10,
      "metadata": {"ra_cluster": "main", "ra_replica": "main-r1", "ra_role": "replica"}}]})");
  OpenStackCloudProvider provider(h.session);
  auto first = provider.CreateReplicaVolume(Spec());
  ASSERT_TRUE(first) << first.error().message;
  auto second = provider.CreateReplicaVolume(Spec());
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->id, "v-new");
  auto requests = h.transport.requests();
  ASSERT_EQ(requests.size(), 4u) << "the second call creates nothing";
  auto body = BodyOf(requests[2])["volume"];
  EXPECT_EQ(body["metadata"]["ra_managed_by"], "replica-autoscaler");
  EXPECT_EQ(body["metadata"]["ra_cluster"], "main");
  EXPECT_EQ(body["metadata"]["ra_replica"], "main-r1");
  EXPECT_EQ(body["metadata"]["ra_role"], "replica");
  EXPECT_EQ(body["snapshot_id"], "sn-1");
}

TEST(OpenStackCloudProvider, CreateReplicaServerNeedsAnAvailableVolumeAndTagsTheServer) {
  Harness h;
  h.PushToken();
  h.transport.Push(200, R"({"servers": []})");
  h.transport.Push(200, R"({"volume": {"id": "v1", "status": "creating", "size": 10}})");
  OpenStackCloudProvider provider(h.session);
  auto early = provider.CreateReplicaServer(Spec(), "v1");
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().kind, ErrorKind::kConflict);

  h.transport.Push(200, R"({"servers": []})");
  h.transport.Push(200, R"({"volume": {"id": "v1", "status": "available", "size": 10}})");
  h.transport.Push(202, R"({"server": {"id": "s-1", "links": []}})");
  auto server = provider.CreateReplicaServer(Spec(), "v1");
  ASSERT_TRUE(server) << server.error().message;
  auto body = BodyOf(h.transport.requests().back())["server"];
  EXPECT_EQ(body["tags"], nlohmann::json::parse(R"(["replica-autoscaler", "ra-cluster:main"])"));
  EXPECT_EQ(body["metadata"]["ra_replica"], "main-r1");
  EXPECT_EQ(body["metadata"]["purpose"], "read");
  EXPECT_EQ(body["imageRef"], "img-1");
  EXPECT_EQ(body["block_device_mapping_v2"][0]["uuid"], "img-1");
  EXPECT_EQ(body["block_device_mapping_v2"][0]["boot_index"], 0);
  EXPECT_EQ(body["block_device_mapping_v2"][1]["uuid"], "v1");
  EXPECT_EQ(body["block_device_mapping_v2"][1]["boot_index"], -1);

  // Asked again, it finds the server and creates nothing.
  const size_t before = h.transport.requests().size();
  h.transport.Push(200, R"({"servers": [{"id": "s-1", "name": "main-r1", "status": "BUILD",
      "tags": ["replica-autoscaler", "ra-cluster:main"], "metadata": {"ra_managed_by": "replica-autoscaler", "ra_cluster": "main", "ra_replica": "main-r1"}}]})");
  auto again = provider.CreateReplicaServer(Spec(), "v1");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, "s-1");
  EXPECT_EQ(h.transport.requests().size(), before + 1);
}

TEST(OpenStackCloudProvider, DeleteReplicaGoesServerThenVolume) {
  Harness h;
  h.PushToken();
  OpenStackCloudProvider provider(h.session);
  const char* server = R"({"servers": [{"id": "s1", "name": "main-r1", "status": "ACTIVE",
      "tags": ["replica-autoscaler", "ra-cluster:main"], "metadata": {"ra_managed_by": "replica-autoscaler", "ra_cluster": "main", "ra_replica": "main-r1"}}]})";
  const char* volume_in_use = R"({"volumes": [{"id": "v1", "status": "in-use", "size": 10,
      "metadata": {"ra_cluster": "main", "ra_role": "replica", "ra_replica": "main-r1"}}]})";
  const char* volume_available = R"({"volumes": [{"id": "v1", "status": "available", "size": 10,
      "metadata": {"ra_cluster": "main", "ra_role": "replica", "ra_replica": "main-r1"}}]})";
  h.transport.Push(200, server);
  h.transport.Push(200, volume_in_use);
  h.transport.Push(200, R"({"server": {"id": "s1", "name": "main-r1", "status": "ACTIVE",
      "os-extended-volumes:volumes_attached": [{"id": "v1"}]}})");
  h.transport.Push(204, "");
  EXPECT_EQ(*provider.DeleteReplica("main", "main-r1"), DeleteProgress::kServerDeleting);
  EXPECT_EQ(h.transport.requests().back().method, "DELETE");
  EXPECT_NE(h.transport.requests().back().url.find("/servers/s1"), std::string::npos);

  h.transport.Push(200, R"({"servers": []})");
  h.transport.Push(200, volume_in_use);
  EXPECT_EQ(*provider.DeleteReplica("main", "main-r1"), DeleteProgress::kWaitingForVolume);

  h.transport.Push(200, R"({"servers": []})");
  h.transport.Push(200, volume_available);
  h.transport.Push(202, "");
  EXPECT_EQ(*provider.DeleteReplica("main", "main-r1"), DeleteProgress::kVolumeDeleting);
  EXPECT_NE(h.transport.requests().back().url.find("/volumes/v1"), std::string::npos);

  h.transport.Push(200, R"({"servers": []})");
  h.transport.Push(200, R"({"volumes": []})");
  EXPECT_EQ(*provider.DeleteReplica("main", "main-r1"), DeleteProgress::kDone);
}

// A volume that the list by metadata misses (a cloud that cuts or filters lists wrongly) is still
// found from the server's attachments, and after the server is gone from what was remembered
// when its delete was requested: it is deleted, never leaked.
TEST(OpenStackCloudProvider, TheDataVolumeIsLearnedFromTheServerAndNeverLeaked) {
  Harness h;
  h.PushToken();
  OpenStackCloudProvider provider(h.session);
  const std::string server =
      R"({"id": "s1", "name": "main-r1", "status": "ACTIVE",
      )" +
      std::string(
          R"("tags": ["replica-autoscaler", "ra-cluster:main"], "metadata": {"ra_managed_by": "replica-autoscaler", "ra_cluster": "main", "ra_replica": "main-r1"},
      "os-extended-volumes:volumes_attached": [{"id": "v-root"}, {"id": "v1"}]})");
  const char* v1_in_use = R"({"volume": {"id": "v1", "status": "in-use", "size": 10,
      "metadata": {"ra_cluster": "main", "ra_role": "replica", "ra_replica": "main-r1"}}})";
  const char* v1_available = R"({"volume": {"id": "v1", "status": "available", "size": 10,
      "metadata": {"ra_cluster": "main", "ra_role": "replica", "ra_replica": "main-r1"}}})";
  const char* not_ours = R"({"volume": {"id": "v-root", "status": "in-use", "size": 10,
      "metadata": {}}})";
  h.transport.Push(200, R"({"servers": [)" + server + "]}");
  h.transport.Push(200, R"({"volumes": []})");
  h.transport.Push(200, not_ours);
  h.transport.Push(200, v1_in_use);
  auto listed = provider.ListReplicas("main");
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 1u);
  ASSERT_TRUE((*listed)[0].volume);
  EXPECT_EQ((*listed)[0].volume->id, "v1");

  // Delete: the list misses the volume again; the server's own answer names it.
  h.transport.Push(200, R"({"servers": [)" + server + "]}");
  h.transport.Push(200, R"({"volumes": []})");
  h.transport.Push(200, not_ours);
  h.transport.Push(200, v1_in_use);
  h.transport.Push(200, R"({"server": )" + server + "}");
  h.transport.Push(204, "");
  EXPECT_EQ(*provider.DeleteReplica("main", "main-r1"), DeleteProgress::kServerDeleting);

  // The server is gone and the list still misses the volume: it is read by id and deleted.
  h.transport.Push(200, R"({"servers": []})");
  h.transport.Push(200, R"({"volumes": []})");
  h.transport.Push(200, not_ours);  // remembered, but not ours: left alone
  h.transport.Push(200, v1_available);
  h.transport.Push(202, "");
  EXPECT_EQ(*provider.DeleteReplica("main", "main-r1"), DeleteProgress::kVolumeDeleting);
  EXPECT_EQ(h.transport.requests().back().method, "DELETE");
  EXPECT_NE(h.transport.requests().back().url.find("/volumes/v1"), std::string::npos);
  for (const auto& r : h.transport.requests()) {
    EXPECT_FALSE(r.method == "DELETE" && r.url.find("v-root") != std::string::npos)
        << "a volume without our metadata is never deleted";
  }
}

TEST(OpenStackCloudProvider, SnapshotsAndQuota) {
  Harness h;
  h.PushToken();
  h.transport.Push(202, R"({"snapshot": {"id": "sn-2", "status": "creating", "volume_id": "vd",
      "size": 10, "metadata": {}}})");
  h.transport.Push(200, R"({"snapshots": [
      {"id": "sn-2", "status": "available", "volume_id": "vd", "size": 10,
       "created_at": "2026-11-21T05:00:00.000000", "metadata": {"ra_cluster": "main", "ra_role": "golden"}},
      {"id": "sn-1", "status": "available", "volume_id": "vd", "size": 10,
       "created_at": "2026-11-21T04:00:00.000000", "metadata": {"ra_cluster": "main", "ra_role": "golden"}}]})");
  h.transport.Push(200, R"({"limits": {"rate": [], "absolute": {"maxTotalInstances": 10,
      "totalInstancesUsed": 4, "maxTotalCores": -1, "totalCoresUsed": 8, "maxTotalRAMSize": 100,
      "totalRAMUsed": 150}}})");
  h.transport.Push(200, R"({"limits": {"rate": [], "absolute": {"maxTotalVolumes": 10,
      "totalVolumesUsed": 3, "maxTotalVolumeGigabytes": 100, "totalGigabytesUsed": 30,
      "maxTotalSnapshots": 5, "totalSnapshotsUsed": 5}}})");
  OpenStackCloudProvider provider(h.session);
  auto snap = provider.SnapshotVolume("main", "vd", "main-golden-1");
  ASSERT_TRUE(snap);
  auto body = BodyOf(h.transport.requests()[1])["snapshot"];
  EXPECT_EQ(body["force"], true);
  EXPECT_EQ(body["metadata"]["ra_role"], "golden");
  auto list = provider.ListSnapshots("main");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "sn-1") << "oldest first";
  auto quota = provider.RemainingQuota();
  ASSERT_TRUE(quota) << quota.error().message;
  EXPECT_EQ(quota->instances, 6);
  EXPECT_EQ(quota->cores, -1);
  EXPECT_EQ(quota->ram_mb, 0);
  EXPECT_EQ(quota->volumes, 7);
  EXPECT_EQ(quota->gigabytes, 70);
  EXPECT_EQ(quota->snapshots, 0);
}

TEST(OpenStackCloudProvider, BadNamesNeverReachTheCloud) {
  Harness h;
  OpenStackCloudProvider provider(h.session);
  ReplicaSpec spec = Spec();
  spec.name = "bad/name";
  EXPECT_EQ(provider.CreateReplicaVolume(spec).error().kind, ErrorKind::kBadRequest);
  EXPECT_EQ(provider.ListReplicas("a,b").error().kind, ErrorKind::kBadRequest);
  EXPECT_TRUE(h.transport.requests().empty());
}

TEST(FakeCloudProvider, BuildsAndTearsDownAReplicaStepByStep) {
  FakeCloudProvider cloud;
  FakeClock clock;
  ra::testing::FakeSleeper sleeper(clock);
  cloud.set_auto_settle(true);
  auto r = CreateReplicaAndWait(cloud, Spec(), clock, sleeper, 1min, 1s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->server->status, "ACTIVE");
  EXPECT_FALSE(r->server->address.empty());
  EXPECT_EQ(r->volume->status, "in-use");
  ASSERT_TRUE(DeleteReplicaAndWait(cloud, "main", "main-r1", clock, sleeper, 1min, 1s));
  EXPECT_TRUE(cloud.ListReplicas("main")->empty());
}

TEST(FakeCloudProvider, ServerErrorAndInjectedFailures) {
  FakeCloudProvider cloud;
  FakeClock clock;
  ra::testing::FakeSleeper sleeper(clock);
  cloud.set_auto_settle(true);
  cloud.FailServerOf("main-r1", "No valid host was found.");
  auto r = CreateReplicaAndWait(cloud, Spec(), clock, sleeper, 1min, 1s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("No valid host"), std::string::npos);
  cloud.FailNext("ListReplicas", Error{ErrorKind::kTransient, "503"});
  EXPECT_EQ(cloud.ListReplicas("main").error().kind, ErrorKind::kTransient);
  EXPECT_TRUE(cloud.ListReplicas("main"));
}

TEST(CreateReplicaAndWait, TimesOutWhenTheVolumeNeverComes) {
  FakeCloudProvider cloud;  // no auto-settle: stays creating
  FakeClock clock;
  ra::testing::FakeSleeper sleeper(clock);
  auto r = CreateReplicaAndWait(cloud, Spec(), clock, sleeper, 10s, 1s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kTimeout);
  EXPECT_EQ(sleeper.sleeps.size(), 10u);
}

}  // namespace
}  // namespace ra::openstack
