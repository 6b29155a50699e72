#pragma once

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "policies/spec.h"

/// Calendar logic of scheduled policies: which recurring windows contain an instant, in the
/// schedule's IANA time zone (cctz over the system tzdata). Pure: no clock reads.
///
/// How a window maps to real time: an occurrence starts on each local day marked in `days`, the
/// first moment the local wall clock reaches `start_minute`, and ends the first moment it reaches
/// `end_minute` (the next day when end <= start). A wall-clock time that does not exist (skipped
/// by a spring-forward transition) is reached at the transition; one that happens twice (a
/// fall-back transition) is reached the first time. So an occurrence is one continuous interval,
/// consecutive daily occurrences tile without gaps, and on DST days a window is an hour shorter or
/// longer in real time but always matches the wall clock.
namespace ra::policies {

/// One occurrence of a window that contains the instant asked about.
struct ActiveWindow {
  size_t index = 0;  ///< into Scheduled::windows
  TimePoint start;   ///< inclusive
  TimePoint end;     ///< exclusive
};

struct ScheduleMatch {
  std::vector<ActiveWindow> active;  ///< in configuration order; empty outside every window
  std::string local_time;            ///< `now` on the zone's wall clock, e.g. "Mon 14:05"
};

/// Which windows of `schedule` contain `now`. Never throws. Errors (kConfig): an unknown time
/// zone, a window whose start_minute or end_minute is outside 0..1439.
Result<ScheduleMatch> MatchSchedule(const Scheduled& schedule, TimePoint now);

/// A window for reasons and logs, e.g. "Mon-Fri 08:00-20:00", "daily 22:00-06:00",
/// "Sat,Sun 10:00-14:00".
std::string DescribeWindow(const ScheduleWindow& window);

}  // namespace ra::policies
