#include "core/time_format.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <string>

namespace ra {

Result<TimePoint> ParseTimestamp(std::string_view text) {
  std::tm tm{};
  int consumed = 0;
  const std::string copy(text);
  if (std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
      consumed != 19) {
    return Fail(ErrorKind::kParse, fmt::format("not an ISO 8601 timestamp: '{}'", copy));
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::string_view rest = text.substr(19);
  Duration fraction(0);
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    long long scale = 100;
    while (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest.front()))) {
      fraction += Duration((rest.front() - '0') * scale);
      scale /= 10;
      rest.remove_prefix(1);
    }
  }
  Duration offset(0);
  if (rest == "Z" || rest.empty() || rest == "+00:00" || rest == "-00:00") {
    // UTC (Nova writes naive UTC timestamps).
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int hours = 0;
    int minutes = 0;
    const std::string zone(rest.substr(1));
    if (std::sscanf(zone.c_str(), "%2d:%2d", &hours, &minutes) != 2) {
      return Fail(ErrorKind::kParse, fmt::format("bad UTC offset in '{}'", copy));
    }
    offset = std::chrono::hours(hours) + std::chrono::minutes(minutes);
    if (rest[0] == '-') offset = -offset;
  } else {
    return Fail(ErrorKind::kParse, fmt::format("bad time zone in '{}'", copy));
  }
  // 1970..2200 fits a TimePoint (nanoseconds from 1970 end in 2262) and every date a cloud means.
  if (tm.tm_year < 70 || tm.tm_year > 300 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
      tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return Fail(ErrorKind::kParse, fmt::format("timestamp out of range: '{}'", copy));
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm)) + fraction - offset;
}

}  // namespace ra
