// LSN parsing, primary discovery (static and Patroni, through a scripted HTTP transport), the
// probe's refusal of addresses that are not one server, and the probe fakes other tests use.

#include "autoscaler/probe.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/url.h"
#include "testing/fake_http_transport.h"
#include "testing/fake_probe.h"

namespace ra::autoscaler {
namespace {

using namespace std::chrono_literals;
using ra::testing::FakeHttpTransport;

// ---------------------------------------------------------------------------------------------
// ParseLsn

TEST(ProbeParseLsn, ReadsBothHalves) {
  struct Case {
    const char* text;
    int64_t want;
  };
  const Case cases[] = {
      {"16/B374D848", (int64_t{0x16} << 32) + 0xB374D848},
      {"0/0", 0},
      {"0/1", 1},
      {"1/0", int64_t{1} << 32},
      {"abc/def0", (int64_t{0xabc} << 32) + 0xdef0},
      {"00000016/0000000A", (int64_t{0x16} << 32) + 0xA},
      {"7FFFFFFF/FFFFFFFF", std::numeric_limits<int64_t>::max()},
  };
  for (const Case& c : cases) {
    auto lsn = ParseLsn(c.text);
    ASSERT_TRUE(lsn) << c.text << ": " << lsn.error().message;
    EXPECT_EQ(*lsn, c.want) << c.text;
  }
}

TEST(ProbeParseLsn, RefusesEverythingElse) {
  const char* bad[] = {
      "",
      "/",
      "16/",
      "/B374D848",
      "16B374D848",
      "16/B3/1",
      "1G/0",
      "0/xyz",
      "0x16/0",
      " 16/0",
      "16/0 ",
      "-1/0",
      "+1/0",
      "80000000/0",
      "FFFFFFFF/FFFFFFFF",
      "123456789/0",
      "0/123456789",
      "16\\B374D848",
      "16/B374D848\n",
  };
  for (const char* text : bad) {
    auto lsn = ParseLsn(text);
    ASSERT_FALSE(lsn) << "'" << text << "' parsed as " << *lsn;
    EXPECT_EQ(lsn.error().kind, ErrorKind::kParse) << text;
    EXPECT_NE(lsn.error().message.find("not an LSN"), std::string::npos) << lsn.error().message;
  }
}

TEST(ProbeParseLsn, SaysWhichHalfIsEmpty) {
  EXPECT_NE(ParseLsn("/1").error().message.find("empty high half"), std::string::npos);
  EXPECT_NE(ParseLsn("1/").error().message.find("empty low half"), std::string::npos);
  EXPECT_NE(ParseLsn("80000000/0").error().message.find("beyond"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// LibpqReplicaProbe: bad addresses are refused before libpq sees them (no network here)

TEST(ProbeLibpq, RefusesAddressesThatAreNotOneServer) {
  LibpqReplicaProbe probe(config::PostgresProbe{}, Secret());
  for (const auto& [host, port] :
       std::vector<std::pair<std::string, int>>{{"", 5432},
                                                {"10.0.0.1,10.0.0.2", 5432},
                                                {"10.0.0.1 port=1", 5432},
                                                {"10.0.0.1", 0},
                                                {"10.0.0.1", 65536}}) {
    auto lsn = probe.PrimaryPosition(host, port);
    ASSERT_FALSE(lsn) << host << ":" << port;
    EXPECT_EQ(lsn.error().kind, ErrorKind::kConfig) << lsn.error().message;

    const ProbeResult r = probe.ProbeReplica(host, port, 100);
    EXPECT_FALSE(r.reachable);
    EXPECT_FALSE(r.lag_bytes.has_value());
    EXPECT_FALSE(r.error.empty());

    auto latencies = probe.ReplicationLatencies(host, port);
    ASSERT_FALSE(latencies) << host << ":" << port;
    EXPECT_EQ(latencies.error().kind, ErrorKind::kConfig) << latencies.error().message;
  }
}

// ---------------------------------------------------------------------------------------------
// primary discovery

config::Cluster PatroniCluster(std::vector<std::string> members, int pg_port = 6432) {
  config::Cluster c;
  c.name = "main";
  c.postgres.port = pg_port;
  config::PatroniPrimary p;
  p.members = std::move(members);
  p.http.total_timeout = 3s;
  c.primary = p;
  return c;
}

// A /primary answer as Patroni writes it: node status, no address.
std::string PatroniStatus(const std::string& role) {
  return R"({"state": "running", "postmaster_start_time": "2024-05-01 10:00:00.000 UTC", "role": ")" +
         role +
         R"(", "server_version": 150006, "xlog": {"location": 67108864}, "timeline": 3,
            "dcs_last_seen": 1714557600, "database_system_identifier": "7363312458923374637",
            "patroni": {"version": "3.2.2", "scope": "main", "name": "pg1"}})";
}

HttpResponse Answer(int status, std::string body) { return HttpResponse{status, {}, body}; }

TEST(ProbeStaticPrimary, IsTheConfiguredOne) {
  config::Cluster c;
  c.primary = config::StaticPrimary{"10.0.0.9", 5433};
  FakeHttpTransport http;
  auto locator = MakePrimaryLocator(c, http);
  auto primary = locator->Locate();
  ASSERT_TRUE(primary) << primary.error().message;
  EXPECT_EQ(primary->host, "10.0.0.9");
  EXPECT_EQ(primary->port, 5433);
  EXPECT_EQ(primary->source, "static");
  EXPECT_TRUE(http.requests().empty());

  c.primary = config::StaticPrimary{"", 5432};
  auto empty = MakePrimaryLocator(c, http)->Locate();
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().kind, ErrorKind::kConfig);
}

TEST(ProbePatroni, LeaderIsTheSecondMember) {
  FakeHttpTransport http;
  http.Push(503, PatroniStatus("replica"));
  http.Push(200, PatroniStatus("primary"));
  auto locator = MakePrimaryLocator(
      PatroniCluster({"http://10.0.0.1:8008", "http://10.0.0.2:8008/", "http://10.0.0.3:8008"}),
      http);
  auto primary = locator->Locate();
  ASSERT_TRUE(primary) << primary.error().message;
  EXPECT_EQ(primary->host, "10.0.0.2");
  EXPECT_EQ(primary->port, 6432) << "Patroni's body has no port: postgres.port";
  EXPECT_EQ(primary->source, "http://10.0.0.2:8008/");

  const auto requests = http.requests();
  ASSERT_EQ(requests.size(), 2u) << "the third member is not asked";
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].url, "http://10.0.0.1:8008/primary");
  EXPECT_EQ(requests[1].url, "http://10.0.0.2:8008/primary");
  EXPECT_EQ(requests[1].timeout, std::optional<Duration>(3s));
  EXPECT_EQ(requests[1].headers.at("Accept"), "application/json");
}

