// A replica made through CloudProvider on the cloud simulator is a real PostgreSQL standby that
// streams from the primary; deleting it stops it and removes its volume's data.

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/sleeper.h"
#include "openstack/openstack_cloud_provider.h"
#include "openstack/session.h"
#include "tests/integration/openstack_harness.h"

namespace ra::testing {
namespace {

using namespace std::chrono_literals;
using openstack::OpenStackCloudProvider;
using openstack::ReplicaSpec;

constexpr const char* kDonorVolume = "9a3c1f6e-5b2d-4c8e-a1f0-7d6e5c4b3a21";
constexpr const char* kNetwork = "6d0a3f7a-2b9c-4a5e-9a57-1f2e3d4c5b6a";

// Addresses per test process, so that concurrent runs on one machine do not collide.
int Octet() { return 150 + static_cast<int>(getpid() % 40); }

TEST(OpenStackReplica, CreatedThroughCloudProviderStreamsFromThePrimary) {
  auto user = UnprivilegedUser();
  ASSERT_TRUE(user) << user.error().message;
  TempDir dir("ra-os-itest");
  const int octet = Octet();
  auto pg = PostgresPair::Start(dir.path(), octet);
  ASSERT_TRUE(pg) << pg.error().message;
  auto sim = CloudSim::Start({.root = dir.path() + "/cloud",
                              .donor_dir = (*pg)->donor_dir(),
                              .donor_address = (*pg)->donor_host(),
                              .donor_volume_id = kDonorVolume,
                              .address_base = "127.0." + std::to_string(octet),
                              .capture_path = dir.path() + "/requests.jsonl"});
  ASSERT_TRUE(sim) << sim.error().message;

  CurlHttpTransport transport;
  SystemClock clock;
  RealSleeper sleeper;
  openstack::Session session((*sim)->ClientOptions(), {transport, clock, sleeper, nullptr});
  OpenStackCloudProvider cloud(session);

  // Something written on the primary before the snapshot.
  ASSERT_TRUE(QueryOne((*pg)->PrimaryConninfo(),
                       "CREATE TABLE marks (id int PRIMARY KEY, note text); "
                       "INSERT INTO marks VALUES (1, 'before snapshot')"));
  ASSERT_TRUE(Eventually(
      [&] {
        auto n =
            QueryOne("host=" + (*pg)->donor_host() + " port=5432 user=postgres dbname=postgres",
                     "SELECT count(*) FROM marks");
        return n && *n == "1";
      },
      30s))
      << "the donor did not replay the first write";

  auto snapshot = cloud.SnapshotVolume("main", kDonorVolume, "main-golden-1");
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  auto ready = openstack::WaitForSnapshot(cloud, "main", snapshot->id, clock, sleeper, 60s, 100ms);
  ASSERT_TRUE(ready) << ready.error().message << "\n" << (*sim)->LogTail();

  const std::string user_data = nlohmann::json{
      {"primary_host", (*pg)->primary_host()},
      {"primary_port", 5432},
      {"replication_user",
       "replicator"}}.dump();
  ReplicaSpec spec{.cluster = "main",
                   .name = "main-r1",
                   .snapshot_id = snapshot->id,
                   .availability_zone = "nova",
                   .flavor_id = "pg.replica",
                   .image_id = "c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1e",
                   .network_ids = {kNetwork},
                   .security_groups = {"postgres"},
                   .key_name = "ops",
                   .metadata = {{"purpose", "integration-test"}},
                   .user_data = user_data};
  auto replica = openstack::CreateReplicaAndWait(cloud, spec, clock, sleeper, 120s, 100ms);
  ASSERT_TRUE(replica) << replica.error().message << "\n" << (*sim)->LogTail();
  ASSERT_TRUE(replica->server && replica->volume);
  const std::string address = replica->server->address;
  EXPECT_TRUE(address.starts_with("127.0.")) << address;
  EXPECT_NE(address, (*pg)->donor_host());
  EXPECT_EQ(replica->volume->status, "in-use");
  EXPECT_EQ(replica->volume->snapshot_id, snapshot->id);

  // The first-boot script starts PostgreSQL after the server is ACTIVE, as on a real VM.
  const std::string conninfo =
      "host=" + address + " port=5432 user=postgres dbname=postgres connect_timeout=2";
  ASSERT_TRUE(Eventually([&] { return PQping(conninfo.c_str()) == PQPING_OK; }, 60s))
      << "the replica never accepted connections\n"
      << (*sim)->LogTail();

  auto in_recovery = QueryOne(conninfo, "SELECT pg_is_in_recovery()");
  ASSERT_TRUE(in_recovery) << in_recovery.error().message;
  EXPECT_EQ(*in_recovery, "t");
  auto app = QueryOne(conninfo, "SHOW primary_conninfo");
  ASSERT_TRUE(app);
  EXPECT_NE(app->find("application_name=main-r1"), std::string::npos) << *app;
  EXPECT_NE(app->find("host=" + (*pg)->primary_host()), std::string::npos) << *app;
  auto before = QueryOne(conninfo, "SELECT note FROM marks WHERE id = 1");
  ASSERT_TRUE(before) << before.error().message;
  EXPECT_EQ(*before, "before snapshot");

  // It streams: the primary sees it by its own application_name, and new writes arrive.
  EXPECT_TRUE(Eventually(
      [&] {
        auto state = QueryOne((*pg)->PrimaryConninfo(),
                              "SELECT state FROM pg_stat_replication WHERE application_name = "
                              "'main-r1'");
        return state && *state == "streaming";
      },
      30s))
      << "the primary has no streaming standby named main-r1";
  auto replay_before = QueryOne(conninfo, "SELECT pg_last_wal_replay_lsn()");
  ASSERT_TRUE(replay_before);
  ASSERT_TRUE(QueryOne((*pg)->PrimaryConninfo(), "INSERT INTO marks VALUES (2, 'after replica')"));
  EXPECT_TRUE(Eventually(
      [&] {
        auto n = QueryOne(conninfo, "SELECT count(*) FROM marks WHERE id = 2");
        return n && *n == "1";
      },
      30s))
      << "a write on the primary never reached the replica";
  auto advanced =
      QueryOne(conninfo, "SELECT pg_last_wal_replay_lsn() > '" + *replay_before + "'::pg_lsn");
  ASSERT_TRUE(advanced);
  EXPECT_EQ(*advanced, "t");
  // The donor is untouched by the snapshot: still streaming as itself.
  auto donor =
      QueryOne((*pg)->PrimaryConninfo(),
               "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'donor'");
  ASSERT_TRUE(donor);
  EXPECT_EQ(*donor, "1");

  // The replica is found by tags, and deleting it stops PostgreSQL and removes the data.
  auto listed = cloud.ListReplicas("main");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "main-r1");
  const std::string volume_dir = dir.path() + "/cloud/volumes/" + replica->volume->id;
  EXPECT_TRUE(std::filesystem::exists(volume_dir + "/PG_VERSION"));
  auto deleted =
      openstack::DeleteReplicaAndWait(cloud, "main", "main-r1", clock, sleeper, 60s, 100ms);
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_NE(PQping(conninfo.c_str()), PQPING_OK);
  EXPECT_FALSE(std::filesystem::exists(volume_dir));
  EXPECT_TRUE(cloud.ListReplicas("main")->empty());
  ASSERT_TRUE(cloud.DeleteSnapshot(snapshot->id));
}

}  // namespace
}  // namespace ra::testing
