#include "openstack/openstack_cloud_provider.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/log.h"

namespace ra::openstack {

ServerFacts ToFacts(const Server& s) {
  return ServerFacts{
      s.id,     s.name, s.status, s.task_state, s.fault_message, s.FixedIpv4(), s.availability_zone,
      s.created};
}

VolumeFacts ToFacts(const Volume& v) {
  return VolumeFacts{v.id,
                     v.name,
                     v.status,
                     v.snapshot_id,
                     v.availability_zone,
                     v.size_gb,
                     v.attached_server_ids,
                     v.created};
}

SnapshotFacts ToFacts(const Snapshot& s) {
  return SnapshotFacts{s.id, s.name, s.status, s.volume_id, s.size_gb, s.created};
}

namespace {

std::string Meta(const std::map<std::string, std::string>& m, std::string_view key) {
  auto it = m.find(std::string(key));
  return it == m.end() ? std::string() : it->second;
}

std::map<std::string, std::string> ReplicaVolumeFilter(const std::string& cluster) {
  return {{std::string(kMetaCluster), cluster}, {std::string(kMetaRole), "replica"}};
}

bool Gone(const std::string& volume_status) {
  return volume_status == "deleting" || volume_status == "error_deleting";
}

int Rank(const std::string& volume_status) {
  if (Gone(volume_status)) return 0;
  if (volume_status == "error") return 1;
  return 2;
}

bool OwnedVolume(const Volume& v, const std::string& cluster, const std::string& name) {
  return Meta(v.metadata, kMetaCluster) == cluster && Meta(v.metadata, kMetaRole) == "replica" &&
         (name.empty() || Meta(v.metadata, kMetaReplica) == name);
}

std::string ReplicaKey(const std::string& cluster, const std::string& name) {
  return cluster + "/" + name;
}

}  // namespace

bool OwnedServer(const Server& server, const std::string& cluster) {
  auto tagged = [&server](std::string_view tag) {
    return std::find(server.tags.begin(), server.tags.end(), tag) != server.tags.end();
  };
  return tagged(kManagedTag) && tagged(ClusterTag(cluster)) &&
         Meta(server.metadata, kMetaManagedBy) == kManagedTag &&
         Meta(server.metadata, kMetaCluster) == cluster;
}

OpenStackCloudProvider::OpenStackCloudProvider(Session& session)
    : session_(session), nova_(session), cinder_(session) {}

void OpenStackCloudProvider::BeginCycle() {
  std::lock_guard lock(mu_);
  cycle_.emplace();
  ++generation_;
  // A listing taken from now on is asked for after every write so far: none needs remembering.
  replicas_written_.clear();
  snapshots_written_.clear();
}

void OpenStackCloudProvider::EndCycle() {
  std::lock_guard lock(mu_);
  cycle_.reset();
  ++generation_;
}

void OpenStackCloudProvider::NoteWrite(Written what, const std::string& cluster) {
  std::lock_guard lock(mu_);
  (what == Written::kReplicas ? replicas_written_ : snapshots_written_)[cluster] = ++write_seq_;
}

namespace {

uint64_t WrittenAt(const std::map<std::string, uint64_t>& written, const std::string& key) {
  auto it = written.find(key);
  return it == written.end() ? 0 : it->second;
}

}  // namespace

std::shared_ptr<const Result<OpenStackCloudProvider::ReplicaListing>>
OpenStackCloudProvider::SharedReplicas(const std::string& cluster) {
  {
    std::lock_guard lock(mu_);
    if (!cycle_) return nullptr;
  }
  std::lock_guard listing(listing_mu_);
  uint64_t seq = 0;
  uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    if (!cycle_) return nullptr;
    if (cycle_->replicas) {
      if (WrittenAt(replicas_written_, cluster) > cycle_->replicas_seq) return nullptr;
      return cycle_->replicas;
    }
    seq = write_seq_;
    generation = generation_;
  }
  // One list of every server with the managed tag, one of every replica volume: each cluster's
  // own filters (tags {managed, cluster}, metadata {ra_cluster, ra_role}) select a part of these.
  auto taken = std::make_shared<Result<ReplicaListing>>(ReplicaListing{});
  if (auto servers = nova_.ListServersByTags({std::string(kManagedTag)}); !servers) {
    *taken = Fail(servers.error());
  } else if (auto volumes = cinder_.ListVolumes({{std::string(kMetaRole), "replica"}}); !volumes) {
    *taken = Fail(volumes.error());
  } else {
    ReplicaListing& all = **taken;
    all.servers = std::move(*servers);
    all.volumes = std::move(*volumes);
    // In the cloud's order, as each cluster's own list would have them.
    for (const Server& s : all.servers) {
      const std::set<std::string> tags(s.tags.begin(), s.tags.end());
      for (const std::string& tag : tags) all.servers_by_tag[tag].push_back(&s);
    }
    for (const Volume& v : all.volumes) {
      auto it = v.metadata.find(std::string(kMetaCluster));
      if (it != v.metadata.end()) all.volumes_by_cluster[it->second].push_back(&v);
    }
  }
  std::lock_guard lock(mu_);
  if (!cycle_ || generation_ != generation) return taken;  // the cycle ended meanwhile
  cycle_->replicas = taken;
  cycle_->replicas_seq = seq;
  if (WrittenAt(replicas_written_, cluster) > seq) return nullptr;
  return taken;
}

