#include "core/duration.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdint>
#include <ctime>

namespace ra {

namespace {

struct Unit {
  std::string_view suffix;
  int64_t millis;
};

// Longest suffixes first so that "ms" is not read as "m" followed by garbage.
constexpr Unit kUnits[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}, {"w", 604'800'000},
};

}  // namespace

Result<Duration> ParseDuration(std::string_view text) {
  if (text.empty())
    return Fail(ErrorKind::kBadRequest, "empty duration (expected e.g. 30s, 5m, 1h)");
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) {
      return Fail(ErrorKind::kBadRequest,
                  fmt::format("invalid duration '{}': expected a number at position {} "
                              "(durations look like 30s, 5m, 1h30m)",
                              text, i + 1));
    }
    int64_t number = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      number = number * 10 + (text[i] - '0');
      if (number > 1'000'000'000) {
        return Fail(ErrorKind::kBadRequest, fmt::format("duration '{}' is too large", text));
      }
      ++i;
    }
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (text.substr(i, u.suffix.size()) == u.suffix) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) {
      return Fail(ErrorKind::kBadRequest,
                  fmt::format("invalid duration '{}': missing or unknown unit after {} "
                              "(use ms, s, m, h, d or w)",
                              text, number));
    }
    i += unit->suffix.size();
    total += number * unit->millis;
    if (total > int64_t{10} * 365 * 86'400'000) {
      return Fail(ErrorKind::kBadRequest,
                  fmt::format("duration '{}' is longer than 10 years", text));
    }
  }
  return Duration(total);
}

std::string FormatDuration(Duration d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  const int64_t hours = ms / 3'600'000;
  ms %= 3'600'000;
  const int64_t minutes = ms / 60'000;
  ms %= 60'000;
  const int64_t seconds = ms / 1000;
  ms %= 1000;
  if (hours) out += fmt::format("{}h", hours);
  if (minutes) out += fmt::format("{}m", minutes);
  if (seconds) out += fmt::format("{}s", seconds);
  if (ms) out += fmt::format("{}ms", ms);
  return out;
}

std::string FormatTime(TimePoint t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  int64_t frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

}  // namespace ra
