#include "autoscaler/journal.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/log.h"

namespace ra::autoscaler {
namespace {

namespace fs = std::filesystem;

// Unit tests do not link the integration support library; this is the same idea as
// ra::testing::TempDir: a fresh folder under $TMPDIR, removed at the end.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/ra-journal-XXXXXX";
    char* made = mkdtemp(pattern.data());
    if (made != nullptr) path_ = made;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TimePoint At(int64_t ms) { return TimePoint{} + std::chrono::milliseconds(ms); }

Event MakeEvent(std::string cluster, std::string message, int64_t ms = 0) {
  Event e;
  e.at = At(ms);
  e.cluster = std::move(cluster);
  e.type = "decision";
  e.message = std::move(message);
  return e;
}

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    log::ResetForTesting();
    log::CaptureForTesting(&log_);
  }
  void TearDown() override { log::ResetForTesting(); }

  ScratchDir dir_;
  std::string log_;
};

TEST_F(JournalTest, ToJsonLeavesOutEmptyFieldsAndFormatsTimeWithMilliseconds) {
  Event e;
  e.at = At(1'779'335'020'123);  // 2026-05-21T03:43:40.123Z
  e.cluster = "orders";
  e.type = "action_failed";
  e.action = "create_volume";
  e.result = "quota";
  e.message = "volume quota exhausted";
  e.details = {{"zone", "az1"}};
  const nlohmann::json j = ToJson(e);
  EXPECT_EQ(j["at"], "2026-05-21T03:43:40.123Z");
  EXPECT_EQ(j["cluster"], "orders");
  EXPECT_EQ(j["action"], "create_volume");
  EXPECT_EQ(j["details"]["zone"], "az1");
  EXPECT_FALSE(j.contains("replica"));

  Event bare;
  bare.type = "service_started";
  const nlohmann::json b = ToJson(bare);
  EXPECT_EQ(b["at"], "1970-01-01T00:00:00.000Z");
  EXPECT_FALSE(b.contains("cluster"));
  EXPECT_FALSE(b.contains("message"));
  EXPECT_FALSE(b.contains("details"));
}

TEST_F(JournalTest, WritesOneJsonObjectPerLineAndCreatesTheFolder) {
  const std::string path = dir_.path() + "/deep/er/events.jsonl";
  EventJournal journal({path, 1 << 20, 3});
  journal.Append(MakeEvent("a", "first", 1));
  journal.Append(MakeEvent("b", "second", 2));
  const auto lines = Lines(path);
  ASSERT_EQ(lines.size(), 2u);
  const auto first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["message"], "first");
  EXPECT_EQ(first["at"], "1970-01-01T00:00:00.001Z");
  EXPECT_EQ(nlohmann::json::parse(lines[1])["cluster"], "b");
}

TEST_F(JournalTest, RotatesInOrderAndKeepsOnlyKeepFiles) {
  const std::string path = dir_.path() + "/events.jsonl";
  const size_t line_size = ToJson(MakeEvent("c", "event-0")).dump().size() + 1;
  // Room for exactly two lines per file.
  EventJournal journal({path, static_cast<int64_t>(2 * line_size), 2});
  for (int i = 0; i < 7; ++i) journal.Append(MakeEvent("c", "event-" + std::to_string(i)));

  // 7 events, 2 per file: [0 1] [2 3] [4 5] [6]; keep 2 rotated files, so [0 1] is gone.
  const auto message = [](const std::string& line) {
    return nlohmann::json::parse(line)["message"].get<std::string>();
  };
  const auto current = Lines(path);
  ASSERT_EQ(current.size(), 1u);
  EXPECT_EQ(message(current[0]), "event-6");
  const auto one = Lines(path + ".1");
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(message(one[0]), "event-4");
  EXPECT_EQ(message(one[1]), "event-5");
  const auto two = Lines(path + ".2");
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(message(two[0]), "event-2");
  EXPECT_FALSE(fs::exists(path + ".3"));
  for (const std::string& p : {path, path + ".1", path + ".2"}) {
    EXPECT_LE(fs::file_size(p), 2 * line_size) << p;
  }
}

TEST_F(JournalTest, ReopeningAnExistingFileContinuesItsSize) {
  const std::string path = dir_.path() + "/events.jsonl";
  const size_t line_size = ToJson(MakeEvent("c", "event-0")).dump().size() + 1;
  const config::JournalConfig config{path, static_cast<int64_t>(2 * line_size), 3};
  {
    EventJournal journal(config);
    journal.Append(MakeEvent("c", "event-0"));
  }
  {
    EventJournal journal(config);
    journal.Append(MakeEvent("c", "event-1"));  // fits: the file now holds two lines
    EXPECT_FALSE(fs::exists(path + ".1"));
    journal.Append(MakeEvent("c", "event-2"));  // would be a third: rotates
  }
  EXPECT_EQ(Lines(path + ".1").size(), 2u);
  const auto current = Lines(path);
  ASSERT_EQ(current.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(current[0])["message"], "event-2");
}

