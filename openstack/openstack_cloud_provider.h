#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "openstack/cinder.h"
#include "openstack/cloud_provider.h"
#include "openstack/nova.h"
#include "openstack/session.h"

namespace ra::openstack {

/// CloudProvider over Nova, Cinder (and Keystone, through the Session).
///
/// Ownership never rests on a filter the cloud may ignore: a server is ours only when its own
/// tags hold the managed and cluster tags and its own metadata says ra_managed_by and
/// ra_cluster; a volume or snapshot only when its own metadata says so. A replica's data volume
/// is also learned from its server's attachments, so one that a volume list misses is still
/// found, and deleted after its server.
class OpenStackCloudProvider final : public CloudProvider {
 public:
  /// `session` must outlive the provider.
  explicit OpenStackCloudProvider(Session& session);

  Result<std::vector<ReplicaFacts>> ListReplicas(const std::string& cluster) override;
  Result<VolumeFacts> CreateReplicaVolume(const ReplicaSpec& spec) override;
  Result<ServerFacts> CreateReplicaServer(const ReplicaSpec& spec,
                                          const std::string& volume_id) override;
  Result<DeleteProgress> DeleteReplica(const std::string& cluster,
                                       const std::string& name) override;
  Result<SnapshotFacts> SnapshotVolume(const std::string& cluster, const std::string& volume_id,
                                       const std::string& name) override;
  Result<std::vector<SnapshotFacts>> ListSnapshots(const std::string& cluster) override;
  Result<void> DeleteSnapshot(const std::string& snapshot_id) override;
  Result<std::vector<std::string>> AvailabilityZones() override;
  Result<Quota> RemainingQuota() override;
  Result<std::string> VolumeStatus(const std::string& volume_id) override;
  Result<std::string> ServerStatus(const std::string& server_id) override;
  Result<std::string> SnapshotStatus(const std::string& snapshot_id) override;

 private:
  /// The replica's data volume from its server's attachments, when the list by metadata had
  /// none: only a volume whose own metadata names this replica.
  Result<void> AddAttachedVolume(const std::string& cluster, const Server& server,
                                 ReplicaFacts& replica);

  Session& session_;
  NovaClient nova_;
  CinderClient cinder_;
  std::mutex mu_;
  /// "cluster/replica" -> the volumes attached to its server when its delete was requested;
  /// looked up while the server is going and after, whatever the volume list shows.
  std::map<std::string, std::vector<std::string>> attached_at_delete_;
};

/// True when the server's own tags and metadata say it is a replica of `cluster` made by the
/// service, whatever filter the listing used.
bool OwnedServer(const Server& server, const std::string& cluster);

ServerFacts ToFacts(const Server& server);
VolumeFacts ToFacts(const Volume& volume);
SnapshotFacts ToFacts(const Snapshot& snapshot);

}  // namespace ra::openstack