std::shared_ptr<const Result<OpenStackCloudProvider::SnapshotListing>>
OpenStackCloudProvider::SharedSnapshots(const std::string& cluster) {
  {
    std::lock_guard lock(mu_);
    if (!cycle_) return nullptr;
  }
  std::lock_guard listing(listing_mu_);
  uint64_t seq = 0;
  uint64_t generation = 0;
  auto written = [this, &cluster] {
    return std::max(WrittenAt(snapshots_written_, cluster), WrittenAt(snapshots_written_, ""));
  };
  {
    std::lock_guard lock(mu_);
    if (!cycle_) return nullptr;
    if (cycle_->snapshots) {
      if (written() > cycle_->snapshots_seq) return nullptr;
      return cycle_->snapshots;
    }
    seq = write_seq_;
    generation = generation_;
  }
  auto taken = std::make_shared<Result<SnapshotListing>>(SnapshotListing{});
  if (auto snapshots = cinder_.ListSnapshots({{std::string(kMetaRole), "golden"}}); !snapshots) {
    *taken = Fail(snapshots.error());
  } else {
    SnapshotListing& all = **taken;
    all.snapshots = std::move(*snapshots);
    for (const Snapshot& s : all.snapshots) {
      auto it = s.metadata.find(std::string(kMetaCluster));
      if (it != s.metadata.end()) all.by_cluster[it->second].push_back(&s);
    }
  }
  std::lock_guard lock(mu_);
  if (!cycle_ || generation_ != generation) return taken;
  cycle_->snapshots = taken;
  cycle_->snapshots_seq = seq;
  if (written() > seq) return nullptr;
  return taken;
}

Result<std::vector<ReplicaFacts>> OpenStackCloudProvider::ListReplicas(const std::string& cluster) {
  if (auto ok = ValidateName("cluster", cluster); !ok) return Fail(ok.error());
  auto shared = SharedReplicas(cluster);
  if (!shared) return ListReplicasOfCluster(cluster);
  if (!*shared) return Fail(shared->error());
  const ReplicaListing& all = **shared;
  ClusterListing listed;
  if (auto it = all.servers_by_tag.find(ClusterTag(cluster)); it != all.servers_by_tag.end()) {
    listed.servers = it->second;
  }
  if (auto it = all.volumes_by_cluster.find(cluster); it != all.volumes_by_cluster.end()) {
    listed.volumes = it->second;
  }
  return JoinReplicas(cluster, listed);  // `shared` keeps what `listed` points into
}