TEST(ProbePatroni, AHostThatIsNotPlainIsNotTakenIntoConninfoOrUserData) {
  FakeHttpTransport http;
  // A hostile or broken member: its host would add options to every replica's primary_conninfo.
  http.Push(200, R"({"role": "primary", "host": "10.0.0.1 sslmode=disable' x='"})");
  http.Push(200, R"({"role": "primary", "host": "10.0.0.2", "port": 5433})");
  auto locator =
      MakePrimaryLocator(PatroniCluster({"http://10.0.0.1:8008", "http://10.0.0.2:8008"}), http);
  auto primary = locator->Locate();
  ASSERT_TRUE(primary) << primary.error().message;
  EXPECT_EQ(primary->host, "10.0.0.2");
  EXPECT_EQ(primary->port, 5433);

  http.Push(200, R"({"role": "primary", "host": "a,b"})");
  http.Push(503, PatroniStatus("replica"));
  auto none =
      MakePrimaryLocator(PatroniCluster({"http://10.0.0.1:8008", "http://10.0.0.2:8008"}), http)
          ->Locate();
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("is not a host name or address"), std::string::npos)
      << none.error().message;
  EXPECT_TRUE(IsPlainHost("pg-1.db.example.com"));
  EXPECT_TRUE(IsPlainHost("fd00::1"));
  EXPECT_FALSE(IsPlainHost(""));
  EXPECT_FALSE(IsPlainHost("h'"));
  EXPECT_FALSE(IsPlainHost(std::string(254, 'a')));
}

