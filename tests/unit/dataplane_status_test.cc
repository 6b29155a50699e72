// HAProxy's stats status and check_status strings, as HAProxy 2.6 writes them (the Data Plane
// API passes them on unchanged, beyond the specification's enums).
#include <gtest/gtest.h>

#include "haproxy_dataplane/server_status.h"

namespace ra::haproxy {
namespace {

TEST(DataplaneServerStatus, ParsesWhatHaproxyWrites) {
  struct Case {
    const char* text;
    Health health;
    bool maint, drain, nolb, checked;
    int step, of;
    const char* via;
  };
  for (const Case& c : {
           Case{"UP", Health::kUp, false, false, false, true, 0, 0, ""},
           Case{"UP 1/2", Health::kUp, false, false, false, true, 1, 2, ""},
           Case{"DOWN", Health::kDown, false, false, false, true, 0, 0, ""},
           Case{"DOWN 2/3", Health::kDown, false, false, false, true, 2, 3, ""},
           Case{"NOLB", Health::kUp, false, false, true, true, 0, 0, ""},
           Case{"NOLB 1/2", Health::kUp, false, false, true, true, 1, 2, ""},
           Case{"DRAIN", Health::kUp, false, true, false, true, 0, 0, ""},
           Case{"DRAIN (agent)", Health::kUp, false, true, false, true, 0, 0, ""},
           Case{"MAINT", Health::kUnknown, true, false, false, true, 0, 0, ""},
           Case{"MAINT (via replicas/r1)", Health::kUnknown, true, false, false, true, 0, 0,
                "replicas/r1"},
           Case{"MAINT (resolution)", Health::kUnknown, true, false, false, true, 0, 0,
                "resolution"},
           Case{"no check", Health::kUp, false, false, false, false, 0, 0, ""},
       }) {
    auto got = ParseServerStatus(c.text);
    ASSERT_TRUE(got.has_value()) << c.text << ": " << got.error().message;
    EXPECT_EQ(got->health, c.health) << c.text;
    EXPECT_EQ(got->maint, c.maint) << c.text;
    EXPECT_EQ(got->drain, c.drain) << c.text;
    EXPECT_EQ(got->nolb, c.nolb) << c.text;
    EXPECT_EQ(got->health_checked, c.checked) << c.text;
    EXPECT_EQ(got->transition_step, c.step) << c.text;
    EXPECT_EQ(got->transition_of, c.of) << c.text;
    EXPECT_EQ(got->maint_via, c.via) << c.text;
    EXPECT_EQ(got->raw, c.text);
  }
}

TEST(DataplaneServerStatus, RejectsWhatHaproxyNeverWrites) {
  for (const char* text :
       {"", "up", "RUNNING", "UP x/2", "UP 1-2", "MAINT (via", "DOWN (bogus)", "UP 1/2 3/4"}) {
    auto got = ParseServerStatus(text);
    EXPECT_FALSE(got.has_value()) << text;
    if (!got) {
      EXPECT_EQ(got.error().kind, ErrorKind::kParse);
      EXPECT_NE(got.error().message.find("status"), std::string::npos) << got.error().message;
    }
  }
}

TEST(DataplaneCheckStatus, ReadsInProgressMarkAndOutcome) {
  auto timeout_running = ParseCheckStatus("* L4TOUT");
  EXPECT_TRUE(timeout_running.in_progress);
  EXPECT_EQ(timeout_running.code, "L4TOUT");
  EXPECT_TRUE(timeout_running.completed);
  EXPECT_FALSE(timeout_running.passed);

  for (const char* ok : {"L4OK", "L6OK", "L7OK", "L7OKC", "* L7OK"}) {
    EXPECT_TRUE(ParseCheckStatus(ok).passed) << ok;
  }
  for (const char* failed : {"L4CON", "L7STS", "L7RSP", "L6TOUT", "SOCKERR", "UNK"}) {
    auto check = ParseCheckStatus(failed);
    EXPECT_FALSE(check.passed) << failed;
    EXPECT_TRUE(check.completed) << failed;
  }
  auto first = ParseCheckStatus("INI");
  EXPECT_FALSE(first.completed);
  EXPECT_FALSE(first.passed);
  auto first_running = ParseCheckStatus("* INI");
  EXPECT_TRUE(first_running.in_progress);
  EXPECT_FALSE(first_running.completed);
  EXPECT_FALSE(ParseCheckStatus("").completed);
}

TEST(DataplaneAdminState, RoundTrips) {
  for (AdminState s : {AdminState::kReady, AdminState::kDrain, AdminState::kMaint}) {
    auto back = ParseAdminState(ToString(s));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, s);
  }
  auto bad = ParseAdminState("paused");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().kind, ErrorKind::kParse);
  EXPECT_NE(bad.error().message.find("paused"), std::string::npos);
}

}  // namespace
}  // namespace ra::haproxy
