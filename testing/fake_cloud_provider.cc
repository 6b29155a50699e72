#include "testing/fake_cloud_provider.h"

#include <fmt/format.h>

namespace ra::testing {

std::optional<Error> FakeCloudProvider::TakeFailure(const std::string& method,
                                                    const std::string& argument) {
  calls_.push_back({method, argument});
  auto it = failures_.find(method);
  if (it == failures_.end()) return std::nullopt;
  Error error = it->second;
  failures_.erase(it);
  return error;
}

void FakeCloudProvider::SettleLocked() {
  for (auto it = replicas_.begin(); it != replicas_.end();) {
    Replica& r = it->second;
    if (r.server && r.server_deleting) {
      r.server.reset();
      if (r.volume) {
        r.volume->status = "available";
        r.volume->attached_server_ids.clear();
      }
    } else if (r.server && r.server->status == "BUILD") {
      auto fault = server_faults_.find(it->first);
      if (fault != server_faults_.end()) {
        r.server->status = "ERROR";
        r.server->fault = fault->second;
      } else {
        r.server->status = "ACTIVE";
        r.server->address = fmt::format("10.0.0.{}", next_address_++);
      }
    }
    if (r.volume && r.volume_deleting) {
      r.volume.reset();
    } else if (r.volume && r.volume->status == "creating") {
      r.volume->status = "available";
    }
    if (!r.server && !r.volume) {
      it = replicas_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = snapshots_.begin(); it != snapshots_.end();) {
    if (it->facts.status == "deleting") {
      it = snapshots_.erase(it);
      continue;
    }
    if (it->facts.status == "creating") it->facts.status = "available";
    ++it;
  }
}

Result<std::vector<openstack::ReplicaFacts>> FakeCloudProvider::ListReplicas(
    const std::string& cluster) {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("ListReplicas", cluster)) return Fail(*e);
  if (auto_settle_) SettleLocked();
  std::vector<openstack::ReplicaFacts> out;
  for (const auto& [name, r] : replicas_) {
    if (r.cluster != cluster) continue;
    openstack::ReplicaFacts facts{cluster, name, r.server, r.volume};
    if (facts.server && r.server_deleting) facts.server->task_state = "deleting";
    if (facts.volume && r.volume_deleting) facts.volume->status = "deleting";
    out.push_back(std::move(facts));
  }
  return out;
}

Result<openstack::VolumeFacts> FakeCloudProvider::CreateReplicaVolume(
    const openstack::ReplicaSpec& spec) {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("CreateReplicaVolume", spec.name)) return Fail(*e);
  if (auto ok = openstack::ValidateName("replica", spec.name); !ok) return Fail(ok.error());
  Replica& r = replicas_[spec.name];
  r.cluster = spec.cluster;
  if (r.volume && !r.volume_deleting) return *r.volume;
  openstack::VolumeFacts v;
  v.id = fmt::format("vol-{}", next_id_++);
  v.name = spec.name;
  v.status = quota_.volumes == 0 ? "error" : "creating";
  v.snapshot_id = spec.snapshot_id;
  v.availability_zone = spec.availability_zone;
  v.size_gb = spec.volume_size_gb;
  r.volume = v;
  r.volume_deleting = false;
  return v;
}

Result<openstack::ServerFacts> FakeCloudProvider::CreateReplicaServer(
    const openstack::ReplicaSpec& spec, const std::string& volume_id) {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("CreateReplicaServer", spec.name)) return Fail(*e);
  auto it = replicas_.find(spec.name);
  if (it != replicas_.end() && it->second.server) return *it->second.server;
  if (it == replicas_.end() || !it->second.volume || it->second.volume->id != volume_id) {
    return Fail(ErrorKind::kNotFound, fmt::format("volume {} not found", volume_id));
  }
  if (it->second.volume->status != "available") {
    return Fail(ErrorKind::kConflict, fmt::format("volume {} is '{}', not available", volume_id,
                                                  it->second.volume->status));
  }
  if (quota_.instances == 0) {
    return Fail(ErrorKind::kQuota, "Quota exceeded for instances: Requested 1, but already used");
  }
  openstack::ServerFacts s;
  s.id = fmt::format("srv-{}", next_id_++);
  s.name = spec.name;
  s.status = "BUILD";
  s.availability_zone = spec.availability_zone;
  it->second.server = s;
  it->second.volume->status = "in-use";
  it->second.volume->attached_server_ids = {s.id};
  return s;
}

