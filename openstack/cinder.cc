#include "openstack/cinder.h"

#include <fmt/format.h>

#include "core/time_format.h"
#include "core/url.h"
#include "openstack/errors.h"
#include "openstack/json_fields.h"
#include "openstack/paging.h"

namespace ra::openstack {

namespace {

using nlohmann::json;

std::map<std::string, std::string> Metadata(const json& j) {
  std::map<std::string, std::string> out;
  if (auto it = j.find("metadata"); it != j.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      if (v.is_string()) out[k] = v.get<std::string>();
    }
  }
  return out;
}

std::optional<TimePoint> Created(const json& j) {
  auto t = ParseTimestamp(StringField(j, "created_at"));
  if (!t) return std::nullopt;
  return *t;
}

std::string MetadataQuery(const std::map<std::string, std::string>& metadata) {
  if (metadata.empty()) return "";
  return "?metadata=" + UrlEncode(json(metadata).dump());
}

Result<void> CheckMetadata(const std::map<std::string, std::string>& metadata) {
  for (const auto& [k, v] : metadata) {
    if (k.empty() || k.size() > 255 || v.size() > 255) {
      return Fail(ErrorKind::kBadRequest,
                  fmt::format("cinder: metadata '{}' must have a 1..255 character key and a "
                              "value of at most 255 characters",
                              k));
    }
  }
  return {};
}

}  // namespace

Result<Volume> CinderClient::ParseVolume(const json& v) {
  if (!v.is_object() || StringField(v, "id").empty()) {
    return Fail(ErrorKind::kParse, "cinder: volume without id");
  }
  Volume out;
  out.id = StringField(v, "id");
  out.name = StringField(v, "name");
  out.status = StringField(v, "status");
  out.size_gb = IntField(v, "size", 0);
  out.availability_zone = StringField(v, "availability_zone");
  out.snapshot_id = StringField(v, "snapshot_id");
  out.volume_type = StringField(v, "volume_type");
  out.metadata = Metadata(v);
  if (auto it = v.find("attachments"); it != v.end() && it->is_array()) {
    for (const json& a : *it) {
      if (a.is_object() && !StringField(a, "server_id").empty()) {
        out.attached_server_ids.push_back(StringField(a, "server_id"));
      }
    }
  }
  out.created = Created(v);
  return out;
}

Result<Snapshot> CinderClient::ParseSnapshot(const json& s) {
  if (!s.is_object() || StringField(s, "id").empty()) {
    return Fail(ErrorKind::kParse, "cinder: snapshot without id");
  }
  Snapshot out;
  out.id = StringField(s, "id");
  out.name = StringField(s, "name");
  out.status = StringField(s, "status");
  out.volume_id = StringField(s, "volume_id");
  out.size_gb = IntField(s, "size", 0);
  out.metadata = Metadata(s);
  out.created = Created(s);
  return out;
}

Result<Volume> CinderClient::CreateVolume(const VolumeCreate& c) {
  if (c.snapshot_id.empty()) return Fail(ErrorKind::kBadRequest, "cinder: snapshot_id is empty");
  if (auto ok = CheckMetadata(c.metadata); !ok) return Fail(ok.error());
  int size = c.size_gb;
  if (size <= 0) {
    auto snapshot = GetSnapshot(c.snapshot_id);
    if (!snapshot) return Fail(snapshot.error());
    size = snapshot->size_gb;
  }
  json volume{{"size", size}, {"snapshot_id", c.snapshot_id}};
  if (!c.name.empty()) volume["name"] = c.name;
  if (!c.description.empty()) volume["description"] = c.description;
  if (!c.availability_zone.empty()) volume["availability_zone"] = c.availability_zone;
  if (!c.volume_type.empty()) volume["volume_type"] = c.volume_type;
  if (!c.metadata.empty()) volume["metadata"] = c.metadata;
  ServiceRequest request{.service_type = "block-storage",
                         .method = "POST",
                         .path = "/volumes",
                         .body = json{{"volume", volume}}.dump(),
                         .idempotent = false,
                         .what = "cinder: create volume " + c.name};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  auto body = ParseObject(*response, request.what, "volume");
  if (!body) return Fail(body.error());
  return ParseVolume((*body)["volume"]);
}

Result<Volume> CinderClient::GetVolume(const std::string& id) {
  ServiceRequest request{.service_type = "block-storage",
                         .path = "/volumes/" + UrlEncode(id),
                         .what = "cinder: show volume " + id};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  auto body = ParseObject(*response, request.what, "volume");
  if (!body) return Fail(body.error());
  return ParseVolume((*body)["volume"]);
}