Result<std::vector<ReplicaFacts>> OpenStackCloudProvider::ListReplicasOfCluster(
    const std::string& cluster) {
  if (auto ok = ValidateName("cluster", cluster); !ok) return Fail(ok.error());
  auto servers = nova_.ListServersByTags({std::string(kManagedTag), ClusterTag(cluster)});
  if (!servers) return Fail(servers.error());
  auto volumes = cinder_.ListVolumes(ReplicaVolumeFilter(cluster));
  if (!volumes) return Fail(volumes.error());
  ClusterListing listed;
  for (const Server& s : *servers) listed.servers.push_back(&s);
  for (const Volume& v : *volumes) listed.volumes.push_back(&v);
  return JoinReplicas(cluster, listed);
}

Result<std::vector<ReplicaFacts>> OpenStackCloudProvider::JoinReplicas(
    const std::string& cluster, const ClusterListing& listed) {
  std::map<std::string, ReplicaFacts> by_name;
  std::map<std::string, const Server*> server_of;
  for (const Server* listed_server : listed.servers) {
    const Server& s = *listed_server;
    if (s.status == "DELETED" || s.status == "SOFT_DELETED") continue;
    // A cloud that ignores ?tags= (or a stranger who copied our tags) must not hand us servers
    // that are not ours: the server's own tags and metadata decide.
    if (!OwnedServer(s, cluster)) continue;
    std::string name = Meta(s.metadata, kMetaReplica);
    if (name.empty()) name = s.name;
    ReplicaFacts& r = by_name[name];
    r.cluster = cluster;
    r.name = name;
    r.server = ToFacts(s);
    server_of[name] = &s;
  }
  for (const Volume* listed_volume : listed.volumes) {
    const Volume& v = *listed_volume;
    // A second metadata check: a cloud that ignored the filter must not hand us strangers.
    if (!OwnedVolume(v, cluster, "")) continue;
    const std::string name = Meta(v.metadata, kMetaReplica);
    if (name.empty()) continue;
    ReplicaFacts& r = by_name[name];
    r.cluster = cluster;
    r.name = name;
    // A replica name can have an old volume in error or being deleted besides the one in use
    // (a retried creation): report the live one.
    if (!r.volume || Rank(v.status) > Rank(r.volume->status)) r.volume = ToFacts(v);
  }
  for (auto& [name, r] : by_name) {
    if (r.volume) continue;
    auto server = server_of.find(name);
    if (server != server_of.end()) {
      if (auto ok = AddAttachedVolume(cluster, *server->second, r); !ok) return Fail(ok.error());
    }
  }
  // Volumes remembered from a server whose delete was requested: found even when the server
  // is gone and the list misses them.
  std::vector<std::pair<std::string, std::string>> remembered;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, ids] : attached_at_delete_) {
      if (key.rfind(cluster + "/", 0) != 0) continue;
      const std::string name = key.substr(cluster.size() + 1);
      for (const std::string& id : ids) remembered.emplace_back(name, id);
    }
  }
  for (const auto& [name, id] : remembered) {
    auto it = by_name.find(name);
    if (it != by_name.end() && it->second.volume) continue;
    auto volume = cinder_.GetVolume(id);
    if (!volume) {
      if (volume.error().kind != ErrorKind::kNotFound) return Fail(volume.error());
      std::lock_guard lock(mu_);
      auto& ids = attached_at_delete_[ReplicaKey(cluster, name)];
      ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
      if (ids.empty()) attached_at_delete_.erase(ReplicaKey(cluster, name));
      continue;
    }
    if (!OwnedVolume(*volume, cluster, name)) continue;
    ReplicaFacts& r = by_name[name];
    r.cluster = cluster;
    r.name = name;
    r.volume = ToFacts(*volume);
  }
  std::vector<ReplicaFacts> out;
  for (auto& [name, r] : by_name) out.push_back(std::move(r));
  return out;
}

