#include "openstack/cloud_provider.h"

#include <fmt/format.h>

#include "core/sleeper.h"

namespace ra::openstack {

std::string ClusterTag(std::string_view cluster) { return "ra-cluster:" + std::string(cluster); }

Result<void> ValidateName(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > 40) {
    return Fail(ErrorKind::kBadRequest,
                fmt::format("{} '{}' must have 1 to 40 characters", what, name));
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return Fail(
          ErrorKind::kBadRequest,
          fmt::format("{} '{}' may hold only letters, digits, '.', '_' and '-'", what, name));
    }
  }
  return {};
}

std::string_view ToString(DeleteProgress progress) {
  switch (progress) {
    case DeleteProgress::kServerDeleting:
      return "server-deleting";
    case DeleteProgress::kWaitingForVolume:
      return "waiting-for-volume";
    case DeleteProgress::kVolumeDeleting:
      return "volume-deleting";
    case DeleteProgress::kDone:
      return "done";
  }
  return "unknown";
}

namespace {

std::optional<ReplicaFacts> Find(const std::vector<ReplicaFacts>& replicas,
                                 const std::string& name) {
  for (const ReplicaFacts& r : replicas) {
    if (r.name == name) return r;
  }
  return std::nullopt;
}

}  // namespace

Result<ReplicaFacts> CreateReplicaAndWait(CloudProvider& provider, const ReplicaSpec& spec,
                                          const Clock& clock, Sleeper& sleeper, Duration timeout,
                                          Duration poll) {
  const TimePoint deadline = clock.Now() + timeout;
  auto volume = provider.CreateReplicaVolume(spec);
  if (!volume) return Fail(volume.error());
  std::string volume_status = volume->status;
  while (volume_status != "available" && volume_status != "in-use") {
    if (volume_status == "error") {
      return Fail(ErrorKind::kInternal,
                  fmt::format("replica {}: volume {} went to error", spec.name, volume->id));
    }
    if (clock.Now() >= deadline) {
      return Fail(ErrorKind::kTimeout, fmt::format("replica {}: volume {} still '{}'", spec.name,
                                                   volume->id, volume_status));
    }
    sleeper.SleepFor(poll);
    auto replicas = provider.ListReplicas(spec.cluster);
    if (!replicas) return Fail(replicas.error());
    auto r = Find(*replicas, spec.name);
    if (!r || !r->volume) {
      return Fail(ErrorKind::kNotFound,
                  fmt::format("replica {}: volume {} disappeared", spec.name, volume->id));
    }
    volume_status = r->volume->status;
  }
  auto server = provider.CreateReplicaServer(spec, volume->id);
  if (!server) return Fail(server.error());
  for (;;) {
    auto replicas = provider.ListReplicas(spec.cluster);
    if (!replicas) return Fail(replicas.error());
    auto r = Find(*replicas, spec.name);
    if (r && r->server) {
      // ACTIVE with an address; a server made without a network never gets one.
      if (r->server->status == "ACTIVE" && (!r->server->address.empty() || spec.without_network)) {
        return *r;
      }
      if (r->server->status == "ERROR") {
        return Fail(ErrorKind::kInternal, fmt::format("replica {}: server {} went ERROR: {}",
                                                      spec.name, r->server->id, r->server->fault));
      }
    }
    if (clock.Now() >= deadline) {
      return Fail(ErrorKind::kTimeout,
                  fmt::format("replica {}: server {} not ACTIVE in time", spec.name, server->id));
    }
    sleeper.SleepFor(poll);
  }
}

Result<void> DeleteReplicaAndWait(CloudProvider& provider, const std::string& cluster,
                                  const std::string& name, const Clock& clock, Sleeper& sleeper,
                                  Duration timeout, Duration poll) {
  const TimePoint deadline = clock.Now() + timeout;
  for (;;) {
    auto progress = provider.DeleteReplica(cluster, name);
    if (!progress) return Fail(progress.error());
    if (*progress == DeleteProgress::kDone) return {};
    if (clock.Now() >= deadline) {
      return Fail(ErrorKind::kTimeout,
                  fmt::format("replica {}: delete still at {}", name, ToString(*progress)));
    }
    sleeper.SleepFor(poll);
  }
}

Result<SnapshotFacts> WaitForSnapshot(CloudProvider& provider, const std::string& cluster,
                                      const std::string& snapshot_id, const Clock& clock,
                                      Sleeper& sleeper, Duration timeout, Duration poll) {
  const TimePoint deadline = clock.Now() + timeout;
  for (;;) {
    auto snapshots = provider.ListSnapshots(cluster);
    if (!snapshots) return Fail(snapshots.error());
    for (const SnapshotFacts& s : *snapshots) {
      if (s.id != snapshot_id) continue;
      if (s.status == "available") return s;
      if (s.status == "error") {
        return Fail(ErrorKind::kInternal, fmt::format("snapshot {} went to error", snapshot_id));
      }
    }
    if (clock.Now() >= deadline) {
      return Fail(ErrorKind::kTimeout,
                  fmt::format("snapshot {} not available in time", snapshot_id));
    }
    sleeper.SleepFor(poll);
  }
}

}  // namespace ra::openstack
