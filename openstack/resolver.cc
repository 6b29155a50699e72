#include "openstack/resolver.h"

#include <fmt/format.h>

#include <cctype>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/url.h"
#include "openstack/errors.h"
#include "openstack/json_fields.h"
#include "openstack/nova.h"
#include "openstack/paging.h"

namespace ra::openstack {

namespace {

using nlohmann::json;

constexpr size_t kMaxCandidatesShown = 10;

// Catalogs differ on whether Glance's and Neutron's URLs carry the API version ("…:9696" or
// "…:9696/v2.0"); the version is added only when the endpoint lacks it.
Result<std::string> VersionedPath(Session& session, const std::string& service_type,
                                  const std::string& version, const std::string& path) {
  auto endpoint = session.Endpoint(service_type);
  if (!endpoint) return Fail(endpoint.error());
  const std::string suffix = "/" + version;
  if (endpoint->size() >= suffix.size() &&
      endpoint->compare(endpoint->size() - suffix.size(), suffix.size(), suffix) == 0) {
    return path;
  }
  return suffix + path;
}

Result<json> GetObject(Session& session, const std::string& service_type, const std::string& path,
                       const std::string& what) {
  auto response = session.Send({.service_type = service_type, .path = path, .what = what});
  if (!response) return Fail(response.error());
  return ParseObject(*response, what);
}

// Glance says it with a top-level "next" path.
bool GlanceHasNext(const json& body) { return !StringField(body, "next").empty(); }

std::string JoinShown(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < kMaxCandidatesShown; ++i) {
    out += (i == 0 ? "" : ", ") + items[i];
  }
  if (items.size() > kMaxCandidatesShown) {
    out += fmt::format(", and {} more", items.size() - kMaxCandidatesShown);
  }
  return out;
}

Result<std::string> ResolveFlavor(Session& session, const std::string& flavor) {
  if (flavor.empty()) return Fail(ErrorKind::kConfig, "flavor: no flavor configured");
  auto by_id =
      GetObject(session, "compute", "/flavors/" + UrlEncode(flavor), "nova: show flavor " + flavor);
  if (by_id) {
    auto it = by_id->find("flavor");
    if (it == by_id->end() || !it->is_object() || StringField(*it, "id").empty()) {
      return Fail(ErrorKind::kParse, "nova: show flavor " + flavor + ": answer has no flavor id");
    }
    return StringField(*it, "id");
  }
  if (by_id.error().kind != ErrorKind::kNotFound) return Fail(by_id.error());

  auto all = ListAll(session, "compute", "/flavors/detail", "flavors", "nova: list flavors",
                     NextLinkIn("flavors_links"));
  if (!all) return Fail(all.error());
  std::vector<std::string> matches;
  std::vector<std::string> names;
  for (const json& f : *all) {
    names.push_back(StringField(f, "name"));
    if (StringField(f, "name") == flavor) matches.push_back(StringField(f, "id"));
  }
  if (matches.size() == 1) return matches.front();
  if (matches.empty()) {
    return Fail(ErrorKind::kConfig,
                fmt::format("flavor '{}': no flavor has this id or name (flavors: {})", flavor,
                            names.empty() ? "none visible to this project" : JoinShown(names)));
  }
  return Fail(ErrorKind::kConfig, fmt::format("flavor '{}': {} flavors have this name ({}): use "
                                              "an id",
                                              flavor, matches.size(), JoinShown(matches)));
}

Result<std::string> ResolveImage(Session& session, const std::string& image) {
  if (image.empty()) return std::string();
  if (LooksLikeUuid(image)) {
    auto path = VersionedPath(session, "image", "v2", "/images/" + UrlEncode(image));
    if (!path) return Fail(path.error());
    auto by_id = GetObject(session, "image", *path, "glance: show image " + image);
    if (by_id) {
      const std::string status = StringField(*by_id, "status");
      if (status != "active") {
        return Fail(ErrorKind::kConfig,
                    fmt::format("image '{}' is '{}', not active: servers cannot boot from it",
                                image, status));
      }
      return StringField(*by_id, "id").empty() ? image : StringField(*by_id, "id");
    }
    if (by_id.error().kind != ErrorKind::kNotFound) return Fail(by_id.error());
  }
  auto path = VersionedPath(session, "image", "v2", "/images?name=" + UrlEncode(image));
  if (!path) return Fail(path.error());
  auto all =
      ListAll(session, "image", *path, "images", "glance: list images " + image, GlanceHasNext);
  if (!all) return Fail(all.error());
  std::vector<std::string> active;
  std::vector<std::string> inactive;
  for (const json& i : *all) {
    if (StringField(i, "name") != image) continue;
    const std::string status = StringField(i, "status");
    if (status == "active") {
      active.push_back(StringField(i, "id"));
    } else {
      inactive.push_back(fmt::format("{} is '{}'", StringField(i, "id"), status));
    }
  }
  if (active.size() == 1) return active.front();
  if (active.size() > 1) {
    return Fail(ErrorKind::kConfig,
                fmt::format("image '{}': {} active images have this name ({}): use an id", image,
                            active.size(), JoinShown(active)));
  }
  if (!inactive.empty()) {
    return Fail(ErrorKind::kConfig, fmt::format("image '{}': no active image has this name ({})",
                                                image, JoinShown(inactive)));
  }
  return Fail(
      ErrorKind::kConfig,
      fmt::format("image '{}': no image visible to this project has this id or name", image));
}

Result<std::string> ResolveNetwork(Session& session, const std::string& network) {
  if (network.empty()) return Fail(ErrorKind::kConfig, "networks: an entry is empty");
  if (LooksLikeUuid(network)) {
    auto path = VersionedPath(session, "network", "v2.0", "/networks/" + UrlEncode(network));
    if (!path) return Fail(path.error());
    auto by_id = GetObject(session, "network", *path, "neutron: show network " + network);
    if (by_id) {
      auto it = by_id->find("network");
      if (it == by_id->end() || !it->is_object() || StringField(*it, "id").empty()) {
        return Fail(ErrorKind::kParse,
                    "neutron: show network " + network + ": answer has no network id");
      }
      return StringField(*it, "id");
    }
    if (by_id.error().kind != ErrorKind::kNotFound) return Fail(by_id.error());
  }
  auto path = VersionedPath(session, "network", "v2.0", "/networks?name=" + UrlEncode(network));
  if (!path) return Fail(path.error());
  auto all = ListAll(session, "network", *path, "networks", "neutron: list networks " + network,
                     NextLinkIn("networks_links"));
  if (!all) return Fail(all.error());
  std::vector<std::string> matches;
  for (const json& n : *all) {
    if (StringField(n, "name") == network) matches.push_back(StringField(n, "id"));
  }
  if (matches.size() == 1) return matches.front();
  if (matches.empty()) {
    return Fail(ErrorKind::kConfig,
                fmt::format("network '{}': no network visible to this project has this id or name",
                            network));
  }
  return Fail(ErrorKind::kConfig,
              fmt::format("network '{}': {} networks have this name ({}): use an id", network,
                          matches.size(), JoinShown(matches)));
}

// Nova's name filter is a regular expression; the name is matched literally.
std::string AnchoredRegex(const std::string& name) {
  std::string out = "^";
  for (char c : name) {
    if (std::string_view(".^$*+?()[]{}|\\").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out + "$";
}

Result<Server> FindDonorServer(Session& session, const std::string& server) {
  NovaClient nova(session);
  if (LooksLikeUuid(server)) {
    auto by_id = nova.GetServer(server);
    if (by_id) return by_id;
    if (by_id.error().kind != ErrorKind::kNotFound) return Fail(by_id.error());
  }
  auto all = ListAll(session, "compute", "/servers/detail?name=" + UrlEncode(AnchoredRegex(server)),
                     "servers", "nova: list servers named " + server, NextLinkIn("servers_links"));
  if (!all) return Fail(all.error());
  std::vector<Server> matches;
  for (const json& s : *all) {
    if (StringField(s, "name") != server) continue;
    auto parsed = NovaClient::ParseServer(s);
    if (!parsed) return Fail(parsed.error());
    matches.push_back(std::move(*parsed));
  }
  if (matches.size() == 1) return matches.front();
  if (matches.empty()) {
    return Fail(
        ErrorKind::kConfig,
        fmt::format("donor server '{}': no server in this project has this id or name", server));
  }
  std::vector<std::string> ids;
  for (const Server& s : matches) ids.push_back(s.id);
  return Fail(ErrorKind::kConfig,
              fmt::format("donor server '{}': {} servers have this name ({}): use its id", server,
                          matches.size(), JoinShown(ids)));
}

struct AttachedVolume {
  std::string id;
  std::string name;
  bool boot = false;

  std::string Described() const { return name.empty() ? id : fmt::format("{} ({})", name, id); }
};

Result<AttachedVolume> ReadAttachedVolume(Session& session, const std::string& volume_id,
                                          const std::string& server_id) {
  auto body = GetObject(session, "block-storage", "/volumes/" + UrlEncode(volume_id),
                        "cinder: show volume " + volume_id);
  if (!body) return Fail(body.error());
  auto v = body->find("volume");
  if (v == body->end() || !v->is_object()) {
    return Fail(ErrorKind::kParse, "cinder: show volume " + volume_id + ": answer has no volume");
  }
  AttachedVolume out{volume_id, StringField(*v, "name"), false};
  // Cinder writes bootable as the string "true"; some gateways send a JSON boolean.
  if (auto b = v->find("bootable"); b != v->end()) {
    out.boot =
        (b->is_string() && b->get<std::string>() == "true") || (b->is_boolean() && b->get<bool>());
  }
  if (auto list = v->find("attachments"); list != v->end() && list->is_array()) {
    for (const json& a : *list) {
      if (!a.is_object() || StringField(a, "server_id") != server_id) continue;
      if (StringField(a, "device") == "/dev/vda") out.boot = true;
    }
  }
  return out;
}

}  // namespace

bool LooksLikeUuid(std::string_view text) {
  const auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  if (text.size() == 32) {
    for (char c : text) {
      if (!hex(c)) return false;
    }
    return true;
  }
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !hex(text[i])) return false;
  }
  return true;
}