Result<void> OpenStackCloudProvider::AddAttachedVolume(const std::string& cluster,
                                                       const Server& server,
                                                       ReplicaFacts& replica) {
  for (const std::string& id : server.volume_ids) {
    auto volume = cinder_.GetVolume(id);
    if (!volume) {
      if (volume.error().kind == ErrorKind::kNotFound) continue;
      return Fail(volume.error());
    }
    if (!OwnedVolume(*volume, cluster, replica.name)) continue;
    replica.volume = ToFacts(*volume);
    return {};
  }
  return {};
}

Result<VolumeFacts> OpenStackCloudProvider::CreateReplicaVolume(const ReplicaSpec& spec) {
  if (auto ok = ValidateName("cluster", spec.cluster); !ok) return Fail(ok.error());
  if (auto ok = ValidateName("replica", spec.name); !ok) return Fail(ok.error());
  std::map<std::string, std::string> metadata{
      {std::string(kMetaManagedBy), std::string(kManagedTag)},
      {std::string(kMetaCluster), spec.cluster},
      {std::string(kMetaReplica), spec.name},
      {std::string(kMetaRole), "replica"}};
  auto existing = cinder_.ListVolumes(
      {{std::string(kMetaCluster), spec.cluster}, {std::string(kMetaReplica), spec.name}});
  if (!existing) return Fail(existing.error());
  for (const Volume& v : *existing) {
    if (Meta(v.metadata, kMetaReplica) == spec.name && v.status != "error" && !Gone(v.status)) {
      return ToFacts(v);
    }
  }
  VolumeCreate create{.name = spec.name,
                      .snapshot_id = spec.snapshot_id,
                      .size_gb = spec.volume_size_gb,
                      .availability_zone = spec.availability_zone,
                      .volume_type = spec.volume_type,
                      .description = "replica-autoscaler data volume of " + spec.name,
                      .metadata = metadata};
  auto volume = cinder_.CreateVolume(create);
  NoteWrite(Written::kReplicas, spec.cluster);
  if (!volume) return Fail(volume.error());
  log::Info("cloud: replica volume requested",
            {{"cluster", spec.cluster}, {"replica", spec.name}, {"volume", volume->id}});
  return ToFacts(*volume);
}

Result<ServerFacts> OpenStackCloudProvider::CreateReplicaServer(const ReplicaSpec& spec,
                                                                const std::string& volume_id) {
  if (auto ok = ValidateName("cluster", spec.cluster); !ok) return Fail(ok.error());
  if (auto ok = ValidateName("replica", spec.name); !ok) return Fail(ok.error());
  auto servers = nova_.ListServersByTags({std::string(kManagedTag), ClusterTag(spec.cluster)});
  if (!servers) return Fail(servers.error());
  for (const Server& s : *servers) {
    if (!OwnedServer(s, spec.cluster)) continue;
    if (s.name == spec.name || Meta(s.metadata, kMetaReplica) == spec.name) return ToFacts(s);
  }
  auto volume = cinder_.GetVolume(volume_id);
  if (!volume) return Fail(volume.error());
  if (volume->status != "available") {
    return Fail(ErrorKind::kConflict, fmt::format("volume {} of replica {} is '{}', not available",
                                                  volume_id, spec.name, volume->status));
  }
  std::map<std::string, std::string> metadata = spec.metadata;
  metadata[std::string(kMetaManagedBy)] = std::string(kManagedTag);
  metadata[std::string(kMetaCluster)] = spec.cluster;
  metadata[std::string(kMetaReplica)] = spec.name;
  metadata[std::string(kMetaRole)] = "replica";
  ServerCreate create{.name = spec.name,
                      .flavor_ref = spec.flavor_id,
                      .image_ref = spec.image_id,
                      .data_volume_id = volume_id,
                      .delete_volume_on_termination = false,
                      .network_ids = spec.network_ids,
                      .without_network = spec.without_network,
                      .security_groups = spec.security_groups,
                      .availability_zone = spec.availability_zone,
                      .key_name = spec.key_name,
                      .tags = {std::string(kManagedTag), ClusterTag(spec.cluster)},
                      .metadata = metadata,
                      .user_data = spec.user_data};
  auto server = nova_.CreateServer(create);
  NoteWrite(Written::kReplicas, spec.cluster);
  if (!server) return Fail(server.error());
  log::Info("cloud: replica server requested",
            {{"cluster", spec.cluster}, {"replica", spec.name}, {"server", server->id}});
  return ToFacts(*server);
}

