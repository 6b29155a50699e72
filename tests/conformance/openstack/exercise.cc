// Drives every call of the OpenStack client against a cloud (the simulator in conformance
// runs), so that the requests it sends can be checked against Nova's and Cinder's own request
// schemas. Reads the cloud from clouds.yaml / OS_* like the openstack CLI.
//
//   openstack_exercise --donor-volume UUID [--network UUID] [--image UUID] [--control URL]
//
// --control (the simulator's base URL) lets it expire every token half-way, which the client
// must survive with exactly one re-authentication. Exit 0 when every step worked.

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "core/http_transport.h"
#include "core/sleeper.h"
#include "openstack/cloud_config.h"
#include "openstack/designate.h"
#include "openstack/openstack_cloud_provider.h"
#include "openstack/session.h"

namespace {

using namespace std::chrono_literals;
using namespace ra;
using namespace ra::openstack;

int Failed(const std::string& step, const Error& error) {
  std::fprintf(stderr, "FAIL %s: %s\n", step.c_str(), error.ToString().c_str());
  return 1;
}

void Step(const std::string& what) { std::printf("ok   %s\n", what.c_str()); }

}  // namespace

int main(int argc, char** argv) {
  std::string donor_volume;
  std::string network = "6d0a3f7a-2b9c-4a5e-9a57-1f2e3d4c5b6a";
  std::string image = "c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1e";  // the simulator's replica-image
  std::string control;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--donor-volume") == 0) donor_volume = argv[i + 1];
    if (std::strcmp(argv[i], "--network") == 0) network = argv[i + 1];
    if (std::strcmp(argv[i], "--image") == 0) image = argv[i + 1];
    if (std::strcmp(argv[i], "--control") == 0) control = argv[i + 1];
  }
  if (donor_volume.empty()) {
    std::fprintf(stderr,
                 "usage: %s --donor-volume UUID [--network UUID] [--image UUID] [--control URL]\n",
                 argv[0]);
    return 2;
  }
  auto options = LoadCloudConfig("", SystemCloudConfigSources());
  if (!options) return Failed("load cloud config", options.error());
  options->retry.initial_backoff = 100ms;
  options->retry.max_backoff = 1s;
  CurlHttpTransport transport(options->http);
  SystemClock clock;
  RealSleeper sleeper;
  Session session(*options, {transport, clock, sleeper, nullptr});
  OpenStackCloudProvider cloud(session);

  auto zones = cloud.AvailabilityZones();
  if (!zones || zones->empty()) {
    return Failed("availability zones", zones ? Error{ErrorKind::kParse, "none"} : zones.error());
  }
  Step(fmt::format("availability zones: {}", zones->front()));
  auto quota = cloud.RemainingQuota();
  if (!quota) return Failed("quota", quota.error());
  Step(fmt::format("quota: {} instances, {} volumes left", quota->instances, quota->volumes));

  auto snapshot = cloud.SnapshotVolume("conformance", donor_volume, "conformance-golden");
  if (!snapshot) return Failed("snapshot", snapshot.error());
  auto ready = WaitForSnapshot(cloud, "conformance", snapshot->id, clock, sleeper, 60s, 100ms);
  if (!ready) return Failed("snapshot available", ready.error());
  Step("snapshot " + snapshot->id);

  if (!control.empty()) {
    // Every token is revoked: the next call gets a 401 and must re-authenticate once.
    auto r = transport.Send({"POST", control + "/control/expire-tokens", {}, "", std::nullopt});
    if (!r || r->status != 204) {
      return Failed("expire tokens", r ? Error{ErrorKind::kInternal, "status"} : r.error());
    }
    Step("tokens expired by the cloud");
  }

  ReplicaSpec spec{.cluster = "conformance",
                   .name = "conformance-r1",
                   .snapshot_id = snapshot->id,
                   .volume_size_gb = 0,
                   .volume_type = "",
                   .availability_zone = zones->front(),
                   .flavor_id = "pg.replica",
                   .image_id = image,
                   .network_ids = {network},
                   .security_groups = {"default", "postgres"},
                   .key_name = "ops",
                   .metadata = {{"purpose", "conformance"}},
                   .user_data = R"({"primary_host":"127.0.0.1","primary_port":5432})"};
  auto replica = CreateReplicaAndWait(cloud, spec, clock, sleeper, 60s, 100ms);
  if (!replica) return Failed("create replica", replica.error());
  Step("replica " + replica->name + " on " + replica->server->address);
  if (session.auth().authentications() < 2 && !control.empty()) {
    return Failed("re-authentication",
                  Error{ErrorKind::kAuth, "the client never re-authenticated"});
  }

  auto listed = cloud.ListReplicas("conformance");
  if (!listed || listed->size() != 1) {
    return Failed("list replicas", listed ? Error{ErrorKind::kParse, "not one"} : listed.error());
  }
  Step("list replicas by tags");
  auto snapshots = cloud.ListSnapshots("conformance");
  if (!snapshots || snapshots->size() != 1) {
    return Failed("list snapshots",
                  snapshots ? Error{ErrorKind::kParse, "not one"} : snapshots.error());
  }
  Step("list snapshots by metadata");

  DesignateClient dns(session);
  auto zone = dns.FindZone("cloud.internal");
  if (!zone) return Failed("dns zone", zone.error());
  auto record =
      dns.CreateARecordset(*zone, "conformance-r1.cloud.internal", {replica->server->address}, 60);
  if (!record) return Failed("create A record", record.error());
  if (auto ok = dns.DeleteRecordset(*zone, record->id); !ok) {
    return Failed("delete A record", ok.error());
  }
  Step("designate A recordset created and deleted");

  if (auto ok =
          DeleteReplicaAndWait(cloud, "conformance", "conformance-r1", clock, sleeper, 60s, 100ms);
      !ok) {
    return Failed("delete replica", ok.error());
  }
  Step("replica deleted (server, then volume)");
  if (auto ok = cloud.DeleteSnapshot(snapshot->id); !ok)
    return Failed("delete snapshot", ok.error());
  Step("snapshot deleted");
  std::printf("exercise: all steps passed\n");
  return 0;
}
