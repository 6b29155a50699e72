#pragma once

#include <string>
#include <string_view>

namespace ra {

/// Standard base64 (RFC 4648, with padding): HTTP Basic credentials, Nova user_data.
std::string Base64Encode(std::string_view data);

}  // namespace ra
