#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "cli/client_cli.h"
#include "testing/fake_http_transport.h"
#include "testing/fake_sleeper.h"

namespace ra::autoscaler {
namespace {

// The client reads answers from whatever --api points at: a proxy, another service, a server of
// another version. An answer of an unexpected JSON shape is an error message and exit 1, never
// an exception out of nlohmann (which would end the process with std::terminate).
struct Ran {
  int code = 0;
  std::string out;
  std::string err;
};

Ran RunCommand(const std::string& command, const std::string& cluster, const std::string& body) {
  ra::testing::FakeHttpTransport transport;
  transport.SetResponder([body](const HttpRequest&) -> Result<HttpResponse> {
    return HttpResponse{200, {}, body};
  });
  ClientOptions options;
  options.command = command;
  options.cluster = cluster;
  options.api_url = "http://127.0.0.1:1";
  ClientEnvironment environment;
  environment.transport = &transport;
  environment.getenv = [](const std::string&) { return std::string(); };
  FakeClock clock;
  ra::testing::FakeSleeper sleeper(clock);
  environment.sleeper = &sleeper;
  std::ostringstream out;
  std::ostringstream err;
  Ran ran;
  ran.code = RunClient(options, out, err, environment);
  ran.out = out.str();
  ran.err = err.str();
  return ran;
}

TEST(ClientCliAnswers, StatusOfAnArrayIsAnErrorNotACrash) {
  const Ran ran = RunCommand("status", "", "[1, 2]");
  EXPECT_EQ(ran.code, 1);
  EXPECT_NE(ran.err.find("JSON object"), std::string::npos) << ran.err;
}

TEST(ClientCliAnswers, EventsOfAStringIsAnErrorNotACrash) {
  const Ran ran = RunCommand("events", "", "\"hello\"");
  EXPECT_EQ(ran.code, 1);
  EXPECT_NE(ran.err.find("JSON object"), std::string::npos) << ran.err;
}

TEST(ClientCliAnswers, StatusWithOddlyTypedFieldsPrintsWhatItCan) {
  // A cluster that is not an object, and one whose flags and counts are strings.
  const Ran ran = RunCommand(
      "status", "", R"({"clusters": [42, {"name": "pg", "paused": "yes", "desired": "2"}]})");
  EXPECT_EQ(ran.code, 0) << ran.err;
  EXPECT_NE(ran.out.find("pg"), std::string::npos) << ran.out;
}

}  // namespace
}  // namespace ra::autoscaler
