// LibpqReplicaProbe against a real PostgreSQL 15 primary and streaming standby on loopback:
// the primary's LSN, a standby's replay lag in bytes and seconds while its replay is paused and
// after it resumes, a standby refused as primary, the standby's replication round trip
// (write_lag) seen from the primary while it commits, and addresses where nothing (or nothing
// that answers) listens, each returned within the connect timeout.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "autoscaler/probe.h"
#include "tests/integration/openstack_harness.h"

namespace ra::autoscaler {
namespace {

using namespace std::chrono_literals;
using ra::testing::Eventually;
using ra::testing::PostgresPair;
using ra::testing::QueryOne;
using ra::testing::TempDir;

// 127.0.60-79.x, per test process, so that concurrent runs do not collide (other tests take
// 127.0.42, 127.0.99, 127.0.100 and 127.0.150-189).
int Octet() { return 60 + static_cast<int>(getpid() % 20); }

std::string Conninfo(const std::string& host) {
  return "host=" + host + " port=5432 user=postgres dbname=postgres connect_timeout=5";
}

config::PostgresProbe ProbeConfig(Duration connect_timeout) {
  config::PostgresProbe p;
  p.user = "postgres";
  p.dbname = "postgres";
  p.sslmode = "disable";
  p.connect_timeout = connect_timeout;
  return p;
}

// The primary's LSN alone, from PrimaryPosition.
Result<int64_t> LsnOf(LibpqReplicaProbe& probe, const std::string& host, int port) {
  auto facts = probe.PrimaryPosition(host, port);
  if (!facts) return Fail(facts.error());
  return facts->lsn;
}

std::string Describe(const ProbeResult& r) {
  return "reachable=" + std::to_string(r.reachable) +
         " in_recovery=" + std::to_string(r.in_recovery) +
         " lag_bytes=" + (r.lag_bytes ? std::to_string(*r.lag_bytes) : "?") +
         " lag_seconds=" + (r.lag_seconds ? std::to_string(*r.lag_seconds) : "?") +
         " receiver=" + r.receiver_status +
         " tli=" + (r.receiver_timeline ? std::to_string(*r.receiver_timeline) : "?") +
         " sessions=" + (r.client_sessions ? std::to_string(*r.client_sessions) : "?") +
         " error=" + r.error;
}

TEST(ProbeItest, PrimaryLsnAndStandbyLagThroughPausedReplay) {
  auto user = ra::testing::UnprivilegedUser();
  ASSERT_TRUE(user) << user.error().message;
  TempDir dir("ra-probe-itest");
  auto pg = PostgresPair::Start(dir.path(), Octet());
  ASSERT_TRUE(pg) << pg.error().message;
  const std::string primary = (*pg)->primary_host();
  const std::string standby = (*pg)->donor_host();
  LibpqReplicaProbe probe(ProbeConfig(3s), Secret("probe-itest-password"));

  // The primary's LSN, as PostgreSQL itself prints it a moment later.
  auto lsn = LsnOf(probe, primary, 5432);
  ASSERT_TRUE(lsn) << lsn.error().ToString();
  EXPECT_GT(*lsn, 0);
  auto printed = QueryOne(Conninfo(primary), "SELECT pg_current_wal_lsn()");
  ASSERT_TRUE(printed) << printed.error().message;
  auto later = ParseLsn(*printed);
  ASSERT_TRUE(later) << later.error().message;
  EXPECT_LE(*lsn, *later);
  EXPECT_GT(*lsn + (int64_t{1} << 20), *later) << "nothing wrote 1 MiB in between";

  // The probe says who it is.
  // Every probe connection is closed (a backend leaves pg_stat_activity shortly after).
  EXPECT_TRUE(Eventually(
      [&] {
        auto n = QueryOne(Conninfo(primary),
                          "SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                          "'client backend' AND pid <> pg_backend_pid()");
        return n && *n == "0";
      },
      10s));

  // A standby is not a primary.
  auto refused = LsnOf(probe, standby, 5432);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::kConflict) << refused.error().message;
  EXPECT_NE(refused.error().message.find("in recovery"), std::string::npos);

  // A transaction the standby replays, so that it has a last replayed commit time.
  ASSERT_TRUE(QueryOne(Conninfo(primary), "CREATE TABLE probe_fill (g int, pad text)"));
  // pg_current_wal_lsn() is the primary's write position, which can trail a commit made with
  // synchronous_commit = off (as these test servers run): wait for the commit itself.
  ASSERT_TRUE(Eventually(
      [&] {
        auto replayed =
            QueryOne(Conninfo(standby), "SELECT pg_last_xact_replay_timestamp() IS NOT NULL");
        return replayed && *replayed == "t";
      },
      60s));
  ProbeResult r;
  const auto caught_up = [&] {
    auto now_lsn = LsnOf(probe, primary, 5432);
    if (!now_lsn) return false;
    r = probe.ProbeReplica(standby, 5432, *now_lsn);
    return r.lag_bytes == 0;
  };
  ASSERT_TRUE(Eventually(caught_up, 60s)) << Describe(r);
  EXPECT_TRUE(r.reachable);
  EXPECT_TRUE(r.in_recovery);
  EXPECT_EQ(r.lag_seconds, 0.0) << "caught up on bytes means 0 seconds";
  EXPECT_TRUE(r.error.empty()) << r.error;

  // Replay paused on the standby while the primary writes about 26 MB.
  ASSERT_TRUE(QueryOne(Conninfo(standby), "SELECT pg_wal_replay_pause()"));
  ASSERT_TRUE(Eventually(
      [&] {
        auto state = QueryOne(Conninfo(standby), "SELECT pg_get_wal_replay_pause_state()");
        return state && *state == "paused";
      },
      30s));
  std::this_thread::sleep_for(50ms);  // so that "seconds since the last replayed commit" > 0
  ASSERT_TRUE(QueryOne(Conninfo(primary),
                       "INSERT INTO probe_fill SELECT g, repeat(md5(g::text), 32) "
                       "FROM generate_series(1, 25000) g"));
  auto written = LsnOf(probe, primary, 5432);
  ASSERT_TRUE(written) << written.error().ToString();
  // Lag in seconds counts only WAL received and waiting to be replayed (a replica that has
  // replayed all it received reads 0 s; the bytes still show what it has not received): wait
  // until the standby has received what was written.
  ASSERT_TRUE(Eventually(
      [&] {
        auto received = QueryOne(Conninfo(standby), "SELECT pg_last_wal_receive_lsn()");
        if (!received) return false;
        auto position = ParseLsn(*received);
        return position && *position >= *written;
      },
      30s));
  r = probe.ProbeReplica(standby, 5432, *written);
  EXPECT_TRUE(r.reachable) << Describe(r);
  EXPECT_TRUE(r.in_recovery) << Describe(r);
  ASSERT_TRUE(r.lag_bytes) << Describe(r);
  EXPECT_GT(*r.lag_bytes, int64_t{16} << 20) << Describe(r);
  EXPECT_LT(*r.lag_bytes, *written - *lsn + 1) << Describe(r);
  ASSERT_TRUE(r.lag_seconds) << Describe(r);
  EXPECT_GT(*r.lag_seconds, 0.0) << Describe(r);
  EXPECT_LT(*r.lag_seconds, 600.0) << Describe(r);

  // The replica's replay position never reads as ahead of a primary LSN taken earlier.
  const ProbeResult stale = probe.ProbeReplica(standby, 5432, 0);
  EXPECT_EQ(stale.lag_bytes, 0) << Describe(stale);

  // Resumed: back to 0 within a bounded wait.
  ASSERT_TRUE(QueryOne(Conninfo(standby), "SELECT pg_wal_replay_resume()"));
  ASSERT_TRUE(Eventually(caught_up, 60s)) << Describe(r);
  EXPECT_EQ(r.lag_seconds, 0.0) << Describe(r);

  // The primary probed as a replica: reachable, not in recovery, lag unknown and said why.
  const ProbeResult as_replica = probe.ProbeReplica(primary, 5432, *written);
  EXPECT_TRUE(as_replica.reachable);
  EXPECT_FALSE(as_replica.in_recovery);
  EXPECT_FALSE(as_replica.lag_bytes.has_value());
  EXPECT_NE(as_replica.error.find("not in recovery"), std::string::npos) << as_replica.error;

  // The caller does not know the primary's LSN: reachable, lag unknown.
  const ProbeResult unknown = probe.ProbeReplica(standby, 5432, -1);
  EXPECT_TRUE(unknown.reachable);
  EXPECT_TRUE(unknown.in_recovery);
  EXPECT_FALSE(unknown.lag_bytes.has_value());
  EXPECT_FALSE(unknown.error.empty());
}

// The facts the gate judges, from a real standby: its system identifier is the primary's, its
// WAL receiver streams the primary's timeline; a client session on it counts (the probe's own
// connection does not); and with primary_conninfo emptied and reloaded the receiver is gone,
// which "replayed everything it received" alone would never show.
TEST(ProbeItest, ReceiverIdentityAndSessionsOfARealStandby) {
  auto user = ra::testing::UnprivilegedUser();
  ASSERT_TRUE(user) << user.error().message;
  TempDir dir("ra-probe-itest-receiver");
  auto pg = PostgresPair::Start(dir.path(), Octet());
  ASSERT_TRUE(pg) << pg.error().message;
  const std::string primary = (*pg)->primary_host();
  const std::string standby = (*pg)->donor_host();
  LibpqReplicaProbe probe(ProbeConfig(3s), Secret());

  auto facts = probe.PrimaryPosition(primary, 5432);
  ASSERT_TRUE(facts) << facts.error().ToString();
  EXPECT_EQ(facts->timeline, 1);
  EXPECT_LE(facts->flush_lsn, facts->lsn);
  EXPECT_GT(facts->flush_lsn, 0);
  ASSERT_FALSE(facts->system_identifier.empty());

  ProbeResult r;
  ASSERT_TRUE(Eventually(
      [&] {
        r = probe.ProbeReplica(standby, 5432, facts->lsn);
        return r.receiver_status == "streaming";
      },
      30s))
      << Describe(r);
  EXPECT_EQ(r.system_identifier, facts->system_identifier);
  EXPECT_EQ(r.receiver_timeline, facts->timeline) << Describe(r);
  ASSERT_TRUE(r.receiver_silence_seconds) << Describe(r);
  EXPECT_LT(*r.receiver_silence_seconds, 120.0);
  EXPECT_NE(r.upstream.find(primary), std::string::npos) << r.upstream;
  ASSERT_TRUE(r.replay_lsn);
  EXPECT_EQ(r.client_sessions, 0) << Describe(r);

  // A client session on the standby counts; closing it brings the count back.
  {
    std::unique_ptr<PGconn, decltype(&PQfinish)> session(PQconnectdb(Conninfo(standby).c_str()),
                                                         &PQfinish);
    ASSERT_EQ(PQstatus(session.get()), CONNECTION_OK) << PQerrorMessage(session.get());
    r = probe.ProbeReplica(standby, 5432, facts->lsn);
    EXPECT_EQ(r.client_sessions, 1) << Describe(r);
  }
  ASSERT_TRUE(Eventually(
      [&] {
        r = probe.ProbeReplica(standby, 5432, facts->lsn);
        return r.client_sessions == 0;
      },
      10s))
      << Describe(r);

  // The WAL receiver stopped by hand: no receiver, though everything received is replayed.
  ASSERT_TRUE(QueryOne(Conninfo(standby), "ALTER SYSTEM SET primary_conninfo = ''"));
  ASSERT_TRUE(QueryOne(Conninfo(standby), "SELECT pg_reload_conf()"));
  ASSERT_TRUE(Eventually(
      [&] {
        r = probe.ProbeReplica(standby, 5432, facts->lsn);
        return r.receiver_status.empty();
      },
      30s))
      << Describe(r);
  EXPECT_TRUE(r.reachable);
  EXPECT_FALSE(r.receiver_timeline.has_value());
}

std::string Describe(const Result<std::map<std::string, double>>& r) {
  if (!r) return r.error().ToString();
  std::string out = "{";
  for (const auto& [name, seconds] : *r) out += " " + name + "=" + std::to_string(seconds);
  return out + " }";
}

// The standby streams as application_name "donor"; the primary times the round trip of its
// writes (pg_stat_replication.write_lag) while the primary commits.
TEST(ProbeItest, ReplicationLatencyOfTheStandbyWhileThePrimaryWrites) {
  auto user = ra::testing::UnprivilegedUser();
  ASSERT_TRUE(user) << user.error().message;
  TempDir dir("ra-probe-itest");
  auto pg = PostgresPair::Start(dir.path(), Octet());
  ASSERT_TRUE(pg) << pg.error().message;
  const std::string primary = (*pg)->primary_host();
  const std::string standby = (*pg)->donor_host();
  LibpqReplicaProbe probe(ProbeConfig(3s), Secret("probe-itest-password"));

  ASSERT_TRUE(QueryOne(Conninfo(primary), "CREATE TABLE latency_fill (g int)"));
  Result<std::map<std::string, double>> latencies = std::map<std::string, double>{};
  int commits = 0;
  // A commit, then a look: write_lag appears once the standby has replied to WAL sent after it
  // connected, and is cleared again only after an idle spell, which commits here prevent.
  ASSERT_TRUE(Eventually(
      [&] {
        if (!QueryOne(Conninfo(primary),
                      "INSERT INTO latency_fill VALUES (" + std::to_string(++commits) + ")")) {
          return false;
        }
        latencies = probe.ReplicationLatencies(primary, 5432);
        return latencies && latencies->contains("donor");
      },
      60s))
      << Describe(latencies);
  const double seconds = latencies->at("donor");
  EXPECT_GE(seconds, 0.0) << Describe(latencies);
  EXPECT_LT(seconds, 1.0) << "a loopback round trip" << Describe(latencies);
  RecordProperty("write_lag_seconds", std::to_string(seconds));
  // Only walsenders are listed: not the probe's own connection nor the test's.
  EXPECT_EQ(latencies->size(), 1u) << Describe(latencies);

  // A standby's walsenders (cascading replication) do not time the hop to the primary.
  auto refused = probe.ReplicationLatencies(standby, 5432);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::kConflict) << refused.error().message;
}

TEST(ProbeItest, NothingListeningIsUnreachableAtOnce) {
  const std::string host = "127.0." + std::to_string(Octet()) + ".3";
  LibpqReplicaProbe probe(ProbeConfig(2s), Secret("probe-itest-password"));

  const auto start = std::chrono::steady_clock::now();
  const ProbeResult r = probe.ProbeReplica(host, 5432, 100);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(r.reachable);
  EXPECT_FALSE(r.lag_bytes.has_value());
  EXPECT_NE(r.error.find("no response"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find(host), std::string::npos) << r.error;
  EXPECT_LT(elapsed, 2s);

  auto latencies = probe.ReplicationLatencies(host, 5432);
  ASSERT_FALSE(latencies);
  EXPECT_EQ(latencies.error().kind, ErrorKind::kTransient) << latencies.error().message;

  auto lsn = LsnOf(probe, host, 5432);
  ASSERT_FALSE(lsn);
  EXPECT_EQ(lsn.error().kind, ErrorKind::kTransient);
  EXPECT_NE(lsn.error().message.find("refused"), std::string::npos) << lsn.error().message;
  EXPECT_EQ(lsn.error().message.find("probe-itest-password"), std::string::npos);
  EXPECT_EQ(lsn.error().message.find('\n'), std::string::npos) << "one line";
}

// A socket that accepts TCP connections into its backlog and never answers: libpq's connect
// timeout is what ends the wait.
TEST(ProbeItest, ASilentServerIsUnreachableWithinTheConnectTimeout) {
  const std::string host = "127.0." + std::to_string(Octet()) + ".4";
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  ASSERT_EQ(inet_pton(AF_INET, host.c_str(), &addr.sin_addr), 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  LibpqReplicaProbe probe(ProbeConfig(2s), Secret());
  auto start = std::chrono::steady_clock::now();
  const ProbeResult r = probe.ProbeReplica(host, port, 100);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(r.reachable);
  EXPECT_FALSE(r.error.empty());
  EXPECT_GE(elapsed, 1500ms) << "it waited for an answer";
  EXPECT_LT(elapsed, 4s) << "the connect timeout (2s) bounds the wait";

  start = std::chrono::steady_clock::now();
  auto lsn = LsnOf(probe, host, port);
  elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(lsn);
  EXPECT_EQ(lsn.error().kind, ErrorKind::kTransient) << lsn.error().message;
  EXPECT_NE(lsn.error().message.find("timeout"), std::string::npos) << lsn.error().message;
  EXPECT_LT(elapsed, 4s);
  close(fd);
}

}  // namespace
}  // namespace ra::autoscaler
