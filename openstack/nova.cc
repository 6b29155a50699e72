#include "openstack/nova.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/base64.h"
#include "core/time_format.h"
#include "core/url.h"
#include "openstack/errors.h"
#include "openstack/json_fields.h"
#include "openstack/paging.h"

namespace ra::openstack {

namespace {

using nlohmann::json;

}  // namespace

std::string Server::FixedIpv4() const {
  for (const ServerAddress& a : addresses) {
    if (a.version == 4 && (a.type.empty() || a.type == "fixed")) return a.address;
  }
  return "";
}

Result<void> ValidateTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 60) {
    return Fail(ErrorKind::kBadRequest,
                fmt::format("nova tag '{}' must have 1 to 60 characters", tag));
  }
  if (tag.find_first_of(",/") != std::string_view::npos) {
    return Fail(ErrorKind::kBadRequest,
                fmt::format("nova tag '{}' must not contain ',' or '/'", tag));
  }
  return {};
}

Result<Server> NovaClient::ParseServer(const json& s) {
  if (!s.is_object()) return Fail(ErrorKind::kParse, "nova: server is not an object");
  Server out;
  out.id = StringField(s, "id");
  if (out.id.empty()) return Fail(ErrorKind::kParse, "nova: server without id");
  out.name = StringField(s, "name");
  out.status = StringField(s, "status");
  out.task_state = StringField(s, "OS-EXT-STS:task_state");
  out.availability_zone = StringField(s, "OS-EXT-AZ:availability_zone");
  if (auto it = s.find("addresses"); it != s.end() && it->is_object()) {
    for (const auto& [network, list] : it->items()) {
      if (!list.is_array()) continue;
      for (const json& a : list) {
        if (!a.is_object()) continue;
        out.addresses.push_back({network, StringField(a, "addr"), IntField(a, "version", 4),
                                 StringField(a, "OS-EXT-IPS:type")});
      }
    }
  }
  if (auto it = s.find("metadata"); it != s.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      if (v.is_string()) out.metadata[k] = v.get<std::string>();
    }
  }
  if (auto it = s.find("tags"); it != s.end() && it->is_array()) {
    for (const json& t : *it) {
      if (t.is_string()) out.tags.push_back(t.get<std::string>());
    }
  }
  if (auto it = s.find("os-extended-volumes:volumes_attached"); it != s.end() && it->is_array()) {
    for (const json& v : *it) {
      if (v.is_object() && !StringField(v, "id").empty())
        out.volume_ids.push_back(StringField(v, "id"));
    }
  }
  if (std::string created = StringField(s, "created"); !created.empty()) {
    auto t = ParseTimestamp(created);
    if (t) out.created = *t;
  }
  if (auto it = s.find("fault"); it != s.end() && it->is_object()) {
    out.fault_message = StringField(*it, "message");
    out.fault_code = IntField(*it, "code", 0);
  }
  return out;
}

Result<Server> NovaClient::CreateServer(const ServerCreate& c) {
  if (c.name.empty()) return Fail(ErrorKind::kBadRequest, "nova: server name is empty");
  if (c.flavor_ref.empty()) return Fail(ErrorKind::kBadRequest, "nova: flavor is empty");
  if (c.image_ref.empty()) {
    return Fail(ErrorKind::kBadRequest, "nova: a server needs an image for its system disk");
  }
  if (c.tags.size() > 50) return Fail(ErrorKind::kBadRequest, "nova: more than 50 tags");
  for (const std::string& tag : c.tags) {
    if (auto ok = ValidateTag(tag); !ok) return Fail(ok.error());
  }
  json server{{"name", c.name}, {"flavorRef", c.flavor_ref}};
  server["imageRef"] = c.image_ref;
  if (!c.data_volume_id.empty()) {
    // Nova accepts image -> local only at boot_index 0 and only together with imageRef.
    server["block_device_mapping_v2"] = json::array({
        json{{"boot_index", 0},
             {"uuid", c.image_ref},
             {"source_type", "image"},
             {"destination_type", "local"},
             {"delete_on_termination", true}},
        json{{"boot_index", -1},
             {"uuid", c.data_volume_id},
             {"source_type", "volume"},
             {"destination_type", "volume"},
             {"delete_on_termination", c.delete_volume_on_termination}},
    });
  }
  if (c.without_network) {
    server["networks"] = "none";
  } else if (c.network_ids.empty()) {
    server["networks"] = "auto";
  } else {
    json networks = json::array();
    for (const std::string& id : c.network_ids) networks.push_back({{"uuid", id}});
    server["networks"] = networks;
  }
  if (!c.security_groups.empty()) {
    json groups = json::array();
    for (const std::string& g : c.security_groups) groups.push_back({{"name", g}});
    server["security_groups"] = groups;
  }
  if (!c.availability_zone.empty()) server["availability_zone"] = c.availability_zone;
  if (!c.key_name.empty()) server["key_name"] = c.key_name;
  if (!c.tags.empty()) server["tags"] = c.tags;
  if (!c.metadata.empty()) server["metadata"] = c.metadata;
  if (!c.user_data.empty()) {
    server["user_data"] = Base64Encode(c.user_data);
    if (server["user_data"].get_ref<const std::string&>().size() > 65535) {
      return Fail(ErrorKind::kBadRequest,
                  "nova: user_data is larger than 65535 bytes once base64-encoded");
    }
  }
  ServiceRequest request{.service_type = "compute",
                         .method = "POST",
                         .path = "/servers",
                         .body = json{{"server", server}}.dump(),
                         .idempotent = false,
                         .what = "nova: create server " + c.name};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  auto body = ParseObject(*response, request.what);
  if (!body) return Fail(body.error());
  if (!body->contains("server")) return Fail(ErrorKind::kParse, request.what + ": no server");
  // The create answer holds only the id and links (and adminPass, which is never kept).
  Server out;
  out.id = StringField((*body)["server"], "id");
  if (out.id.empty()) return Fail(ErrorKind::kParse, request.what + ": answer has no id");
  out.name = c.name;
  out.status = "BUILD";
  out.tags = c.tags;
  out.metadata = c.metadata;
  out.availability_zone = c.availability_zone;
  return out;
}

