#include "policies/schedule.h"

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>
#include <fmt/format.h>

#include <array>
#include <chrono>

namespace ra::policies {

namespace {

constexpr std::array<const char*, 7> kDayNames = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr int kMinutesPerDay = 24 * 60;

int DayIndex(cctz::weekday day) {
  switch (day) {
    case cctz::weekday::monday:
      return 0;
    case cctz::weekday::tuesday:
      return 1;
    case cctz::weekday::wednesday:
      return 2;
    case cctz::weekday::thursday:
      return 3;
    case cctz::weekday::friday:
      return 4;
    case cctz::weekday::saturday:
      return 5;
    case cctz::weekday::sunday:
      return 6;
  }
  return 0;
}

std::string ClockText(int minute) { return fmt::format("{:02}:{:02}", minute / 60, minute % 60); }

std::string DaysText(const std::array<bool, 7>& days) {
  int count = 0;
  for (bool d : days) count += d ? 1 : 0;
  if (count == 7) return "daily";
  if (count == 0) return "never";
  // Runs of three or more days read better as ranges: "Mon-Fri", "Mon,Wed,Fri".
  std::string out;
  for (int i = 0; i < 7;) {
    if (!days[i]) {
      ++i;
      continue;
    }
    int j = i;
    while (j + 1 < 7 && days[j + 1]) ++j;
    if (!out.empty()) out += ",";
    if (j - i >= 2) {
      out += fmt::format("{}-{}", kDayNames[i], kDayNames[j]);
    } else {
      out += kDayNames[i];
      if (j > i) out += fmt::format(",{}", kDayNames[j]);
    }
    i = j + 1;
  }
  return out;
}

}  // namespace

std::string DescribeWindow(const ScheduleWindow& window) {
  return fmt::format("{} {}-{}", DaysText(window.days), ClockText(window.start_minute),
                     ClockText(window.end_minute));
}

Result<ScheduleMatch> MatchSchedule(const Scheduled& schedule, TimePoint now) {
  cctz::time_zone tz;
  if (!cctz::load_time_zone(schedule.time_zone, &tz)) {
    return Fail(ErrorKind::kConfig,
                fmt::format("unknown time zone \"{}\" (expected an IANA name such as "
                            "Europe/Moscow)",
                            schedule.time_zone));
  }
  for (const ScheduleWindow& w : schedule.windows) {
    for (int minute : {w.start_minute, w.end_minute}) {
      if (minute < 0 || minute >= kMinutesPerDay) {
        return Fail(ErrorKind::kConfig,
                    fmt::format("window \"{}\": minute {} is outside 0..1439", w.name, minute));
      }
    }
  }

  const auto now_s = std::chrono::floor<cctz::seconds>(now);
  const cctz::civil_second local = cctz::convert(now_s, tz);
  const cctz::civil_day today(local);

  ScheduleMatch match;
  match.local_time = fmt::format("{} {:02}:{:02}", kDayNames[DayIndex(cctz::get_weekday(today))],
                                 local.hour(), local.minute());
  for (size_t i = 0; i < schedule.windows.size(); ++i) {
    const ScheduleWindow& w = schedule.windows[i];
    // A window lasts at most a day of wall-clock time, so only occurrences that started
    // yesterday or today can contain now.
    for (const cctz::civil_day day : {today - 1, today}) {
      if (!w.days[DayIndex(cctz::get_weekday(day))]) continue;
      const cctz::civil_second start = cctz::civil_second(day) + w.start_minute * 60;
      cctz::civil_second end = cctz::civil_second(day) + w.end_minute * 60;
      if (w.end_minute <= w.start_minute) end += 24 * 60 * 60;
      // convert() resolves a skipped wall time to the transition and a repeated one to its first
      // occurrence: the rule documented in the header.
      const auto start_at = cctz::convert(start, tz);
      const auto end_at = cctz::convert(end, tz);
      if (start_at <= now_s && now_s < end_at) {
        match.active.push_back(ActiveWindow{i, TimePoint(start_at), TimePoint(end_at)});
        break;
      }
    }
  }
  return match;
}

}  // namespace ra::policies
