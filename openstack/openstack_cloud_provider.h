#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
///
/// Inside a cycle (BeginCycle .. EndCycle) the project is listed at most three times: every
/// server tagged kManagedTag, every volume with ra_role=replica and every snapshot with
/// ra_role=golden (each list paged); each cluster's ListReplicas/ListSnapshots is then the part
/// of that listing its own per-cluster filters would have returned, in the cloud's order, put
/// through the same ownership checks. DeleteReplica and the creations always read the cloud.
class OpenStackCloudProvider final : public CloudProvider {
 public:
  /// `session` must outlive the provider.
  explicit OpenStackCloudProvider(Session& session);

  void BeginCycle() override;
  void EndCycle() override;
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
  /// The replica's data volume from its server's attachments, when the list by metadata had
  /// none: only a volume whose own metadata names this replica.
  Result<void> AddAttachedVolume(const std::string& cluster, const Server& server,
                                 ReplicaFacts& replica);

  /// What the cloud listed for one cluster (per-cluster filters, or the cycle's listing's part).
  /// Pointers into the listing that produced them.
  struct ClusterListing {
    std::vector<const Server*> servers;
    std::vector<const Volume*> volumes;
  };
  /// ListReplicas on what was listed: ownership checks, the join, the attached and remembered
  /// volumes (which may read single volumes).
  Result<std::vector<ReplicaFacts>> JoinReplicas(const std::string& cluster,
                                                 const ClusterListing& listed);
  Result<std::vector<ReplicaFacts>> ListReplicasOfCluster(const std::string& cluster);
  Result<std::vector<SnapshotFacts>> ListSnapshotsOfCluster(const std::string& cluster);

  /// One cycle's listing of the project. Each part is taken at most once, when first needed;
  /// `*_seq` is the write sequence number when it was asked for.
  struct ReplicaListing {
    std::vector<Server> servers;
    std::vector<Volume> volumes;
    std::map<std::string, std::vector<const Server*>> servers_by_tag;
    std::map<std::string, std::vector<const Volume*>> volumes_by_cluster;
  };
  struct SnapshotListing {
    std::vector<Snapshot> snapshots;
    std::map<std::string, std::vector<const Snapshot*>> by_cluster;
  };
  struct CycleListing {
    std::shared_ptr<const Result<ReplicaListing>> replicas;
    uint64_t replicas_seq = 0;
    std::shared_ptr<const Result<SnapshotListing>> snapshots;
    uint64_t snapshots_seq = 0;
  };
  enum class Written { kReplicas, kSnapshots };
  /// Records a write (attempted: a request that failed may still have been done) that touched
  /// `cluster` ("" for a snapshot whose cluster is not known: every cluster's).
  void NoteWrite(Written what, const std::string& cluster);
  /// The cycle's listing part to answer `cluster` from, taking it if no call took it yet;
  /// null outside a cycle or when `cluster` was written to after the part was asked for.
  std::shared_ptr<const Result<ReplicaListing>> SharedReplicas(const std::string& cluster);
  std::shared_ptr<const Result<SnapshotListing>> SharedSnapshots(const std::string& cluster);

  Session& session_;
  NovaClient nova_;
  CinderClient cinder_;
  /// Held while the cycle's listing is taken, so that concurrent callers wait for it rather
  /// than list again. Never taken while mu_ is held.
  std::mutex listing_mu_;
  std::mutex mu_;
  std::optional<CycleListing> cycle_;  ///< under mu_; set between BeginCycle and EndCycle
  uint64_t generation_ = 0;            ///< under mu_; each BeginCycle and EndCycle adds one
  uint64_t write_seq_ = 0;             ///< under mu_; counts writes
  /// Under mu_: the sequence number of the last write that touched each cluster's replicas or
  /// snapshots ("" for snapshots: one of unknown cluster).
  std::map<std::string, uint64_t> replicas_written_;
  std::map<std::string, uint64_t> snapshots_written_;
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
