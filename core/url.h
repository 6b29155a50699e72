#pragma once

#include <string>
#include <string_view>

namespace ra {

/// Percent-encodes a query parameter value or path segment (RFC 3986 unreserved characters
/// stay).
std::string UrlEncode(std::string_view text);

/// A host name or address that may be written into a libpq conninfo list (`host=h1,h2`) and the
/// first-boot script's facts as it is: letters, digits and `. : _ -` only (no comma, space,
/// quote or backslash), 1 to 253 characters. The first-boot script applies the same rule.
bool IsPlainHost(std::string_view host);

}  // namespace ra
