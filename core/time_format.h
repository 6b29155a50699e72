#pragma once

#include <string_view>

#include "core/clock.h"
#include "core/result.h"

namespace ra {

/// Parses the ISO 8601 timestamps clouds and this service write: "2026-11-21T05:59:58.000000Z",
/// "2026-11-21T05:59:58Z", "2026-11-21T05:59:58+00:00", and Nova's "2026-11-21T05:59:58"
/// (naive means UTC). kParse on anything else. The inverse of FormatTime (core/duration.h).
Result<TimePoint> ParseTimestamp(std::string_view text);

}  // namespace ra