Result<ResolvedTemplate> ResolveTemplate(Session& session, const std::string& flavor,
                                         const std::string& image,
                                         const std::vector<std::string>& networks) {
  ResolvedTemplate out;
  auto flavor_id = ResolveFlavor(session, flavor);
  if (!flavor_id) return Fail(flavor_id.error());
  out.flavor_id = std::move(*flavor_id);
  auto image_id = ResolveImage(session, image);
  if (!image_id) return Fail(image_id.error());
  out.image_id = std::move(*image_id);
  for (const std::string& network : networks) {
    auto id = ResolveNetwork(session, network);
    if (!id) return Fail(id.error());
    out.network_ids.push_back(std::move(*id));
  }
  return out;
}

namespace {

// The donor's data volume among those attached to `donor` (see ResolveDonorVolume).
Result<std::string> PickDonorVolume(Session& session, const std::string& server,
                                    const Server& donor, const std::string& volume) {
  if (donor.volume_ids.empty()) {
    return Fail(ErrorKind::kConfig,
                fmt::format("donor server '{}' ({}) has no attached volume", server, donor.id));
  }
  if (!volume.empty()) {
    for (const std::string& id : donor.volume_ids) {
      if (id == volume) return id;
    }
  }
  std::vector<AttachedVolume> attached;
  for (const std::string& id : donor.volume_ids) {
    auto v = ReadAttachedVolume(session, id, donor.id);
    if (!v) return Fail(v.error());
    attached.push_back(std::move(*v));
  }
  std::vector<std::string> all;
  for (const AttachedVolume& v : attached) all.push_back(v.Described());

  if (!volume.empty()) {
    std::vector<std::string> matches;
    for (const AttachedVolume& v : attached) {
      if (v.name == volume) matches.push_back(v.id);
    }
    if (matches.size() == 1) return matches.front();
    if (matches.empty()) {
      return Fail(ErrorKind::kConfig,
                  fmt::format("donor volume '{}' is not attached to donor server '{}' (attached: "
                              "{})",
                              volume, server, JoinShown(all)));
    }
    return Fail(ErrorKind::kConfig,
                fmt::format("donor volume '{}': {} volumes attached to donor server '{}' have "
                            "this name ({}): use its id",
                            volume, matches.size(), server, JoinShown(matches)));
  }

  std::vector<const AttachedVolume*> data;
  for (const AttachedVolume& v : attached) {
    if (!v.boot) data.push_back(&v);
  }
  if (data.size() == 1) return data.front()->id;
  if (data.empty()) {
    return Fail(ErrorKind::kConfig,
                fmt::format("donor server '{}' has no data volume besides its boot volume ({}): "
                            "set clusters[].donor.volume",
                            server, JoinShown(all)));
  }
  std::vector<std::string> names;
  for (const AttachedVolume* v : data) names.push_back(v->Described());
  return Fail(ErrorKind::kConfig,
              fmt::format("donor server '{}' has {} data volumes ({}): set clusters[].donor.volume",
                          server, data.size(), JoinShown(names)));
}

}  // namespace

Result<DonorFacts> ResolveDonor(Session& session, const std::string& server,
                                const std::string& volume) {
  if (server.empty()) return Fail(ErrorKind::kConfig, "donor server: none configured");
  auto donor = FindDonorServer(session, server);
  if (!donor) return Fail(donor.error());
  auto volume_id = PickDonorVolume(session, server, *donor, volume);
  if (!volume_id) return Fail(volume_id.error());
  return DonorFacts{donor->id, std::move(*volume_id), donor->FixedIpv4()};
}

Result<std::string> ResolveDonorVolume(Session& session, const std::string& server,
                                       const std::string& volume) {
  auto donor = ResolveDonor(session, server, volume);
  if (!donor) return Fail(donor.error());
  return donor->volume_id;
}

}  // namespace ra::openstack
