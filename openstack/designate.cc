#include "openstack/designate.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "openstack/errors.h"
#include "openstack/json_fields.h"

namespace ra::openstack {

namespace {

using nlohmann::json;

std::string Fqdn(std::string name) {
  if (!name.empty() && name.back() != '.') name += '.';
  return name;
}

}  // namespace

Result<std::string> DesignateClient::FindZone(const std::string& zone_name) {
  const std::string name = Fqdn(zone_name);
  ServiceRequest request{.service_type = "dns",
                         .path = "/v2/zones?name=" + UrlEncode(name),
                         .what = "designate: find zone " + name};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  json body = json::parse(response->body, nullptr, false);
  if (!body.is_object() || !body.contains("zones") || !body["zones"].is_array()) {
    return Fail(ErrorKind::kParse, request.what + ": answer has no zones");
  }
  for (const json& z : body["zones"]) {
    if (z.is_object() && StringField(z, "name") == name) return StringField(z, "id");
  }
  return Fail(ErrorKind::kNotFound, request.what + ": no such zone in this project");
}

Result<Recordset> DesignateClient::CreateARecordset(const std::string& zone_id,
                                                    const std::string& name,
                                                    const std::vector<std::string>& addresses,
                                                    int ttl) {
  if (zone_id.empty() || name.empty() || addresses.empty()) {
    return Fail(ErrorKind::kBadRequest, "designate: zone, name and addresses are required");
  }
  json recordset{{"name", Fqdn(name)}, {"type", "A"}, {"records", addresses}};
  if (ttl > 0) recordset["ttl"] = ttl;
  ServiceRequest request{.service_type = "dns",
                         .method = "POST",
                         .path = "/v2/zones/" + UrlEncode(zone_id) + "/recordsets",
                         .body = recordset.dump(),
                         .idempotent = false,
                         .what = "designate: create A " + Fqdn(name)};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  json body = json::parse(response->body, nullptr, false);
  if (!body.is_object() || StringField(body, "id").empty()) {
    return Fail(ErrorKind::kParse, request.what + ": answer has no id");
  }
  Recordset out{StringField(body, "id"),
                StringField(body, "zone_id"),
                StringField(body, "name"),
                StringField(body, "type"),
                {},
                StringField(body, "status")};
  if (auto it = body.find("records"); it != body.end() && it->is_array()) {
    for (const json& r : *it) {
      if (r.is_string()) out.records.push_back(r.get<std::string>());
    }
  }
  return out;
}

Result<void> DesignateClient::DeleteRecordset(const std::string& zone_id,
                                              const std::string& recordset_id) {
  ServiceRequest request{
      .service_type = "dns",
      .method = "DELETE",
      .path = "/v2/zones/" + UrlEncode(zone_id) + "/recordsets/" + UrlEncode(recordset_id),
      .what = "designate: delete recordset " + recordset_id};
  auto response = session_.Send(request);
  if (!response && response.error().kind != ErrorKind::kNotFound) return Fail(response.error());
  return {};
}

}  // namespace ra::openstack