TEST(ProbePatroni, NoMemberAnswering200IsTransientAndListsEveryAnswer) {
  FakeHttpTransport http;
  http.Push(503, PatroniStatus("replica"));
  http.Push(Fail(ErrorKind::kTransient, "connect to 10.0.0.2:8008: Connection refused"));
  http.Push(500, "<html>Internal Server Error</html>");
  auto locator = MakePrimaryLocator(
      PatroniCluster({"http://10.0.0.1:8008", "http://10.0.0.2:8008", "http://10.0.0.3:8008"}),
      http);
  auto primary = locator->Locate();
  ASSERT_FALSE(primary);
  EXPECT_EQ(primary.error().kind, ErrorKind::kTransient);
  const std::string& m = primary.error().message;
  EXPECT_NE(m.find("http://10.0.0.1:8008: HTTP 503 (role replica, state running)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("http://10.0.0.2:8008: transient: connect to 10.0.0.2:8008: Connection refused"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("http://10.0.0.3:8008: HTTP 500"), std::string::npos) << m;
  EXPECT_EQ(http.requests().size(), 3u);
}

TEST(ProbePatroni, AReplicaAnswering503IsNotThePrimary) {
  FakeHttpTransport http;
  http.Push(503, PatroniStatus("replica"));
  auto primary = MakePrimaryLocator(PatroniCluster({"http://10.0.0.1:8008"}), http)->Locate();
  ASSERT_FALSE(primary);
  EXPECT_NE(primary.error().message.find("HTTP 503 (role replica"), std::string::npos)
      << primary.error().message;
}

TEST(ProbePatroni, AMemberThatCannotBeReachedIsSkipped) {
  FakeHttpTransport http;
  http.Push(Fail(ErrorKind::kTimeout, "connect timeout after 2000 ms"));
  http.Push(200, PatroniStatus("primary"));
  auto primary = MakePrimaryLocator(
                     PatroniCluster({"https://pg1.example:8008", "https://pg2.example:8008"}), http)
                     ->Locate();
  ASSERT_TRUE(primary) << primary.error().message;
  EXPECT_EQ(primary->host, "pg2.example");
}

TEST(ProbePatroni, FollowsAFailoverAndAsksTheLastPrimaryFirst) {
  FakeHttpTransport http;
  std::string leader = "http://10.0.0.2:8008/primary";
  http.SetResponder([&](const HttpRequest& r) -> Result<HttpResponse> {
    return r.url == leader ? Answer(200, PatroniStatus("primary"))
                           : Answer(503, PatroniStatus("replica"));
  });
  auto locator = MakePrimaryLocator(
      PatroniCluster({"http://10.0.0.1:8008", "http://10.0.0.2:8008", "http://10.0.0.3:8008"}),
      http);

  auto first = locator->Locate();
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->host, "10.0.0.2");
  EXPECT_EQ(http.requests().size(), 2u);

  auto again = locator->Locate();
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->host, "10.0.0.2");
  ASSERT_EQ(http.requests().size(), 3u) << "the last primary is asked first";
  EXPECT_EQ(http.requests()[2].url, "http://10.0.0.2:8008/primary");

  leader = "http://10.0.0.3:8008/primary";  // failover to the third member
  auto after = locator->Locate();
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(after->host, "10.0.0.3");
  const auto requests = http.requests();
  ASSERT_EQ(requests.size(), 6u);
  EXPECT_EQ(requests[3].url, "http://10.0.0.2:8008/primary");  // the old primary: 503 now
  EXPECT_EQ(requests[4].url, "http://10.0.0.1:8008/primary");
  EXPECT_EQ(requests[5].url, "http://10.0.0.3:8008/primary");
}

TEST(ProbePatroni, A200WithoutJsonStillNamesThatMember) {
  FakeHttpTransport http;
  http.Push(200, "OK");
  auto primary =
      MakePrimaryLocator(PatroniCluster({"http://[fd00::5]:8008"}, 5432), http)->Locate();
  ASSERT_TRUE(primary) << primary.error().message;
  EXPECT_EQ(primary->host, "fd00::5");
  EXPECT_EQ(primary->port, 5432);
}

TEST(ProbePatroni, HostAndPortInTheBodyWin) {
  FakeHttpTransport http;
  http.Push(200, R"({"role": "primary", "host": "10.9.9.9", "port": 5433})");
  http.Push(200, R"({"role": "primary", "host": 7, "port": 70000})");
  auto locator = MakePrimaryLocator(PatroniCluster({"http://10.0.0.1:8008"}), http);
  auto primary = locator->Locate();
  ASSERT_TRUE(primary) << primary.error().message;
  EXPECT_EQ(primary->host, "10.9.9.9");
  EXPECT_EQ(primary->port, 5433);

  auto odd = locator->Locate();  // fields of the wrong type or range are ignored
  ASSERT_TRUE(odd) << odd.error().message;
  EXPECT_EQ(odd->host, "10.0.0.1");
  EXPECT_EQ(odd->port, 6432);
}

