#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policies/engine.h"
#include "policies/schedule.h"
#include "tests/unit/policy_test_util.h"

namespace ra::policies {
namespace {

using namespace std::chrono_literals;
using namespace test_util;
using ::testing::HasSubstr;

// Which windows (by name) contain `at`.
std::vector<std::string> ActiveNames(const Scheduled& s, TimePoint at) {
  Result<ScheduleMatch> m = MatchSchedule(s, at);
  EXPECT_TRUE(m.has_value()) << m.error().message;
  std::vector<std::string> names;
  if (m) {
    for (const ActiveWindow& a : m->active) names.push_back(s.windows[a.index].name);
  }
  return names;
}

Scheduled Schedule(std::string zone, std::vector<ScheduleWindow> windows) {
  return Scheduled{std::move(zone), std::move(windows)};
}

using Names = std::vector<std::string>;

TEST(Schedule, WeekdayBusinessHoursInMoscow) {
  // Moscow is UTC+3 all year. 2026-03-02 is a Monday, 2026-03-07 a Saturday.
  const Scheduled s = Schedule("Europe/Moscow", {Window("business", kWeekdays, 8, 0, 20, 0, 4)});
  struct Case {
    const char* name;
    TimePoint at;
    bool inside;
  };
  const Case cases[] = {
      {"Mon 07:59:59", Utc(2026, 3, 2, 4, 59, 59), false},
      {"Mon 08:00 starts", Utc(2026, 3, 2, 5, 0), true},
      {"Mon 19:59:59", Utc(2026, 3, 2, 16, 59, 59), true},
      {"Mon 20:00 ends", Utc(2026, 3, 2, 17, 0), false},
      {"Fri 12:00", Utc(2026, 3, 6, 9, 0), true},
      {"Sat 12:00", Utc(2026, 3, 7, 9, 0), false},
      {"Sun 12:00", Utc(2026, 3, 8, 9, 0), false},
      // No DST in Moscow: 05:00 UTC is 08:00 in July too.
      {"July Mon 08:00", Utc(2026, 7, 6, 5, 0), true},
      {"July Mon 07:59", Utc(2026, 7, 6, 4, 59), false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(!ActiveNames(s, c.at).empty(), c.inside) << c.name;
  }

  // The local date decides the day: Friday 21:30 UTC is Saturday 00:30 in Moscow.
  std::array<bool, 7> saturday{};
  saturday[5] = true;
  const Scheduled early = Schedule("Europe/Moscow", {Window("early", saturday, 0, 0, 3, 0, 2)});
  EXPECT_EQ(ActiveNames(early, Utc(2026, 3, 6, 21, 30)), Names{"early"});
  EXPECT_TRUE(ActiveNames(early, Utc(2026, 3, 7, 21, 30)).empty());  // Sunday 00:30
}

TEST(Schedule, WindowsCrossingMidnightBelongToTheDayTheyStart) {
  std::array<bool, 7> friday{};
  friday[4] = true;
  const Scheduled s = Schedule(
      "UTC", {Window("night", friday, 22, 0, 6, 0, 3), Window("always", kEveryDay, 0, 0, 0, 0, 1)});
  struct Case {
    const char* name;
    TimePoint at;
    Names want;
  };
  const Case cases[] = {
      {"Fri 21:59", Utc(2026, 3, 6, 21, 59), {"always"}},
      {"Fri 22:00", Utc(2026, 3, 6, 22, 0), {"night", "always"}},
      {"Sat 00:00", Utc(2026, 3, 7, 0, 0), {"night", "always"}},
      {"Sat 05:59:59", Utc(2026, 3, 7, 5, 59, 59), {"night", "always"}},
      {"Sat 06:00", Utc(2026, 3, 7, 6, 0), {"always"}},
      {"Fri 05:00 is Thursday's night", Utc(2026, 3, 6, 5, 0), {"always"}},
      {"Sat 23:00", Utc(2026, 3, 7, 23, 0), {"always"}},
  };
  for (const Case& c : cases) EXPECT_EQ(ActiveNames(s, c.at), c.want) << c.name;

  // end == start is a whole day, tiling with the next one.
  Result<ScheduleMatch> m = MatchSchedule(s, Utc(2026, 3, 7, 0, 0));
  ASSERT_TRUE(m);
  ASSERT_EQ(m->active.size(), 2u);
  EXPECT_EQ(m->active[1].start, Utc(2026, 3, 7, 0, 0));
  EXPECT_EQ(m->active[1].end, Utc(2026, 3, 8, 0, 0));
  EXPECT_EQ(m->active[0].start, Utc(2026, 3, 6, 22, 0));
  EXPECT_EQ(m->active[0].end, Utc(2026, 3, 7, 6, 0));
}

TEST(Schedule, BerlinFollowsTheWallClockAcrossDst) {
  // Berlin: UTC+1 in winter, UTC+2 in summer. 2026-03-29 02:00 CET jumps to 03:00 CEST;
  // 2026-10-25 03:00 CEST falls back to 02:00 CET.
  const Scheduled business =
      Schedule("Europe/Berlin", {Window("business", kEveryDay, 8, 0, 20, 0, 4)});
  EXPECT_TRUE(ActiveNames(business, Utc(2026, 1, 12, 7, 0)).size() == 1);   // 08:00 CET
  EXPECT_TRUE(ActiveNames(business, Utc(2026, 1, 12, 6, 30)).empty());      // 07:30 CET
  EXPECT_TRUE(ActiveNames(business, Utc(2026, 7, 13, 6, 30)).size() == 1);  // 08:30 CEST
  EXPECT_TRUE(ActiveNames(business, Utc(2026, 7, 13, 18, 30)).empty());     // 20:30 CEST

  struct Case {
    const char* name;
    ScheduleWindow window;
    TimePoint at;       // an instant inside the occurrence
    TimePoint start;    // its real start
    TimePoint end;      // its real end
    TimePoint outside;  // an instant just outside
  };
  const Case cases[] = {
      // 01:00 CET (00:00Z) to 04:00 CEST (02:00Z): two real hours on the short night.
      {"spring, across the gap", Window("w", kEveryDay, 1, 0, 4, 0, 2), Utc(2026, 3, 29, 1, 30),
       Utc(2026, 3, 29, 0, 0), Utc(2026, 3, 29, 2, 0), Utc(2026, 3, 29, 2, 0)},
      // 02:30 does not exist that night: the window starts when the clock jumps (01:00Z).
      {"spring, start skipped", Window("w", kEveryDay, 2, 30, 5, 0, 2), Utc(2026, 3, 29, 1, 0),
       Utc(2026, 3, 29, 1, 0), Utc(2026, 3, 29, 3, 0), Utc(2026, 3, 29, 0, 59, 59)},
      // 01:00 CEST (23:00Z the day before) to 04:00 CET (03:00Z): four real hours.
      {"autumn, across the repeat", Window("w", kEveryDay, 1, 0, 4, 0, 2), Utc(2026, 10, 25, 1, 30),
       Utc(2026, 10, 24, 23, 0), Utc(2026, 10, 25, 3, 0), Utc(2026, 10, 25, 3, 0)},
      // 02:30 happens twice; the window ends the first time (00:30Z) and does not come back
      // when the clock reads 02:00-02:30 again (01:00Z-01:30Z).
      {"autumn, end repeated", Window("w", kEveryDay, 0, 0, 2, 30, 2), Utc(2026, 10, 25, 0, 0),
       Utc(2026, 10, 24, 22, 0), Utc(2026, 10, 25, 0, 30), Utc(2026, 10, 25, 1, 15)},
  };
  for (const Case& c : cases) {
    const Scheduled s = Schedule("Europe/Berlin", {c.window});
    Result<ScheduleMatch> m = MatchSchedule(s, c.at);
    ASSERT_TRUE(m) << c.name;
    ASSERT_EQ(m->active.size(), 1u) << c.name;
    EXPECT_EQ(m->active[0].start, c.start) << c.name;
    EXPECT_EQ(m->active[0].end, c.end) << c.name;
    EXPECT_TRUE(ActiveNames(s, c.outside).empty()) << c.name;
  }
}

TEST(Schedule, BadZonesAndWindowsAreErrorsNotCrashes) {
  Result<ScheduleMatch> m =
      MatchSchedule(Schedule("Mars/Olympus_Mons", {Window("w", kEveryDay, 8, 0, 9, 0, 2)}), kNow);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(m.error().message, HasSubstr("unknown time zone \"Mars/Olympus_Mons\""));

  ScheduleWindow bad = Window("late", kEveryDay, 8, 0, 9, 0, 2);
  bad.end_minute = 1440;
  m = MatchSchedule(Schedule("UTC", {bad}), kNow);
  ASSERT_FALSE(m);
  EXPECT_THAT(m.error().message, HasSubstr("window \"late\": minute 1440 is outside 0..1439"));

  EXPECT_FALSE(MatchSchedule(Schedule("", {}), kNow));
}

TEST(Schedule, DescribesWindows) {
  std::array<bool, 7> weekend{};
  weekend[5] = weekend[6] = true;
  std::array<bool, 7> odd{};
  odd[0] = odd[2] = odd[4] = true;
  std::array<bool, 7> mixed = {true, true, false, true, true, true, false};
  EXPECT_EQ(DescribeWindow(Window("", kWeekdays, 8, 0, 20, 0, 1)), "Mon-Fri 08:00-20:00");
  EXPECT_EQ(DescribeWindow(Window("", kEveryDay, 22, 30, 6, 5, 1)), "daily 22:30-06:05");
  EXPECT_EQ(DescribeWindow(Window("", weekend, 10, 0, 14, 0, 1)), "Sat,Sun 10:00-14:00");
  EXPECT_EQ(DescribeWindow(Window("", odd, 0, 0, 1, 0, 1)), "Mon,Wed,Fri 00:00-01:00");
  EXPECT_EQ(DescribeWindow(Window("", mixed, 0, 0, 1, 0, 1)), "Mon,Tue,Thu-Sat 00:00-01:00");
}

// ---------------------------------------------------------------------------------------------
// Scheduled policies in Evaluate

TEST(ScheduledPolicy, VerdictsInsideAndOutsideWindows) {
  const Policy p = SchedulePolicy(
      "hours", "Europe/Moscow",
      {Window("business", kWeekdays, 8, 0, 20, 0, 4), Window("peak", kWeekdays, 11, 0, 14, 0, 6)});
  struct Case {
    const char* name;
    TimePoint at;
    int current;
    VerdictKind kind;
    std::optional<int> desired;
    const char* says;
  };
  const Case cases[] = {
      {"below the floor", Utc(2026, 3, 2, 6, 0), 2, VerdictKind::kScaleUp, 4,
       "inside business Mon-Fri 08:00-20:00 Europe/Moscow: at least 4: 2 -> 4"},
      {"above the floor", Utc(2026, 3, 2, 6, 0), 5, VerdictKind::kHold, 5, "hold at 5"},
      {"overlap takes the largest", Utc(2026, 3, 2, 9, 0), 2, VerdictKind::kScaleUp, 6,
       "inside business Mon-Fri 08:00-20:00, peak Mon-Fri 11:00-14:00 Europe/Moscow: at least "
       "6"},
      {"outside", Utc(2026, 3, 7, 9, 0), 2, VerdictKind::kAbstain, std::nullopt,
       "outside every window (it is Sat 12:00 Europe/Moscow)"},
  };
  for (const Case& c : cases) {
    Decision d = Evaluate(Cluster(0, 20, {p}), {}, Input(c.current, {}, c.at));
    const Verdict& v = d.verdicts.at(0);
    EXPECT_EQ(v.kind, c.kind) << c.name << ": " << v.reason;
    EXPECT_EQ(v.desired, c.desired) << c.name;
    EXPECT_THAT(v.reason, HasSubstr(c.says)) << c.name;
    // Alone, a schedule never takes replicas away.
    EXPECT_EQ(d.desired, c.desired.value_or(c.current)) << c.name;
  }
}

TEST(ScheduledPolicy, IsAFloorUnderOtherPoliciesNotABlockOnScaleIn) {
  const ClusterPolicy cluster = Cluster(
      1, 20,
      {TargetPolicy("sessions", 30),
       SchedulePolicy("hours", "Europe/Moscow", {Window("business", kWeekdays, 8, 0, 20, 0, 4)})});
  const TimePoint monday_noon = Utc(2026, 3, 2, 9, 0);
  // 8 replicas at 18 sessions want 5: inside the window they may still go down to 5 ...
  Decision d = Evaluate(cluster, {}, Input(8, {{"sessions", Value(18, monday_noon)}}, monday_noon));
  EXPECT_EQ(d.desired, 5) << d.reason;
  EXPECT_EQ(d.reason, "sessions wants 5 (18.0 per replica < target 30.0 ±10%)");
  // ... but not below the schedule's 4.
  d = Evaluate(cluster, {}, Input(8, {{"sessions", Value(6, monday_noon)}}, monday_noon));
  EXPECT_EQ(d.desired, 4) << d.reason;
  EXPECT_THAT(d.reason, HasSubstr("hours keeps at least 4 (inside business Mon-Fri "
                                  "08:00-20:00 Europe/Moscow)"));
  // Outside the window the schedule has no say.
  const TimePoint saturday = Utc(2026, 3, 7, 9, 0);
  d = Evaluate(cluster, {}, Input(8, {{"sessions", Value(6, saturday)}}, saturday));
  EXPECT_EQ(d.desired, 2) << d.reason;
}

TEST(ScheduledPolicy, UnknownZoneAbstainsWithAReason) {
  const ClusterPolicy cluster = Cluster(
      1, 20, {SchedulePolicy("hours", "Europe/Atlantis", {Window("w", kEveryDay, 0, 0, 0, 0, 9)})});
  Decision d = Evaluate(cluster, {}, Input(2, {}));
  EXPECT_EQ(d.verdicts[0].kind, VerdictKind::kAbstain);
  EXPECT_THAT(d.verdicts[0].reason, HasSubstr("unknown time zone \"Europe/Atlantis\""));
  EXPECT_EQ(d.desired, 2);
}

}  // namespace
}  // namespace ra::policies
