#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "openstack/cloud_provider.h"

namespace ra::testing {

/// An in-memory cloud for the service's unit tests. Resources move only when told to
/// (Settle), or one step per ListReplicas/ListSnapshots/DeleteReplica call when auto_settle is on,
/// so tests decide exactly what a cycle observes. Every call is recorded. Thread-safe.
class FakeCloudProvider final : public openstack::CloudProvider {
 public:
  struct Call {
    std::string method;    ///< "CreateReplicaVolume", "DeleteReplica", ...
    std::string argument;  ///< replica name, snapshot id, ...
  };

  Result<std::vector<openstack::ReplicaFacts>> ListReplicas(const std::string& cluster) override;
  Result<openstack::VolumeFacts> CreateReplicaVolume(const openstack::ReplicaSpec& spec) override;
  Result<openstack::ServerFacts> CreateReplicaServer(const openstack::ReplicaSpec& spec,
                                                     const std::string& volume_id) override;
  Result<openstack::DeleteProgress> DeleteReplica(const std::string& cluster,
                                                  const std::string& name) override;
  Result<openstack::SnapshotFacts> SnapshotVolume(const std::string& cluster,
                                                  const std::string& volume_id,
                                                  const std::string& name) override;
  Result<std::vector<openstack::SnapshotFacts>> ListSnapshots(const std::string& cluster) override;
  Result<void> DeleteSnapshot(const std::string& snapshot_id) override;
  Result<std::vector<std::string>> AvailabilityZones() override;
  Result<openstack::Quota> RemainingQuota() override;
  /// Recorded; no settling (a poll between cycles does not move the cloud).
  Result<std::string> VolumeStatus(const std::string& volume_id) override;
  Result<std::string> ServerStatus(const std::string& server_id) override;
  Result<std::string> SnapshotStatus(const std::string& snapshot_id) override;

  /// Moves every resource one step: volumes creating -> available, servers BUILD -> ACTIVE
  /// (with an address), snapshots creating -> available, deleting servers and volumes vanish.
  void Settle();
  /// When true, every List* and DeleteReplica call first does Settle().
  void set_auto_settle(bool on);
  /// The next call of `method` fails with `error` (once).
  void FailNext(const std::string& method, Error error);
  /// Servers of replica `name` go ERROR with `fault` instead of ACTIVE.
  void FailServerOf(const std::string& name, const std::string& fault);
  void SetZones(std::vector<std::string> zones);
  void SetQuota(openstack::Quota quota);
  /// Adds a ready replica (volume in-use + ACTIVE server), as if made earlier.
  void AddReadyReplica(const std::string& cluster, const std::string& name,
                       const std::string& address);
  std::vector<Call> calls() const;

 private:
  struct Replica {
    std::string cluster;
    std::optional<openstack::ServerFacts> server;
    bool server_deleting = false;
    std::optional<openstack::VolumeFacts> volume;
    bool volume_deleting = false;
  };
  struct Snap {
    std::string cluster;
    openstack::SnapshotFacts facts;
  };
  std::optional<Error> TakeFailure(const std::string& method, const std::string& argument);
  void SettleLocked();

  mutable std::mutex mu_;
  std::map<std::string, Replica> replicas_;  // by replica name
  std::vector<Snap> snapshots_;
  std::map<std::string, Error> failures_;
  std::map<std::string, std::string> server_faults_;
  std::vector<std::string> zones_{"nova"};
  openstack::Quota quota_;
  std::vector<Call> calls_;
  bool auto_settle_ = false;
  int next_id_ = 1;
  int next_address_ = 10;
};

}  // namespace ra::testing
