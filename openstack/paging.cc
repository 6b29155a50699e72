#include "openstack/paging.h"

#include <fmt/format.h>

#include "core/url.h"
#include "openstack/json_fields.h"

namespace ra::openstack {

using nlohmann::json;

HasNextPage NextLinkIn(std::string key) {
  return [key = std::move(key)](const json& body) {
    auto links = body.find(key);
    if (links == body.end() || !links->is_array()) return false;
    for (const json& l : *links) {
      if (l.is_object() && StringField(l, "rel") == "next") return true;
    }
    return false;
  };
}

Result<std::vector<json>> ListAll(Session& session, const std::string& service_type,
                                  const std::string& path, const char* items_key,
                                  const std::string& what, const HasNextPage& has_next) {
  std::vector<json> out;
  std::string marker;
  for (int page = 0; page < kMaxPages; ++page) {
    std::string page_path = path;
    if (!marker.empty()) {
      page_path +=
          (path.find('?') == std::string::npos ? "?marker=" : "&marker=") + UrlEncode(marker);
    }
    auto response = session.Send({.service_type = service_type, .path = page_path, .what = what});
    if (!response) return Fail(response.error());
    auto body = ParseObject(*response, what);
    if (!body) return Fail(body.error());
    auto items = body->find(items_key);
    if (items == body->end() || !items->is_array()) {
      return Fail(ErrorKind::kParse, fmt::format("{}: answer has no '{}' list", what, items_key));
    }
    for (const json& item : *items) {
      if (item.is_object()) out.push_back(item);
    }
    if (!has_next(*body) || items->empty()) return out;
    const std::string last = StringField(items->back(), "id");
    if (last.empty() || last == marker) {
      return Fail(ErrorKind::kParse,
                  fmt::format("{}: the answer says there is a next page but its last item has "
                              "no new id to continue from",
                              what));
    }
    marker = last;
  }
  return Fail(ErrorKind::kInternal, fmt::format("{}: more than {} pages", what, kMaxPages));
}

}  // namespace ra::openstack
