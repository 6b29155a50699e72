#pragma once

#include <string>
#include <string_view>

namespace ra {

/// Percent-encodes a query parameter value or path segment (RFC 3986 unreserved characters
/// stay).
std::string UrlEncode(std::string_view text);

}  // namespace ra
