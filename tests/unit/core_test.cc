#include <gtest/gtest.h>

#include "core/duration.h"
#include "core/log.h"
#include "core/result.h"
#include "core/secret.h"

namespace ra {
namespace {

using namespace std::chrono_literals;

TEST(Duration, ParsesPrometheusStyle) {
  struct Case {
    const char* text;
    Duration want;
  };
  for (const Case& c : {Case{"250ms", 250ms}, Case{"30s", 30s}, Case{"5m", 5min},
                        Case{"1h30m", 90min}, Case{"2d", 48h}, Case{"1w", 168h}, Case{"0s", 0ms}}) {
    auto got = ParseDuration(c.text);
    ASSERT_TRUE(got.has_value()) << c.text << ": " << got.error().message;
    EXPECT_EQ(*got, c.want) << c.text;
  }
}

TEST(Duration, RejectsWhatItCannotRead) {
  for (const char* text : {"", "30", "5 m", "-5m", "m", "5x", "1.5h", "99999999999s"}) {
    auto got = ParseDuration(text);
    EXPECT_FALSE(got.has_value()) << text;
    if (!got) {
      EXPECT_EQ(got.error().kind, ErrorKind::kBadRequest);
    }
  }
}

TEST(Duration, FormatsShortest) {
  EXPECT_EQ(FormatDuration(0ms), "0s");
  EXPECT_EQ(FormatDuration(90s), "1m30s");
  EXPECT_EQ(FormatDuration(3'600'250ms), "1h250ms");
}

TEST(Time, FormatsRfc3339Utc) {
  EXPECT_EQ(FormatTime(TimePoint{} + 1'500ms), "1970-01-01T00:00:01.500Z");
}

TEST(Log, WritesJsonLinesAndRedactsSecrets) {
  log::ResetForTesting();
  std::string out;
  log::CaptureForTesting(&out);
  Secret password("hunter2-very-secret");
  log::Info("login", {{"user", "admin"},
                      {"password", "literal-in-field"},
                      {"url", "https://admin:hunter2-very-secret@host/"},
                      {"password_file", "/etc/ra/pw"}});
  auto line = nlohmann::json::parse(out);
  EXPECT_EQ(line["msg"], "login");
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["user"], "admin");
  EXPECT_EQ(line["password"], "***");
  EXPECT_EQ(line["url"], "https://admin:***@host/");
  EXPECT_EQ(line["password_file"], "/etc/ra/pw");  // a reference, not a secret
  EXPECT_EQ(out.find("hunter2"), std::string::npos);
  EXPECT_EQ(fmt::format("{}", password), "***");
  EXPECT_EQ(log::Redact("token hunter2-very-secret"), "token ***");
  log::ResetForTesting();
}

TEST(Log, EphemeralSecretsAreBoundedButPermanentOnesStay) {
  log::ResetForTesting();
  Secret password("permanent-password-value");
  for (size_t i = 0; i < log::kMaxEphemeralSecrets + 10; ++i) {
    Secret token("keystone-token-" + std::to_string(1000 + i), Secret::Ephemeral{});
  }
  EXPECT_EQ(log::Redact("permanent-password-value"), "***");
  // The newest tokens are still redacted, the oldest have been forgotten.
  EXPECT_EQ(log::Redact("keystone-token-" + std::to_string(1000 + log::kMaxEphemeralSecrets + 9)),
            "***");
  EXPECT_EQ(log::Redact("keystone-token-1000"), "keystone-token-1000");
  log::ResetForTesting();
}

TEST(Log, SurvivesInvalidUtf8) {
  log::ResetForTesting();
  std::string out;
  log::CaptureForTesting(&out);
  log::Warn("odd answer", {{"body", std::string("\xff\xfe ok")}});
  EXPECT_NE(out.find("ok"), std::string::npos);
  log::ResetForTesting();
}

// HTTP header names spell words with '-': "X-Api-Key" says api_key as much as "api_key" does.
TEST(Log, SecretNamesIgnoreHyphens) {
  EXPECT_TRUE(log::IsSecretName("X-Api-Key"));
  EXPECT_TRUE(log::IsSecretName("private-key"));
  EXPECT_TRUE(log::IsSecretName("X-Auth-Token"));
  EXPECT_FALSE(log::IsSecretName("X-Scope-OrgID"));
  EXPECT_FALSE(log::IsSecretName("token-file"));  // a reference, not a secret
  log::ResetForTesting();
  std::string out;
  log::CaptureForTesting(&out);
  log::Info("request", {{"headers", {{"X-Api-Key", "literal-key-value"}}}});
  EXPECT_EQ(out.find("literal-key-value"), std::string::npos) << out;
  log::ResetForTesting();
}

TEST(Result, ErrorKindsReadable) {
  Result<int> r = Fail(ErrorKind::kQuota, "cores exhausted");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().ToString(), "quota: cores exhausted");
  EXPECT_TRUE(IsRetryable(ErrorKind::kTransient));
  EXPECT_FALSE(IsRetryable(ErrorKind::kQuota));
}

TEST(Result, CapacityIsItsOwnKindAndNotRetried) {
  EXPECT_EQ(ToString(ErrorKind::kCapacity), "capacity");
  EXPECT_FALSE(IsRetryable(ErrorKind::kCapacity));
}

}  // namespace
}  // namespace ra