Result<DeleteProgress> OpenStackCloudProvider::DeleteReplica(const std::string& cluster,
                                                             const std::string& name) {
  // Always the cloud's answer now, never the cycle's listing: it acts on what it reads.
  auto replicas = ListReplicasOfCluster(cluster);
  if (!replicas) return Fail(replicas.error());
  for (const ReplicaFacts& r : *replicas) {
    if (r.name != name) continue;
    if (r.server) {
      // Traffic has already left (the caller drains first); the server goes before its disk.
      if (r.server->task_state != "deleting") {
        // Its data volume is learned from the server itself before the server goes, so the
        // volume is deleted next even if no volume list ever shows it.
        auto server = nova_.GetServer(r.server->id);
        if (!server && server.error().kind != ErrorKind::kNotFound) return Fail(server.error());
        if (server && !server->volume_ids.empty()) {
          std::lock_guard lock(mu_);
          attached_at_delete_[ReplicaKey(cluster, name)] = server->volume_ids;
        }
        auto deleted = nova_.DeleteServer(r.server->id);
        NoteWrite(Written::kReplicas, cluster);
        if (!deleted) return Fail(deleted.error());
        log::Info("cloud: replica server delete requested",
                  {{"cluster", cluster}, {"replica", name}, {"server", r.server->id}});
      }
      return DeleteProgress::kServerDeleting;
    }
    if (r.volume) {
      const std::string& status = r.volume->status;
      if (Gone(status)) return DeleteProgress::kVolumeDeleting;
      if (status == "in-use" || status == "detaching" || status == "attaching" ||
          status == "creating" || status == "downloading") {
        return DeleteProgress::kWaitingForVolume;
      }
      auto deleted = cinder_.DeleteVolume(r.volume->id);
      NoteWrite(Written::kReplicas, cluster);
      if (!deleted) return Fail(deleted.error());
      {
        std::lock_guard lock(mu_);
        attached_at_delete_.erase(ReplicaKey(cluster, name));
      }
      log::Info("cloud: replica volume delete requested",
                {{"cluster", cluster}, {"replica", name}, {"volume", r.volume->id}});
      return DeleteProgress::kVolumeDeleting;
    }
  }
  return DeleteProgress::kDone;
}

Result<SnapshotFacts> OpenStackCloudProvider::SnapshotVolume(const std::string& cluster,
                                                             const std::string& volume_id,
                                                             const std::string& name) {
  if (auto ok = ValidateName("cluster", cluster); !ok) return Fail(ok.error());
  SnapshotCreate create{.volume_id = volume_id,
                        .name = name,
                        .description = "replica-autoscaler golden snapshot of " + cluster,
                        .metadata = {{std::string(kMetaManagedBy), std::string(kManagedTag)},
                                     {std::string(kMetaCluster), cluster},
                                     {std::string(kMetaRole), "golden"}},
                        .force = true};
  auto snapshot = cinder_.CreateSnapshot(create);
  NoteWrite(Written::kSnapshots, cluster);
  if (!snapshot) return Fail(snapshot.error());
  log::Info("cloud: snapshot requested",
            {{"cluster", cluster}, {"volume", volume_id}, {"snapshot", snapshot->id}});
  return ToFacts(*snapshot);
}