TEST_F(JournalTest, UnwritablePathKeepsEventsInMemoryAndReportsOnce) {
  // A regular file where the folder should be: the folder can never be created, even as root.
  const std::string blocker = dir_.path() + "/not-a-folder";
  std::ofstream(blocker) << "x";
  EventJournal journal({blocker + "/events.jsonl", 1 << 20, 3});
  for (int i = 0; i < 3; ++i) journal.Append(MakeEvent("c", "event-" + std::to_string(i)));

  const auto events = journal.Recent("", 10);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].message, "event-2");
  size_t reports = 0;
  for (size_t pos = log_.find("cannot write its file"); pos != std::string::npos;
       pos = log_.find("cannot write its file", pos + 1)) {
    ++reports;
  }
  EXPECT_EQ(reports, 1u) << log_;
  EXPECT_NE(log_.find("not-a-folder"), std::string::npos) << log_;
}

TEST_F(JournalTest, MemoryOnlyWithoutPath) {
  EventJournal journal({"", 1 << 20, 3});
  journal.Append(MakeEvent("c", "kept"));
  ASSERT_EQ(journal.Recent("", 10).size(), 1u);
  EXPECT_TRUE(log_.empty()) << log_;
}

TEST_F(JournalTest, RegisteredSecretsAreRedactedInFileAndMemory) {
  log::RegisterSecret("s3cr3t-token-value");
  const std::string path = dir_.path() + "/events.jsonl";
  EventJournal journal({path, 1 << 20, 3});
  Event e = MakeEvent("c", "auth failed with s3cr3t-token-value against keystone");
  e.details = {{"password", "hunter22"}, {"url", "https://x/?t=s3cr3t-token-value"}, {"n", 3}};
  journal.Append(e);

  const std::string file = Lines(path).at(0);
  EXPECT_EQ(file.find("s3cr3t-token-value"), std::string::npos) << file;
  EXPECT_EQ(file.find("hunter22"), std::string::npos) << file;
  EXPECT_NE(file.find("auth failed with *** against keystone"), std::string::npos) << file;

  const auto kept = journal.Recent("", 1).at(0);
  EXPECT_EQ(kept.message, "auth failed with *** against keystone");
  EXPECT_EQ(kept.details["password"], "***");
  EXPECT_EQ(kept.details["url"], "https://x/?t=***");
  EXPECT_EQ(kept.details["n"], 3);
}

TEST_F(JournalTest, RecentFiltersByClusterLimitAndSinceNewestLast) {
  EventJournal journal({"", 1 << 20, 3}, /*memory_limit=*/4);
  journal.Append(MakeEvent("a", "a0", 10));
  journal.Append(MakeEvent("b", "b1", 20));
  journal.Append(MakeEvent("a", "a2", 30));
  journal.Append(MakeEvent("a", "a3", 40));
  journal.Append(MakeEvent("b", "b4", 50));  // evicts a0

  const auto all = journal.Recent("", 100);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all.front().message, "b1");
  EXPECT_EQ(all.back().message, "b4");

  const auto a = journal.Recent("a", 100);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].message, "a2");
  EXPECT_EQ(a[1].message, "a3");

  const auto newest_two = journal.Recent("", 2);
  ASSERT_EQ(newest_two.size(), 2u);
  EXPECT_EQ(newest_two[0].message, "a3");
  EXPECT_EQ(newest_two[1].message, "b4");

  const auto since = journal.Recent("", 100, At(30));
  ASSERT_EQ(since.size(), 3u);
  EXPECT_EQ(since[0].message, "a2");

  EXPECT_TRUE(journal.Recent("none", 100).empty());
  EXPECT_TRUE(journal.Recent("", 0).empty());
}

TEST_F(JournalTest, InvalidUtf8MessageDoesNotThrow) {
  const std::string path = dir_.path() + "/events.jsonl";
  EventJournal journal({path, 1 << 20, 3});
  journal.Append(MakeEvent("c", std::string("bad \xff byte")));
  const auto lines = Lines(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NO_THROW(nlohmann::json::parse(lines[0]));
}

}  // namespace
}  // namespace ra::autoscaler
