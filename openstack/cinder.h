#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "openstack/session.h"

namespace ra::openstack {

struct Volume {
  std::string id;
  std::string name;
  std::string status;  ///< creating, available, in-use, attaching, deleting, error, ...
  int size_gb = 0;
  std::string availability_zone;
  std::string snapshot_id;
  std::string volume_type;
  std::map<std::string, std::string> metadata;
  std::vector<std::string> attached_server_ids;
  std::optional<TimePoint> created;
};

struct Snapshot {
  std::string id;
  std::string name;
  std::string status;  ///< creating, available, deleting, error, ...
  std::string volume_id;
  int size_gb = 0;
  std::map<std::string, std::string> metadata;
  std::optional<TimePoint> created;
};

/// POST /volumes from a snapshot.
struct VolumeCreate {
  std::string name;
  std::string snapshot_id;
  int size_gb = 0;  ///< 0: the snapshot's size (Cinder requires size; looked up first)
  std::string availability_zone;
  std::string volume_type;
  std::string description;
  std::map<std::string, std::string> metadata;
};

struct SnapshotCreate {
  std::string volume_id;
  std::string name;
  std::string description;
  std::map<std::string, std::string> metadata;
  /// Snapshot an in-use (attached) volume; a crash-consistent copy, what a running replica's
  /// data volume gives.
  bool force = true;
};

/// Cinder's absolute limits; -1 means unlimited.
struct VolumeLimits {
  int max_volumes = -1;
  int used_volumes = 0;
  int max_gigabytes = -1;
  int used_gigabytes = 0;
  int max_snapshots = -1;
  int used_snapshots = 0;
};

/// Cinder v3 with the session's pinned microversion (>= 3.22). Every call blocks for one
/// request and its retries. Thread-safe.
class CinderClient {
 public:
  explicit CinderClient(Session& session) : session_(session) {}

  /// Not idempotent: callers look for a volume with the same metadata before calling again.
  Result<Volume> CreateVolume(const VolumeCreate& create);
  Result<Volume> GetVolume(const std::string& id);
  /// Volumes whose metadata holds every pair of `metadata` (GET /volumes/detail?metadata=),
  /// every page (volumes_links).
  Result<std::vector<Volume>> ListVolumes(const std::map<std::string, std::string>& metadata);
  /// Idempotent: a volume already gone is success. kConflict/kBadRequest when it is attached.
  Result<void> DeleteVolume(const std::string& id);

  /// Not idempotent (see CreateVolume).
  Result<Snapshot> CreateSnapshot(const SnapshotCreate& create);
  Result<Snapshot> GetSnapshot(const std::string& id);
  /// Snapshots whose metadata holds every pair of `metadata` (3.22+), every page
  /// (snapshots_links).
  Result<std::vector<Snapshot>> ListSnapshots(const std::map<std::string, std::string>& metadata);
  /// Idempotent: a snapshot already gone is success.
  Result<void> DeleteSnapshot(const std::string& id);

  Result<VolumeLimits> GetLimits();

  static Result<Volume> ParseVolume(const nlohmann::json& volume);
  static Result<Snapshot> ParseSnapshot(const nlohmann::json& snapshot);

 private:
  Session& session_;
};

}  // namespace ra::openstack
