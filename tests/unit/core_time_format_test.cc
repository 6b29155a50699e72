#include <gtest/gtest.h>

#include "core/time_format.h"
#include "core/url.h"

namespace ra {
namespace {

using namespace std::chrono_literals;

TEST(TimeFormat, TimestampsAsOpenStackWritesThem) {
  const TimePoint base = *ParseTimestamp("2026-11-21T04:43:40Z");
  EXPECT_EQ(*ParseTimestamp("2026-11-21T04:43:40.500000Z"), base + 500ms);
  EXPECT_EQ(*ParseTimestamp("2026-11-21T04:43:40"), base);
  EXPECT_EQ(*ParseTimestamp("2026-11-21T07:43:40+03:00"), base);
  for (const char* bad :
       {"", "2026-11-21", "2026-13-21T04:43:40Z", "2026-11-21T04:43:40 UTC", "tomorrow"}) {
    EXPECT_FALSE(ParseTimestamp(bad)) << bad;
  }
}

// Years a TimePoint cannot hold would overflow into a date in the past (a Keystone token
// "expired" at once, re-authenticating on every call): they are parse errors instead.
TEST(TimeFormat, TimestampsOutsideTheClocksRangeAreParseErrors) {
  for (const char* bad : {"9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2999-01-01T00:00:00"}) {
    auto t = ParseTimestamp(bad);
    ASSERT_FALSE(t) << bad;
    EXPECT_EQ(t.error().kind, ErrorKind::kParse);
  }
  EXPECT_TRUE(ParseTimestamp("2200-01-01T00:00:00Z"));
}

TEST(Url, EncodesAllButUnreservedCharacters) {
  EXPECT_EQ(UrlEncode("db-1_a.b~c"), "db-1_a.b~c");
  EXPECT_EQ(UrlEncode("^db\\.donor$"), "%5Edb%5C.donor%24");
  EXPECT_EQ(UrlEncode("a b/c?d=e&f"), "a%20b%2Fc%3Fd%3De%26f");
}

}  // namespace
}  // namespace ra
