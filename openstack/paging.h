#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/result.h"
#include "openstack/session.h"

/// Lists that span pages. Nova, Cinder and Neutron cut a list at their `max_limit` (Cinder's
/// osapi_max_limit is 1000 by default and often set lower) and say there is more with a
/// `<items>_links` entry of rel "next"; reading only the first page would make resources beyond
/// it invisible, and a replica nobody sees is never deleted.
namespace ra::openstack {

/// A list request never follows more pages than this; more is an error, not a silent cut.
inline constexpr int kMaxPages = 1000;

/// True when the answer says there is a next page.
using HasNextPage = std::function<bool(const nlohmann::json& body)>;

/// Nova, Cinder and Neutron: {"<key>": [{"rel": "next", "href": ...}]}.
HasNextPage NextLinkIn(std::string key);

/// Every item of a paginated list at `path` (which may carry a query), following the marker
/// (the last item's id, as the services' own next links do) while `has_next` says there is
/// more. kParse when an answer has no `items_key` list; kInternal after kMaxPages pages.
Result<std::vector<nlohmann::json>> ListAll(Session& session, const std::string& service_type,
                                            const std::string& path, const char* items_key,
                                            const std::string& what, const HasNextPage& has_next);

}  // namespace ra::openstack