Result<std::vector<Volume>> CinderClient::ListVolumes(
    const std::map<std::string, std::string>& metadata) {
  auto all = ListAll(session_, "block-storage", "/volumes/detail" + MetadataQuery(metadata),
                     "volumes", "cinder: list volumes", NextLinkIn("volumes_links"));
  if (!all) return Fail(all.error());
  std::vector<Volume> out;
  for (const json& v : *all) {
    auto volume = ParseVolume(v);
    if (!volume) return Fail(volume.error());
    out.push_back(std::move(*volume));
  }
  return out;
}

Result<void> CinderClient::DeleteVolume(const std::string& id) {
  ServiceRequest request{.service_type = "block-storage",
                         .method = "DELETE",
                         .path = "/volumes/" + UrlEncode(id),
                         .what = "cinder: delete volume " + id};
  auto response = session_.Send(request);
  if (!response && response.error().kind != ErrorKind::kNotFound) return Fail(response.error());
  return {};
}

Result<Snapshot> CinderClient::CreateSnapshot(const SnapshotCreate& c) {
  if (c.volume_id.empty()) return Fail(ErrorKind::kBadRequest, "cinder: volume_id is empty");
  if (auto ok = CheckMetadata(c.metadata); !ok) return Fail(ok.error());
  json snapshot{{"volume_id", c.volume_id}, {"force", c.force}};
  if (!c.name.empty()) snapshot["name"] = c.name;
  if (!c.description.empty()) snapshot["description"] = c.description;
  if (!c.metadata.empty()) snapshot["metadata"] = c.metadata;
  ServiceRequest request{.service_type = "block-storage",
                         .method = "POST",
                         .path = "/snapshots",
                         .body = json{{"snapshot", snapshot}}.dump(),
                         .idempotent = false,
                         .what = "cinder: create snapshot of " + c.volume_id};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  auto body = ParseObject(*response, request.what, "snapshot");
  if (!body) return Fail(body.error());
  return ParseSnapshot((*body)["snapshot"]);
}

Result<Snapshot> CinderClient::GetSnapshot(const std::string& id) {
  ServiceRequest request{.service_type = "block-storage",
                         .path = "/snapshots/" + UrlEncode(id),
                         .what = "cinder: show snapshot " + id};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  auto body = ParseObject(*response, request.what, "snapshot");
  if (!body) return Fail(body.error());
  return ParseSnapshot((*body)["snapshot"]);
}

Result<std::vector<Snapshot>> CinderClient::ListSnapshots(
    const std::map<std::string, std::string>& metadata) {
  auto all = ListAll(session_, "block-storage", "/snapshots/detail" + MetadataQuery(metadata),
                     "snapshots", "cinder: list snapshots", NextLinkIn("snapshots_links"));
  if (!all) return Fail(all.error());
  std::vector<Snapshot> out;
  for (const json& s : *all) {
    auto snapshot = ParseSnapshot(s);
    if (!snapshot) return Fail(snapshot.error());
    out.push_back(std::move(*snapshot));
  }
  return out;
}

Result<void> CinderClient::DeleteSnapshot(const std::string& id) {
  ServiceRequest request{.service_type = "block-storage",
                         .method = "DELETE",
                         .path = "/snapshots/" + UrlEncode(id),
                         .what = "cinder: delete snapshot " + id};
  auto response = session_.Send(request);
  if (!response && response.error().kind != ErrorKind::kNotFound) return Fail(response.error());
  return {};
}

Result<VolumeLimits> CinderClient::GetLimits() {
  ServiceRequest request{
      .service_type = "block-storage", .path = "/limits", .what = "cinder: limits"};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  auto body = ParseObject(*response, request.what, "limits");
  if (!body) return Fail(body.error());
  const json& limits = (*body)["limits"];
  if (!limits.is_object() || !limits.contains("absolute") || !limits["absolute"].is_object()) {
    return Fail(ErrorKind::kParse, "cinder: limits: no limits.absolute");
  }
  const json& a = limits["absolute"];
  VolumeLimits out;
  out.max_volumes = IntField(a, "maxTotalVolumes", -1);
  out.used_volumes = IntField(a, "totalVolumesUsed", 0);
  out.max_gigabytes = IntField(a, "maxTotalVolumeGigabytes", -1);
  out.used_gigabytes = IntField(a, "totalGigabytesUsed", 0);
  out.max_snapshots = IntField(a, "maxTotalSnapshots", -1);
  out.used_snapshots = IntField(a, "totalSnapshotsUsed", 0);
  return out;
}

}  // namespace ra::openstack
