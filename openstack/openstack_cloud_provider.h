#pragma once

#include <memory>

#include "openstack/cinder.h"
#include "openstack/cloud_provider.h"
#include "openstack/nova.h"
#include "openstack/session.h"

namespace ra::openstack {

/// CloudProvider over Nova, Cinder (and Keystone, through the Session).
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

 private:
  Session& session_;
  NovaClient nova_;
  CinderClient cinder_;
};

ServerFacts ToFacts(const Server& server);
VolumeFacts ToFacts(const Volume& volume);
SnapshotFacts ToFacts(const Snapshot& snapshot);

}  // namespace ra::openstack
