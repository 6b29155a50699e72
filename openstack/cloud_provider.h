#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "core/sleeper.h"

namespace ra::openstack {

/// How resources made by the service are marked. Servers carry the tags (Nova filters by tags
/// for every user; ?metadata= is silently ignored for non-admins) and the metadata; volumes and
/// snapshots carry the metadata (Cinder filters by it).
inline constexpr std::string_view kManagedTag = "replica-autoscaler";
inline constexpr std::string_view kMetaManagedBy = "ra_managed_by";  ///< = kManagedTag
inline constexpr std::string_view kMetaCluster = "ra_cluster";
inline constexpr std::string_view kMetaReplica = "ra_replica";  ///< replica name
inline constexpr std::string_view kMetaRole = "ra_role";        ///< "replica" or "golden"

/// "ra-cluster:<cluster>", the tag that selects one cluster's servers.
std::string ClusterTag(std::string_view cluster);

/// Checks a cluster or replica name: 1..40 characters of [A-Za-z0-9._-]. kBadRequest otherwise.
Result<void> ValidateName(std::string_view what, std::string_view name);

/// What to build for one replica.
struct ReplicaSpec {
  std::string cluster;
  std::string name;         ///< unique per cluster; the server and the volume are named after it
  std::string snapshot_id;  ///< the golden snapshot the data volume is cloned from
  int volume_size_gb = 0;   ///< 0: the snapshot's size
  std::string volume_type;  ///< empty: the cloud's default
  std::string availability_zone;  ///< of the volume and the server; empty: the cloud chooses
  std::string flavor_id;
  std::string image_id;  ///< the system disk; the data volume is attached beside it
  std::vector<std::string> network_ids;
  /// No port at all (networks "none"): only for test clouds without Neutron; the service never
  /// sets it.
  bool without_network = false;
  std::vector<std::string> security_groups;
  std::string key_name;
  std::map<std::string, std::string> metadata;  ///< extra server metadata (no secrets)
  std::string user_data;                        ///< non-secret facts for the first-boot script
};

struct ServerFacts {
  std::string id;
  std::string name;
  std::string status;  ///< Nova's: BUILD, ACTIVE, ERROR, SHUTOFF, ...
  std::string task_state;
  std::string fault;    ///< Nova's fault message when status is ERROR
  std::string address;  ///< first fixed IPv4, "" until the network is up
  std::string availability_zone;
  std::optional<TimePoint> created;
};

struct VolumeFacts {
  std::string id;
  std::string name;
  std::string status;  ///< Cinder's: creating, available, in-use, error, deleting, ...
  std::string snapshot_id;
  std::string availability_zone;
  int size_gb = 0;
  std::vector<std::string> attached_server_ids;
  std::optional<TimePoint> created;
};

/// One replica as the cloud shows it. Either part may be missing: a volume without a server is
/// a replica being built (or an orphan); a server without a volume is being torn down.
struct ReplicaFacts {
  std::string cluster;
  std::string name;
  std::optional<ServerFacts> server;
  std::optional<VolumeFacts> volume;
};

struct SnapshotFacts {
  std::string id;
  std::string name;
  std::string status;  ///< creating, available, error, deleting
  std::string volume_id;
  int size_gb = 0;
  std::optional<TimePoint> created;
};

/// The donor replica as the cloud shows it: the server the golden snapshots are taken from. The
/// service never manages it, whatever tags or metadata it carries.
struct DonorFacts {
  std::string server_id;
  std::string volume_id;  ///< its data volume
  std::string address;    ///< its first fixed IPv4, "" if none
};

/// What is left of the project's quota; -1 means unlimited.
struct Quota {
  int instances = -1;
  int cores = -1;
  int ram_mb = -1;
  int volumes = -1;
  int gigabytes = -1;
  int snapshots = -1;
};

/// Where a step-wise delete stands.
enum class DeleteProgress {
  kServerDeleting,    ///< the server's delete was requested (or is under way)
  kWaitingForVolume,  ///< the server is gone; the volume is still detaching
  kVolumeDeleting,    ///< the volume's delete was requested (or is under way)
  kDone,              ///< nothing of the replica is left
};

std::string_view ToString(DeleteProgress progress);

/// The cloud as the service sees it. Every method blocks for the few HTTP requests it makes
/// (each bounded by the client's timeouts and retry budget) and never waits for a resource to
/// change state: the control loop observes again next cycle. Implementations are thread-safe.
/// Errors are typed: kTransient/kTimeout (try again), kQuota and kCapacity (back off this zone
/// or flavor), kAuth, kNotFound, kConflict, kBadRequest, kConfig. A server that went ERROR
/// carries Nova's fault text; ServerFaultKind (openstack/errors.h) gives its kind.
class CloudProvider {
 public:
  virtual ~CloudProvider() = default;