namespace {

// The cluster's golden snapshots of what was listed (its own filter, or the cycle's listing's
// part), oldest first.
std::vector<SnapshotFacts> JoinSnapshots(const std::string& cluster,
                                         const std::vector<const Snapshot*>& listed) {
  std::vector<SnapshotFacts> out;
  for (const Snapshot* s : listed) {
    if (Meta(s->metadata, kMetaCluster) != cluster || Meta(s->metadata, kMetaRole) != "golden") {
      continue;
    }
    out.push_back(ToFacts(*s));
  }
  std::stable_sort(out.begin(), out.end(), [](const SnapshotFacts& a, const SnapshotFacts& b) {
    return a.created.value_or(TimePoint{}) < b.created.value_or(TimePoint{});
  });
  return out;
}

}  // namespace

Result<std::vector<SnapshotFacts>> OpenStackCloudProvider::ListSnapshots(
    const std::string& cluster) {
  if (auto ok = ValidateName("cluster", cluster); !ok) return Fail(ok.error());
  auto shared = SharedSnapshots(cluster);
  if (!shared) return ListSnapshotsOfCluster(cluster);
  if (!*shared) return Fail(shared->error());
  auto it = (*shared)->by_cluster.find(cluster);
  if (it == (*shared)->by_cluster.end()) return std::vector<SnapshotFacts>{};
  return JoinSnapshots(cluster, it->second);
}

Result<std::vector<SnapshotFacts>> OpenStackCloudProvider::ListSnapshotsOfCluster(
    const std::string& cluster) {
  auto snapshots = cinder_.ListSnapshots(
      {{std::string(kMetaCluster), cluster}, {std::string(kMetaRole), "golden"}});
  if (!snapshots) return Fail(snapshots.error());
  std::vector<const Snapshot*> listed;
  for (const Snapshot& s : *snapshots) listed.push_back(&s);
  return JoinSnapshots(cluster, listed);
}

Result<void> OpenStackCloudProvider::DeleteSnapshot(const std::string& snapshot_id) {
  // Which cluster's snapshots change: the cycle's listing knows, else every cluster's.
  std::string cluster;
  {
    std::lock_guard lock(mu_);
    if (cycle_ && cycle_->snapshots && *cycle_->snapshots) {
      for (const Snapshot& s : (*cycle_->snapshots)->snapshots) {
        if (s.id == snapshot_id) cluster = Meta(s.metadata, kMetaCluster);
      }
    }
  }
  auto deleted = cinder_.DeleteSnapshot(snapshot_id);
  NoteWrite(Written::kSnapshots, cluster);
  return deleted;
}

Result<std::vector<std::string>> OpenStackCloudProvider::AvailabilityZones() {
  auto zones = nova_.ListAvailabilityZones();
  if (!zones) return Fail(zones.error());
  std::vector<std::string> out;
  for (const AvailabilityZone& z : *zones) {
    if (z.available) out.push_back(z.name);
  }
  return out;
}

Result<Quota> OpenStackCloudProvider::RemainingQuota() {
  auto compute = nova_.GetLimits();
  if (!compute) return Fail(compute.error());
  auto volume = cinder_.GetLimits();
  if (!volume) return Fail(volume.error());
  auto left = [](int max, int used) { return max < 0 ? -1 : std::max(0, max - used); };
  return Quota{left(compute->max_instances, compute->used_instances),
               left(compute->max_cores, compute->used_cores),
               left(compute->max_ram_mb, compute->used_ram_mb),
               left(volume->max_volumes, volume->used_volumes),
               left(volume->max_gigabytes, volume->used_gigabytes),
               left(volume->max_snapshots, volume->used_snapshots)};
}

}  // namespace ra::openstack
