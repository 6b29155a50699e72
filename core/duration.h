#pragma once

#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"

namespace ra {

/// Parses durations the way Prometheus and Go write them: "250ms", "30s", "5m", "1h30m", "2d".
/// A bare number is an error (the unit is never guessed). Negative durations are errors.
Result<Duration> ParseDuration(std::string_view text);

/// The inverse of ParseDuration, shortest form: 90000ms -> "1m30s", 0 -> "0s".
std::string FormatDuration(Duration d);

/// RFC 3339 in UTC with millisecond precision: "2026-11-21T04:43:40.123Z".
std::string FormatTime(TimePoint t);

}  // namespace ra