  /// Opens a cycle of the control loop: until EndCycle, ListReplicas and ListSnapshots may answer
  /// every cluster from one listing of the whole project, taken at the first call that needs it
  /// in this cycle (so a cycle over many clusters of one project lists the cloud a fixed number
  /// of times, not once per cluster). A call for a cluster that this provider wrote to (created
  /// or deleted something) after that listing was taken reads the cloud itself, so no write is
  /// hidden; a listing that failed fails every cluster's call of the cycle with its error. Each
  /// BeginCycle drops the previous listing: no cycle sees another's. Outside a cycle, and by
  /// default, every call reads the cloud. Never blocks, never fails; not reentrant (one cycle at
  /// a time).
  virtual void BeginCycle() {}
  /// Closes the cycle: the listing is dropped and later calls read the cloud. Idempotent.
  virtual void EndCycle() {}

  /// Every replica of `cluster`: servers with tags {kManagedTag, ClusterTag(cluster)} joined
  /// with volumes whose metadata has ra_cluster=cluster, ra_role=replica, matched by replica
  /// name. Orphans (volume without server, server without volume) are included. Read-only,
  /// idempotent. Inside a cycle (BeginCycle) it may be answered from the cycle's listing.
  virtual Result<std::vector<ReplicaFacts>> ListReplicas(const std::string& cluster) = 0;

  /// Starts cloning the spec's snapshot into the replica's data volume, named after the
  /// replica and carrying metadata (ra_managed_by, ra_cluster, ra_replica, ra_role=replica), so
  /// an orphan is always findable. Idempotent: if a volume of that replica already exists (and
  /// is not in error or being deleted) it is returned and nothing is created. Returns at once;
  /// the volume is usually still `creating`.
  virtual Result<VolumeFacts> CreateReplicaVolume(const ReplicaSpec& spec) = 0;

  /// Boots the replica's server from `spec.image_id` with `volume_id` (which must be
  /// `available`, else kConflict) as its data disk, not its root: the first-boot script mounts
  /// it by label. With the managed and cluster tags, metadata and user_data. Idempotent: if the
  /// cluster has a server of that name it is returned and nothing is created. Returns at once; the
  /// server is usually still BUILD.
  virtual Result<ServerFacts> CreateReplicaServer(const ReplicaSpec& spec,
                                                  const std::string& volume_id) = 0;

  /// One step of tearing a replica down, server first, then its volume: call again until it
  /// returns kDone. Idempotent; a replica that does not exist is kDone.
  virtual Result<DeleteProgress> DeleteReplica(const std::string& cluster,
                                               const std::string& name) = 0;

  /// Starts a snapshot of the donor's data volume (force: it is attached and in use), named
  /// `name` with metadata ra_cluster=cluster, ra_role=golden. Not idempotent: every call makes
  /// a snapshot. Returns at once; the snapshot is usually still `creating`.
  virtual Result<SnapshotFacts> SnapshotVolume(const std::string& cluster,
                                               const std::string& volume_id,
                                               const std::string& name) = 0;

  /// The cluster's golden snapshots (metadata ra_cluster=cluster, ra_role=golden), oldest
  /// first. Read-only, idempotent. Inside a cycle it may be answered from the cycle's listing.
  virtual Result<std::vector<SnapshotFacts>> ListSnapshots(const std::string& cluster) = 0;

  /// Deletes a snapshot. Idempotent: one already gone is success. kConflict/kBadRequest while
  /// volumes are still being cloned from it.
  virtual Result<void> DeleteSnapshot(const std::string& snapshot_id) = 0;

  /// Names of the compute availability zones that are available now. Read-only.
  virtual Result<std::vector<std::string>> AvailabilityZones() = 0;

  /// What the project may still create (Nova and Cinder absolute limits). Read-only.
  virtual Result<Quota> RemainingQuota() = 0;
};

/// Drives the steps of a replica's creation and waits until its server is ACTIVE: volume,
/// wait for `available`, server, wait for ACTIVE. Blocks (polling every `poll` through
/// `sleeper`) up to `timeout`; kTimeout then, or the step's error. A server that goes ERROR is
/// kInternal with Nova's fault. For tools and tests; the service drives the steps itself.
Result<ReplicaFacts> CreateReplicaAndWait(CloudProvider& provider, const ReplicaSpec& spec,
                                          const Clock& clock, Sleeper& sleeper, Duration timeout,
                                          Duration poll);

/// Calls DeleteReplica until kDone, polling through `sleeper`, up to `timeout`.
Result<void> DeleteReplicaAndWait(CloudProvider& provider, const std::string& cluster,
                                  const std::string& name, const Clock& clock, Sleeper& sleeper,
                                  Duration timeout, Duration poll);

/// Waits until the snapshot is `available` (kInternal if it goes `error`).
Result<SnapshotFacts> WaitForSnapshot(CloudProvider& provider, const std::string& cluster,
                                      const std::string& snapshot_id, const Clock& clock,
                                      Sleeper& sleeper, Duration timeout, Duration poll);

}  // namespace ra::openstack