Result<openstack::DeleteProgress> FakeCloudProvider::DeleteReplica(const std::string& cluster,
                                                                   const std::string& name) {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("DeleteReplica", name)) return Fail(*e);
  if (auto_settle_) SettleLocked();
  auto it = replicas_.find(name);
  if (it == replicas_.end() || it->second.cluster != cluster)
    return openstack::DeleteProgress::kDone;
  Replica& r = it->second;
  if (r.server) {
    r.server_deleting = true;
    return openstack::DeleteProgress::kServerDeleting;
  }
  if (r.volume) {
    r.volume_deleting = true;
    return openstack::DeleteProgress::kVolumeDeleting;
  }
  replicas_.erase(it);
  return openstack::DeleteProgress::kDone;
}

Result<openstack::SnapshotFacts> FakeCloudProvider::SnapshotVolume(const std::string& cluster,
                                                                   const std::string& volume_id,
                                                                   const std::string& name) {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("SnapshotVolume", volume_id)) return Fail(*e);
  openstack::SnapshotFacts s{
      fmt::format("snap-{}", next_id_++), name, "creating", volume_id, 10, {}};
  s.created = TimePoint{} + std::chrono::seconds(next_id_);
  snapshots_.push_back({cluster, s});
  return s;
}

Result<std::vector<openstack::SnapshotFacts>> FakeCloudProvider::ListSnapshots(
    const std::string& cluster) {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("ListSnapshots", cluster)) return Fail(*e);
  if (auto_settle_) SettleLocked();
  std::vector<openstack::SnapshotFacts> out;
  for (const Snap& s : snapshots_) {
    if (s.cluster == cluster) out.push_back(s.facts);
  }
  return out;
}

Result<void> FakeCloudProvider::DeleteSnapshot(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("DeleteSnapshot", snapshot_id)) return Fail(*e);
  for (Snap& s : snapshots_) {
    if (s.facts.id == snapshot_id) s.facts.status = "deleting";
  }
  return {};
}

Result<std::vector<std::string>> FakeCloudProvider::AvailabilityZones() {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("AvailabilityZones", "")) return Fail(*e);
  return zones_;
}

Result<openstack::Quota> FakeCloudProvider::RemainingQuota() {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("RemainingQuota", "")) return Fail(*e);
  return quota_;
}

Result<std::string> FakeCloudProvider::VolumeStatus(const std::string& volume_id) {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("VolumeStatus", volume_id)) return Fail(*e);
  for (const auto& [name, r] : replicas_) {
    if (r.volume && r.volume->id == volume_id) return r.volume->status;
  }
  return Fail(ErrorKind::kNotFound, "no volume " + volume_id);
}

Result<std::string> FakeCloudProvider::ServerStatus(const std::string& server_id) {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("ServerStatus", server_id)) return Fail(*e);
  for (const auto& [name, r] : replicas_) {
    if (r.server && r.server->id == server_id) return r.server->status;
  }
  return Fail(ErrorKind::kNotFound, "no server " + server_id);
}

Result<std::string> FakeCloudProvider::SnapshotStatus(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  if (auto e = TakeFailure("SnapshotStatus", snapshot_id)) return Fail(*e);
  for (const Snap& s : snapshots_) {
    if (s.facts.id == snapshot_id) return s.facts.status;
  }
  return Fail(ErrorKind::kNotFound, "no snapshot " + snapshot_id);
}

void FakeCloudProvider::Settle() {
  std::lock_guard lock(mu_);
  SettleLocked();
}

void FakeCloudProvider::set_auto_settle(bool on) {
  std::lock_guard lock(mu_);
  auto_settle_ = on;
}

void FakeCloudProvider::FailNext(const std::string& method, Error error) {
  std::lock_guard lock(mu_);
  failures_[method] = std::move(error);
}

void FakeCloudProvider::FailServerOf(const std::string& name, const std::string& fault) {
  std::lock_guard lock(mu_);
  server_faults_[name] = fault;
}

void FakeCloudProvider::SetZones(std::vector<std::string> zones) {
  std::lock_guard lock(mu_);
  zones_ = std::move(zones);
}

void FakeCloudProvider::SetQuota(openstack::Quota quota) {
  std::lock_guard lock(mu_);
  quota_ = quota;
}

void FakeCloudProvider::AddReadyReplica(const std::string& cluster, const std::string& name,
                                        const std::string& address) {
  std::lock_guard lock(mu_);
  Replica& r = replicas_[name];
  r.cluster = cluster;
  const std::string server_id = fmt::format("srv-{}", next_id_++);
  r.volume = openstack::VolumeFacts{
      fmt::format("vol-{}", next_id_++), name, "in-use", "", "nova", 10, {server_id}, {}};
  r.server = openstack::ServerFacts{server_id, name, "ACTIVE", "", "", address, "nova", {}};
}

std::vector<FakeCloudProvider::Call> FakeCloudProvider::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

}  // namespace ra::testing