// ---------------------------------------------------------------------------------------------
// the fakes

TEST(ProbeFakes, ReplicaProbeAnswersPerAddressAndCounts) {
  testing::FakeReplicaProbe probe;
  probe.SetPrimaryLsn("10.0.0.1", 5432, int64_t{1000});
  probe.SetProbe("10.0.0.5", 5432, testing::FakeReplicaProbe::Lagging(200, 1.5));
  probe.SetProbeResponder("10.0.0.6", 5432, [](const std::string&, int, int64_t lsn) {
    return testing::FakeReplicaProbe::Lagging(lsn - 900, 0.1);
  });

  EXPECT_EQ(probe.PrimaryPosition("10.0.0.1", 5432)->lsn, 1000);
  EXPECT_FALSE(probe.PrimaryPosition("10.0.0.1", 5433));
  EXPECT_EQ(probe.ProbeReplica("10.0.0.5", 5432, 1000).lag_bytes, 200);
  EXPECT_EQ(probe.ProbeReplica("10.0.0.6", 5432, 1000).lag_bytes, 100);
  const ProbeResult unset = probe.ProbeReplica("10.0.0.7", 5432, 1000);
  EXPECT_FALSE(unset.reachable);
  EXPECT_NE(unset.error.find("10.0.0.7:5432"), std::string::npos);

  EXPECT_EQ(probe.primary_lsn_calls("10.0.0.1", 5432), 1);
  EXPECT_EQ(probe.primary_lsn_calls(), 2);
  EXPECT_EQ(probe.probe_calls("10.0.0.5", 5432), 1);
  EXPECT_EQ(probe.probe_calls(), 3);
  EXPECT_EQ(probe.last_primary_lsn("10.0.0.6", 5432), 1000);
  EXPECT_FALSE(probe.last_primary_lsn("10.0.0.1", 5432));

  probe.Forget("10.0.0.5", 5432);
  EXPECT_FALSE(probe.ProbeReplica("10.0.0.5", 5432, 1000).reachable);
}

TEST(ProbeFakes, ReplicationLatenciesAnswerWhatWasSet) {
  testing::FakeReplicaProbe probe;
  probe.SetReplicationLatencies("10.0.0.1", 5432,
                                std::map<std::string, double>{{"orders-r1", 0.0021}});
  auto got = probe.ReplicationLatencies("10.0.0.1", 5432);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->at("orders-r1"), 0.0021);

  const auto unset = probe.ReplicationLatencies("10.0.0.2", 5432);
  ASSERT_FALSE(unset);
  EXPECT_EQ(unset.error().kind, ErrorKind::kTransient);
  EXPECT_NE(unset.error().message.find("10.0.0.2:5432"), std::string::npos);

  probe.SetReplicationLatencies("10.0.0.1", 5432, Fail(ErrorKind::kAuth, "needs pg_monitor"));
  const auto refused = probe.ReplicationLatencies("10.0.0.1", 5432);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::kAuth);
  EXPECT_EQ(probe.latency_calls("10.0.0.1", 5432), 2);

  probe.Forget("10.0.0.1", 5432);
  EXPECT_FALSE(probe.ReplicationLatencies("10.0.0.1", 5432));
  EXPECT_EQ(probe.calls().back().method, "ReplicationLatencies");
}

TEST(ProbeFakes, ReplicaProbeIsThreadSafe) {
  testing::FakeReplicaProbe probe;
  probe.SetProbe("h", 1, testing::FakeReplicaProbe::CaughtUp());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        probe.ProbeReplica("h", 1, i);
        probe.SetPrimaryLsn("p", 1, int64_t{i});
        (void)probe.PrimaryPosition("p", 1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(probe.probe_calls("h", 1), 800);
  EXPECT_EQ(probe.primary_lsn_calls(), 800);
}

TEST(ProbeFakes, PrimaryLocatorAnswersWhatWasSet) {
  testing::FakePrimaryLocator locator;
  EXPECT_FALSE(locator.Locate());
  locator.SetPrimary("10.0.0.1", 5432);
  EXPECT_EQ(locator.Locate()->host, "10.0.0.1");
  locator.Set(Fail(ErrorKind::kTransient, "no leader"));
  EXPECT_FALSE(locator.Locate());
  EXPECT_EQ(locator.calls(), 3);
}

}  // namespace
}  // namespace ra::autoscaler
