#include "openstack/designate.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/url.h"
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
  auto out = ParseRecordset(body);
  if (!out) return Fail(ErrorKind::kParse, request.what + ": " + out.error().message);
  return out;
}

Result<Recordset> DesignateClient::ParseRecordset(const json& body) {
  if (!body.is_object() || StringField(body, "id").empty()) {
    return Fail(ErrorKind::kParse, "designate: recordset has no id");
  }
  Recordset out{.id = StringField(body, "id"),
                .zone_id = StringField(body, "zone_id"),
                .name = StringField(body, "name"),
                .type = StringField(body, "type"),
                .records = {},
                .status = StringField(body, "status"),
                .action = StringField(body, "action"),
                .ttl = IntField(body, "ttl", 0)};
  if (auto it = body.find("records"); it != body.end() && it->is_array()) {
    for (const json& r : *it) {
      if (r.is_string()) out.records.push_back(r.get<std::string>());
    }
  }
  return out;
}

Result<std::vector<Recordset>> DesignateClient::ListRecordsets(const std::string& zone_id,
                                                               const std::string& name,
                                                               const std::string& type) {
  if (zone_id.empty() || name.empty()) {
    return Fail(ErrorKind::kBadRequest, "designate: zone and name are required to list recordsets");
  }
  std::string base =
      "/v2/zones/" + UrlEncode(zone_id) + "/recordsets?name=" + UrlEncode(Fqdn(name));
  if (!type.empty()) base += "&type=" + UrlEncode(type);
  const std::string what = "designate: list recordsets " + Fqdn(name);
  std::vector<Recordset> out;
  std::string marker;
  for (int page = 0; page < 100; ++page) {
    ServiceRequest request{.service_type = "dns",
                           .path = marker.empty() ? base : base + "&marker=" + UrlEncode(marker),
                           .what = what};
    auto response = session_.Send(request);
    if (!response) return Fail(response.error());
    auto body = ParseObject(*response, what, "recordsets");
    if (!body) return Fail(body.error());
    const json& list = (*body)["recordsets"];
    if (!list.is_array()) return Fail(ErrorKind::kParse, what + ": recordsets is not a list");
    for (const json& r : list) {
      auto parsed = ParseRecordset(r);
      if (!parsed) return Fail(ErrorKind::kParse, what + ": " + parsed.error().message);
      out.push_back(std::move(*parsed));
    }
    // Designate says "there is more" with links.next.
    bool has_next = false;
    if (auto links = body->find("links"); links != body->end() && links->is_object()) {
      has_next = !StringField(*links, "next").empty();
    }
    if (!has_next || list.empty() || out.back().id == marker) return out;
    marker = out.back().id;
  }
  return Fail(ErrorKind::kInternal, what + ": more than 100 pages");
}

Result<Recordset> DesignateClient::UpdateRecordset(const std::string& zone_id,
                                                   const std::string& recordset_id,
                                                   const std::vector<std::string>& records,
                                                   int ttl) {
  if (zone_id.empty() || recordset_id.empty() || records.empty()) {
    return Fail(ErrorKind::kBadRequest, "designate: zone, recordset and records are required");
  }
  json update{{"records", records}};
  if (ttl > 0) update["ttl"] = ttl;
  ServiceRequest request{
      .service_type = "dns",
      .method = "PUT",
      .path = "/v2/zones/" + UrlEncode(zone_id) + "/recordsets/" + UrlEncode(recordset_id),
      .body = update.dump(),
      .what = "designate: update recordset " + recordset_id};
  auto response = session_.Send(request);
  if (!response) return Fail(response.error());
  json body = json::parse(response->body, nullptr, false);
  auto out = ParseRecordset(body);
  if (!out) return Fail(ErrorKind::kParse, request.what + ": " + out.error().message);
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
