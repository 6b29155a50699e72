#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ra {

/// Standard base64 (RFC 4648, with padding): HTTP Basic credentials, Nova user_data.
std::string Base64Encode(std::string_view data);

/// The bytes `text` encodes (standard alphabet, padding required: what etcd's JSON gateway
/// sends); nullopt when it is not valid base64.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace ra