Result<Server> NovaClient::GetServer(const std::string& id) {
  ServiceRequest request{.service_type = "compute",
                         .path = "/servers/" + UrlEncode(id),
                         .what = "nova: show server " + id};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  auto body = ParseObject(*response, request.what);
  if (!body) return Fail(body.error());
  if (!body->contains("server")) return Fail(ErrorKind::kParse, request.what + ": no server");
  auto server = ParseServer((*body)["server"]);
  if (server && server->status == "DELETED") {
    return Fail(ErrorKind::kNotFound, request.what + ": server is deleted");
  }
  return server;
}

Result<std::vector<Server>> NovaClient::ListServersByTags(const std::vector<std::string>& tags) {
  if (tags.empty()) {
    return Fail(ErrorKind::kBadRequest, "nova: listing by tags needs at least one tag");
  }
  std::string joined;
  for (const std::string& tag : tags) {
    if (auto ok = ValidateTag(tag); !ok) return Fail(ok.error());
    joined += (joined.empty() ? "" : ",") + tag;
  }
  auto all =
      ListAll(session_, "compute", "/servers/detail?tags=" + UrlEncode(joined) + "&limit=200",
              "servers", "nova: list servers", NextLinkIn("servers_links"));
  if (!all) return Fail(all.error());
  std::vector<Server> out;
  for (const json& s : *all) {
    auto server = ParseServer(s);
    if (!server) return Fail(server.error());
    out.push_back(std::move(*server));
  }
  return out;
}

Result<void> NovaClient::DeleteServer(const std::string& id) {
  ServiceRequest request{.service_type = "compute",
                         .method = "DELETE",
                         .path = "/servers/" + UrlEncode(id),
                         .what = "nova: delete server " + id};
  auto response = session_.Send(request);
  if (!response && response.error().kind != ErrorKind::kNotFound) return Fail(response.error());
  return {};
}

Result<std::vector<AvailabilityZone>> NovaClient::ListAvailabilityZones() {
  ServiceRequest request{
      .service_type = "compute", .path = "/os-availability-zone", .what = "nova: list zones"};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  auto body = ParseObject(*response, request.what);
  if (!body) return Fail(body.error());
  auto it = body->find("availabilityZoneInfo");
  if (it == body->end() || !it->is_array()) {
    return Fail(ErrorKind::kParse, "nova: list zones: no availabilityZoneInfo");
  }
  std::vector<AvailabilityZone> out;
  for (const json& z : *it) {
    if (!z.is_object()) continue;
    bool available = false;
    if (auto st = z.find("zoneState"); st != z.end() && st->is_object()) {
      auto a = st->find("available");
      available = a != st->end() && a->is_boolean() && a->get<bool>();
    }
    out.push_back({StringField(z, "zoneName"), available});
  }
  return out;
}

Result<ComputeLimits> NovaClient::GetLimits() {
  ServiceRequest request{.service_type = "compute", .path = "/limits", .what = "nova: limits"};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  auto body = ParseObject(*response, request.what);
  if (!body) return Fail(body.error());
  const json* absolute = nullptr;
  if (auto l = body->find("limits"); l != body->end() && l->is_object()) {
    if (auto a = l->find("absolute"); a != l->end() && a->is_object()) absolute = &*a;
  }
  if (absolute == nullptr) return Fail(ErrorKind::kParse, "nova: limits: no limits.absolute");
  ComputeLimits out;
  out.max_instances = IntField(*absolute, "maxTotalInstances", -1);
  out.used_instances = IntField(*absolute, "totalInstancesUsed", 0);
  out.max_cores = IntField(*absolute, "maxTotalCores", -1);
  out.used_cores = IntField(*absolute, "totalCoresUsed", 0);
  out.max_ram_mb = IntField(*absolute, "maxTotalRAMSize", -1);
  out.used_ram_mb = IntField(*absolute, "totalRAMUsed", 0);
  return out;
}

}  // namespace ra::openstack
