// The test-support process helpers, against real processes: every other integration test
// relies on them to start and always stop components.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include "tests/support/process.h"

namespace ra::testing {
namespace {

using namespace std::chrono_literals;

TEST(ChildProcess, StopsAProcessThatIgnoresNothing) {
  auto child = ChildProcess::Start({.argv = {"sleep", "30"}});
  ASSERT_TRUE(child.has_value()) << child.error().message;
  EXPECT_TRUE(child->Running());
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(child->Stop(5s), 128 + SIGTERM);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
  EXPECT_FALSE(child->Running());
}

TEST(ChildProcess, KillsAProcessThatIgnoresSigterm) {
  auto child = ChildProcess::Start({.argv = {"sh", "-c", "trap '' TERM; sleep 30"}});
  ASSERT_TRUE(child.has_value());
  usleep(200'000);  // let the shell install its trap
  EXPECT_EQ(child->Stop(300ms), 128 + SIGKILL);
}

TEST(ChildProcess, WaitsForAListener) {
  const int port = FreePort();
  ASSERT_GT(port, 0);
  TempDir dir;
  auto child = ChildProcess::Start(
      {{"python3", "-m", "http.server", "--bind", "127.0.0.1", std::to_string(port)},
       {},
       dir.path(),
       dir.path() + "/server.log"});
  ASSERT_TRUE(child.has_value());
  auto ready = WaitForTcp("127.0.0.1", port, 20s, &*child);
  EXPECT_TRUE(ready.has_value()) << ready.error().message << ReadFile(dir.path() + "/server.log");
}

TEST(ChildProcess, ReportsAChildThatDiesBeforeListening) {
  auto child = ChildProcess::Start({.argv = {"sh", "-c", "exit 3"}});
  ASSERT_TRUE(child.has_value());
  auto ready = WaitForTcp("127.0.0.1", FreePort(), 10s, &*child);
  ASSERT_FALSE(ready.has_value());
  EXPECT_NE(ready.error().message.find("exited"), std::string::npos);
}

TEST(RunCommand, ReturnsStatusAndOutput) {
  CommandResult r = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 4"}, 10s);
  EXPECT_EQ(r.status, 4);
  EXPECT_NE(r.output.find("out"), std::string::npos);
  EXPECT_NE(r.output.find("err"), std::string::npos);
}

TEST(RunCommand, RunsAsTheUnprivilegedUser) {
  auto user = UnprivilegedUser();
  ASSERT_TRUE(user.has_value()) << user.error().message;
  if (user->empty()) GTEST_SKIP() << "not root: there is no other user to switch to";
  CommandResult r = RunCommand({"id", "-un"}, 10s, *user);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.output, *user + "\n");
}

}  // namespace
}  // namespace ra::testing
