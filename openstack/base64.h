#pragma once

#include <string>
#include <string_view>

namespace ra::openstack {

/// Standard base64 (RFC 4648, with padding), as Nova wants user_data.
std::string Base64Encode(std::string_view data);

}  // namespace ra::openstack
