#include "autoscaler/probe.h"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <variant>

#include "core/log.h"
#include "core/url.h"

namespace ra::autoscaler {

namespace {

// Server side bound of every probe query; the client side waits one second longer so that the
// server's own cancellation (SQLSTATE 57014) is what normally ends a slow query.
constexpr int kStatementTimeoutMs = 5000;
constexpr auto kQueryBound = std::chrono::milliseconds(kStatementTimeoutMs + 1000);
constexpr const char* kApplicationName = "replica-autoscaler";

using ConnPtr = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using PgResultPtr = std::unique_ptr<PGresult, decltype(&PQclear)>;

// libpq messages end with a newline and put hints on tab-indented lines; a probe error is one
// line in a log record or an API answer. Redact in case a future libpq ever echoes a value.
std::string CleanMessage(std::string_view raw) {
  std::string out;
  bool space = false;
  for (char c : raw) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  if (out.empty()) out = "no message from libpq";
  return log::Redact(out);
}

// Keyword/value arrays for PQconnectdbParams and PQpingParams. The strings live as long as this
// object; the pointer arrays are null-terminated as libpq expects.
class ConnParams {
 public:
  ConnParams(const config::PostgresProbe& probe, const Secret* password, const std::string& host,
             int port) {
    Add("host", host);
    Add("port", std::to_string(port));
    if (!probe.user.empty()) Add("user", probe.user);
    if (password != nullptr && !password->empty()) Add("password", password->Reveal());
    if (!probe.dbname.empty()) Add("dbname", probe.dbname);
    if (!probe.sslmode.empty()) Add("sslmode", probe.sslmode);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(probe.connect_timeout);
    // libpq takes whole seconds and reads 0 as "wait forever"; round up, never below 1.
    const int64_t seconds = std::max<int64_t>(1, (ms.count() + 999) / 1000);
    Add("connect_timeout", std::to_string(seconds));
    Add("application_name", kApplicationName);
    Add("options", fmt::format("-c statement_timeout={}", kStatementTimeoutMs));
    for (const auto& [k, v] : pairs_) {
      keys_.push_back(k.c_str());
      values_.push_back(v.c_str());
    }
    keys_.push_back(nullptr);
    values_.push_back(nullptr);
  }
  ConnParams(const ConnParams&) = delete;
  ConnParams& operator=(const ConnParams&) = delete;

  const char* const* keys() const { return keys_.data(); }
  const char* const* values() const { return values_.data(); }

 private:
  void Add(std::string key, std::string value) {
    pairs_.emplace_back(std::move(key), std::move(value));
  }
  std::vector<std::pair<std::string, std::string>> pairs_;
  std::vector<const char*> keys_;
  std::vector<const char*> values_;
};

Result<ConnPtr> Connect(const ConnParams& params) {
  // expand_dbname = 0: a dbname holding "host=..." stays a database name.
  ConnPtr conn(PQconnectdbParams(params.keys(), params.values(), 0), &PQfinish);
  if (!conn) return Fail(ErrorKind::kInternal, "libpq could not allocate a connection");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    std::string message = CleanMessage(PQerrorMessage(conn.get()));
    if (PQconnectionNeedsPassword(conn.get())) {
      return Fail(ErrorKind::kAuth,
                  "the server asks for a password and none is configured: " + std::move(message));
    }
    // The text is libpq's and may be translated; the English one is the common case.
    if (message.find("authentication failed") != std::string::npos) {
      return Fail(ErrorKind::kAuth, std::move(message));
    }
    return Fail(ErrorKind::kTransient, std::move(message));
  }
  return conn;
}

ErrorKind KindOfSqlState(const char* sqlstate) {
  const std::string_view s = sqlstate ? sqlstate : "";
  if (s == "57014") return ErrorKind::kTimeout;  // query_canceled: statement_timeout
  if (s == "42501" || s.starts_with("28")) return ErrorKind::kAuth;
  if (s.starts_with("42")) return ErrorKind::kInternal;  // a query this program got wrong
  return ErrorKind::kTransient;  // shutting down, starting up, out of resources, connection lost
}

using Row = std::vector<std::optional<std::string>>;

// Runs `sql` and returns its rows, each of `columns` values. Unlike PQexec, the wait is bounded
// even when the server stops answering after the query was sent.
Result<std::vector<Row>> QueryRows(PGconn* conn, const char* sql, int columns) {
  if (!PQsendQuery(conn, sql)) {
    return Fail(ErrorKind::kTransient, CleanMessage(PQerrorMessage(conn)));
  }
  const auto deadline = std::chrono::steady_clock::now() + kQueryBound;
  while (PQisBusy(conn)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return Fail(ErrorKind::kTimeout,
                  fmt::format("no answer to the query within {} ms", kQueryBound.count()));
    }
    pollfd pfd{PQsocket(conn), POLLIN, 0};
    const int rc = poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno != EINTR) {
      return Fail(ErrorKind::kTransient, fmt::format("poll: {}", std::strerror(errno)));
    }
    if (rc > 0 && !PQconsumeInput(conn)) {
      return Fail(ErrorKind::kTransient, CleanMessage(PQerrorMessage(conn)));
    }
  }
  PgResultPtr res(PQgetResult(conn), &PQclear);
  // A simple query can return several results; read to the end so the connection is clean.
  while (PGresult* extra = PQgetResult(conn)) PQclear(extra);
  if (!res) return Fail(ErrorKind::kTransient, CleanMessage(PQerrorMessage(conn)));
  if (PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
    return Fail(KindOfSqlState(PQresultErrorField(res.get(), PG_DIAG_SQLSTATE)),
                CleanMessage(PQresultErrorMessage(res.get())));
  }
  if (PQnfields(res.get()) != columns) {
    return Fail(ErrorKind::kParse,
                fmt::format("expected {} columns, got {}", columns, PQnfields(res.get())));
  }
  std::vector<Row> rows;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    Row& row = rows.emplace_back();
    for (int i = 0; i < columns; ++i) {
      if (PQgetisnull(res.get(), r, i)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(res.get(), r, i)));
      }
    }
  }
  return rows;
}

// Runs `sql` and returns its only row.
Result<Row> QueryRow(PGconn* conn, const char* sql, int columns) {
  auto rows = QueryRows(conn, sql, columns);
  if (!rows) return Fail(rows.error());
  if (rows->size() != 1) {
    return Fail(ErrorKind::kParse,
                fmt::format("expected 1 row of {} columns, got {} rows", columns, rows->size()));
  }
  return std::move(rows->front());
}

Result<bool> ParseBool(const std::optional<std::string>& value, std::string_view what) {
  if (value == "t") return true;
  if (value == "f") return false;
  return Fail(ErrorKind::kParse, fmt::format("{}: expected t or f, got {}", what,
                                             value ? "'" + *value + "'" : "NULL"));
}

Result<double> ParseSeconds(const std::string& text) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) {
    return Fail(ErrorKind::kParse, fmt::format("'{}' is not a number of seconds", text));
  }
  return v;
}

std::string_view PingText(PGPing ping) {
  switch (ping) {
    case PQPING_OK:
      return "accepting connections";
    case PQPING_REJECT:
      return "rejecting connections (starting up, shutting down or in crash recovery)";
    case PQPING_NO_RESPONSE:
      return "no response";
    case PQPING_NO_ATTEMPT:
      return "not attempted (libpq refused the connection parameters)";
  }
  return "unknown answer";
}

}  // namespace

Result<int64_t> ParseLsn(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return Fail(ErrorKind::kParse,
                fmt::format("'{}' is not an LSN such as 16/B374D848: {}", text, why));
  };
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return bad("no '/'");
  const std::string_view halves[2] = {text.substr(0, slash), text.substr(slash + 1)};
  uint64_t parts[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    const std::string_view h = halves[i];
    if (h.empty()) return bad(i == 0 ? "empty high half" : "empty low half");
    if (h.size() > 8) return bad("a half has more than 8 hexadecimal digits");
    for (char c : h) {
      const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!hex) return bad(fmt::format("'{}' is not a hexadecimal digit", c));
    }
    // Validated above: from_chars reads every character and cannot overflow 8 hex digits.
    std::from_chars(h.data(), h.data() + h.size(), parts[i], 16);
  }
  if (parts[0] > 0x7fffffffu) return bad("beyond the largest position this program handles");
  return static_cast<int64_t>((parts[0] << 32) | parts[1]);
}

// libpq reads "a,b" as a list of hosts to try in turn and an empty host as the local socket:
// neither is an address of one server, which is what every caller means.
Result<void> CheckProbeAddress(const std::string& host, int port) {
  if (host.empty()) return Fail(ErrorKind::kConfig, "no host to probe");
  for (unsigned char c : host) {
    if (c == ',' || c <= ' ' || c == 0x7f) {
      return Fail(ErrorKind::kConfig,
                  fmt::format("host '{}' is not one address (no commas, spaces or control "
                              "characters allowed)",
                              log::Redact(host)));
    }
  }
  if (port < 1 || port > 65535) {
    return Fail(ErrorKind::kConfig, fmt::format("port {} is outside 1..65535", port));
  }
  return {};
}

LibpqReplicaProbe::LibpqReplicaProbe(config::PostgresProbe probe, Secret password)
    : probe_(std::move(probe)), password_(std::move(password)) {}

Result<PrimaryFacts> LibpqReplicaProbe::PrimaryPosition(const std::string& host, int port) {
  if (auto ok = CheckProbeAddress(host, port); !ok) return Fail(ok.error());
  const ConnParams params(probe_, &password_, host, port);
  auto conn = Connect(params);
  if (!conn) return Fail(conn.error());
  // The WAL functions raise an error during recovery; CASE never evaluates them there. The
  // timeline is the first 8 hexadecimal digits of the current WAL file's name: the one the
  // server writes now, where pg_control_checkpoint() would lag behind until the first
  // checkpoint after a promotion.
  auto row = QueryRow(conn->get(),
                      "SELECT pg_is_in_recovery(), "
                      "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END, "
                      "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn() "
                      "END, CASE WHEN pg_is_in_recovery() THEN NULL ELSE "
                      "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END, "
                      "(SELECT system_identifier::text FROM pg_control_system())",
                      5);
  if (!row) {
    return Fail(row.error().kind,
                fmt::format("position of the primary {}:{}: {}", host, port, row.error().message));
  }
  auto in_recovery = ParseBool((*row)[0], "pg_is_in_recovery()");
  if (!in_recovery) return Fail(in_recovery.error());
  if (*in_recovery) {
    return Fail(ErrorKind::kConflict,
                fmt::format("{}:{} is in recovery: a standby, not the primary", host, port));
  }
  for (int i = 1; i < 5; ++i) {
    if (!(*row)[i]) return Fail(ErrorKind::kParse, "the primary's position has a NULL column");
  }
  PrimaryFacts facts;
  auto lsn = ParseLsn(*(*row)[1]);
  if (!lsn) return Fail(lsn.error());
  auto flush = ParseLsn(*(*row)[2]);
  if (!flush) return Fail(flush.error());
  facts.lsn = *lsn;
  facts.flush_lsn = *flush;
  const std::string& tli = *(*row)[3];
  uint64_t timeline = 0;
  const auto [end, ec] = std::from_chars(tli.data(), tli.data() + tli.size(), timeline, 16);
  if (ec != std::errc() || end != tli.data() + tli.size() || tli.size() != 8 || timeline == 0) {
    return Fail(ErrorKind::kParse, fmt::format("'{}' is not a timeline", tli));
  }
  facts.timeline = static_cast<int64_t>(timeline);
  facts.system_identifier = *(*row)[4];
  return facts;
}

ProbeResult LibpqReplicaProbe::ProbeReplica(const std::string& host, int port,
                                            int64_t primary_lsn) {
  ProbeResult r;
  if (auto ok = CheckProbeAddress(host, port); !ok) {
    r.error = ok.error().message;
    return r;
  }
  {
    // PQping never authenticates: the password stays out of it.
    const ConnParams ping_params(probe_, nullptr, host, port);
    const PGPing ping = PQpingParams(ping_params.keys(), ping_params.values(), 0);
    if (ping != PQPING_OK) {
      r.error = fmt::format("PQping {}:{}: {}", host, port, PingText(ping));
      return r;
    }
  }
  r.reachable = true;

  const ConnParams params(probe_, &password_, host, port);
  auto conn = Connect(params);
  if (!conn) {
    r.error = conn.error().message;
    return r;
  }
  // One row whether or not a WAL receiver runs (the LEFT JOIN). Its pid is visible to every
  // role, its other columns only to pg_read_all_stats (pg_monitor): pid without status means
  // the probe user may not see them. Sessions: client backends other than this service's own
  // connections (the probes run in parallel and would count each other).
  auto row = QueryRow(conn->get(),
                      "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), "
                      "extract(epoch from now() - pg_last_xact_replay_timestamp()), "
                      "pg_last_wal_receive_lsn() IS NOT NULL AND "
                      "pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn(), "
                      "(SELECT system_identifier::text FROM pg_control_system()), "
                      "w.pid IS NOT NULL, w.status, w.received_tli, "
                      "extract(epoch from now() - w.last_msg_receipt_time), "
                      "w.sender_host || ':' || w.sender_port, "
                      "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client "
                      "backend' AND pid <> pg_backend_pid() AND application_name IS DISTINCT "
                      "FROM 'replica-autoscaler') "
                      "FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver w ON true",
                      11);
  if (!row) {
    r.error = fmt::format("replay status of {}:{}: {}", host, port, row.error().message);
    return r;
  }
  auto in_recovery = ParseBool((*row)[0], "pg_is_in_recovery()");
  if (!in_recovery) {
    r.error = in_recovery.error().message;
    return r;
  }
  r.in_recovery = *in_recovery;
  if ((*row)[4]) r.system_identifier = *(*row)[4];
  if (auto sessions = (*row)[10]; sessions) {
    int64_t n = 0;
    const auto [end, ec] =
        std::from_chars(sessions->data(), sessions->data() + sessions->size(), n);
    if (ec == std::errc() && end == sessions->data() + sessions->size()) r.client_sessions = n;
  }
  if (!r.in_recovery) {
    r.error = fmt::format("{}:{} is not in recovery: a primary, not a replica", host, port);
    return r;
  }
  if ((*row)[5] == "t") {
    if (!(*row)[6]) {
      r.error = fmt::format(
          "user '{}' may not read pg_stat_wal_receiver on {}:{}: grant it "
          "pg_monitor (or pg_read_all_stats)",
          probe_.user, host, port);
      return r;
    }
    r.receiver_status = *(*row)[6];
    if ((*row)[7]) {
      int64_t tli = 0;
      const std::string& t = *(*row)[7];
      const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), tli);
      if (ec == std::errc() && end == t.data() + t.size()) r.receiver_timeline = tli;
    }
    if ((*row)[8]) {
      if (auto seconds = ParseSeconds(*(*row)[8]); seconds) {
        r.receiver_silence_seconds = std::max(0.0, *seconds);
      }
    }
    if ((*row)[9]) r.upstream = *(*row)[9];
  }
  if (!(*row)[1]) {
    r.error = "pg_last_wal_replay_lsn() is NULL: no WAL replayed yet";
    return r;
  }
  auto replay = ParseLsn(*(*row)[1]);
  if (!replay) {
    r.error = replay.error().message;
    return r;
  }
  r.replay_lsn = *replay;
  if (primary_lsn < 0) {
    r.error = "lag unknown: the primary's LSN is not known";
    return r;
  }
  r.lag_bytes = std::max<int64_t>(0, primary_lsn - *replay);
  const bool replayed_all_received = (*row)[3] && *(*row)[3] == "t";
  if (*r.lag_bytes == 0 || replayed_all_received) {
    // Nothing waits to be replayed: the time since the last replayed commit only says how long
    // the primary has been idle (its background records, e.g. running-xacts every 15 s, move
    // the LSN without a commit), so it is not lag. What was not received yet shows in bytes,
    // and a receiver that stopped shows in its own facts.
    r.lag_seconds = 0.0;
  } else if (!(*row)[2]) {
    r.error = "lag in seconds unknown: no transaction replayed since the server started";
  } else if (auto seconds = ParseSeconds(*(*row)[2]); !seconds) {
    r.error = seconds.error().message;
  } else {
    // The replica's clock against the primary's commit timestamps: skew can make it negative.
    r.lag_seconds = std::max(0.0, *seconds);
  }
  return r;
}

Result<std::map<std::string, double>> LibpqReplicaProbe::ReplicationLatencies(
    const std::string& primary_host, int primary_port) {
  const std::string& host = primary_host;
  const int port = primary_port;
  if (auto ok = CheckProbeAddress(host, port); !ok) return Fail(ok.error());
  const ConnParams params(probe_, &password_, host, port);
  auto conn = Connect(params);
  if (!conn) return Fail(conn.error());
  // write_lag is timed by the walsender alone, on the primary's clock: from sending WAL to the
  // standby's reply that it wrote it (the walreceiver replies as soon as its write position
  // moves), so it is a network round trip plus a write(2), and no clock skew enters it. The
  // standby-side alternatives (reply_time, pg_stat_wal_receiver's send and receipt times) each
  // compare two machines' clocks. The LEFT JOIN yields one row even without walsenders, so
  // pg_is_in_recovery() is always read; pid is the one walsender column every role may see, and
  // state is NULL exactly when the role may not read the others (not pg_read_all_stats).
  auto rows = QueryRows(conn->get(),
                        "SELECT r.in_recovery, s.pid IS NOT NULL, s.state IS NOT NULL, "
                        "s.application_name, extract(epoch FROM s.write_lag) "
                        "FROM (SELECT pg_is_in_recovery() AS in_recovery) r "
                        "LEFT JOIN pg_stat_replication s ON true",
                        5);
  if (!rows) {
    return Fail(rows.error().kind,
                fmt::format("pg_stat_replication on {}:{}: {}", host, port, rows.error().message));
  }
  std::map<std::string, double> latencies;
  for (const Row& row : *rows) {
    auto in_recovery = ParseBool(row[0], "pg_is_in_recovery()");
    if (!in_recovery) return Fail(in_recovery.error());
    if (*in_recovery) {
      // A cascading standby's walsenders time the hop to it, not to the primary.
      return Fail(ErrorKind::kConflict,
                  fmt::format("{}:{} is in recovery: a standby, not the primary", host, port));
    }
    if (row[1] != "t") continue;  // no walsender at all
    if (row[2] != "t") {
      return Fail(ErrorKind::kAuth,
                  fmt::format("user '{}' may not read pg_stat_replication's lag columns on "
                              "{}:{}: grant it pg_monitor (or pg_read_all_stats)",
                              probe_.user, host, port));
    }
    // NULL write_lag: nothing was sent lately (an idle primary clears the lag columns once the
    // standby has confirmed all of it twice), so there is no sample now.
    if (!row[3] || !row[4]) continue;
    auto seconds = ParseSeconds(*row[4]);
    if (!seconds) return Fail(seconds.error());
    const double value = std::max(0.0, *seconds);
    // Two walsenders under one name (a standby reconnecting while its old connection lingers):
    // the larger, so that a zone never looks nearer than one of them says.
    auto [it, inserted] = latencies.emplace(*row[3], value);
    if (!inserted) it->second = std::max(it->second, value);
  }
  return latencies;
}

// ---------------------------------------------------------------------------------------------
// primary discovery

namespace {

class StaticPrimaryLocator final : public PrimaryLocator {
 public:
  explicit StaticPrimaryLocator(config::StaticPrimary primary) : primary_(std::move(primary)) {}

  Result<PrimaryState> Locate() override {
    if (primary_.host.empty()) return Fail(ErrorKind::kConfig, "static primary has no host");
    return PrimaryState{primary_.host, primary_.port, "static"};
  }

 private:
  config::StaticPrimary primary_;
};

// The host of "scheme://[user@]host[:port][/path]", brackets of an IPv6 literal removed.
std::string UrlHost(std::string_view url) {
  const size_t scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  if (rest.starts_with('[')) {
    const size_t close = rest.find(']');
    return close == std::string_view::npos ? std::string() : std::string(rest.substr(1, close - 1));
  }
  return std::string(rest.substr(0, rest.find(':')));
}

class PatroniPrimaryLocator final : public PrimaryLocator {
 public:
  PatroniPrimaryLocator(config::PatroniPrimary patroni, int postgres_port, HttpTransport& transport)
      : patroni_(std::move(patroni)), postgres_port_(postgres_port), transport_(transport) {}

  Result<PrimaryState> Locate() override {
    if (patroni_.members.empty()) return Fail(ErrorKind::kConfig, "no Patroni members configured");
    std::vector<size_t> order;
    {
      std::lock_guard lock(mu_);
      // The last primary is the likeliest one now: ask it first, then the rest in order.
      if (last_primary_) order.push_back(*last_primary_);
    }
    for (size_t i = 0; i < patroni_.members.size(); ++i) {
      if (order.empty() || order.front() != i) order.push_back(i);
    }
    std::vector<std::string> answers;
    for (size_t i : order) {
      const std::string& member = patroni_.members[i];
      auto found = Ask(member);
      if (found.primary) {
        std::lock_guard lock(mu_);
        last_primary_ = i;
        return std::move(*found.primary);
      }
      answers.push_back(fmt::format("{}: {}", member, found.answer));
    }
    std::string joined;
    for (const std::string& a : answers) joined += (joined.empty() ? "" : "; ") + a;
    return Fail(ErrorKind::kTransient,
                log::Redact("no Patroni member answers 200 on /primary: " + joined));
  }

 private:
  struct Answer {
    std::optional<PrimaryState> primary{};
    std::string answer{};  // why not, when not
  };

  Answer Ask(const std::string& member) {
    std::string base = member;
    while (base.ends_with('/')) base.pop_back();
    HttpRequest request;
    request.method = "GET";
    request.url = base + "/primary";
    request.headers["Accept"] = "application/json";
    request.timeout = patroni_.http.total_timeout;
    auto response = transport_.Send(request);
    if (!response) return {std::nullopt, response.error().ToString()};

    const nlohmann::json body = nlohmann::json::parse(response->body, nullptr, false);
    const auto text_field = [&](const char* name) -> std::string {
      if (!body.is_object()) return "";
      auto it = body.find(name);
      return it != body.end() && it->is_string() ? it->get<std::string>() : "";
    };
    if (response->status != 200) {
      std::string detail;
      for (const char* field : {"role", "state"}) {
        const std::string v = text_field(field);
        if (!v.empty()) detail += fmt::format("{}{} {}", detail.empty() ? "" : ", ", field, v);
      }
      return {std::nullopt, fmt::format("HTTP {}{}", response->status,
                                        detail.empty() ? "" : " (" + detail + ")")};
    }
    // 200 is Patroni's word that this member is the primary, whatever the body holds.
    PrimaryState state{UrlHost(member), postgres_port_, member};
    if (const std::string host = text_field("host"); !host.empty()) {
      // It goes into libpq conninfo and into every new replica's first boot: a plain host only.
      if (!IsPlainHost(host)) {
        return {std::nullopt,
                fmt::format("HTTP 200, but its host '{}' is not a host name or address (letters, "
                            "digits and . : _ - only)",
                            log::Redact(host.substr(0, 80)))};
      }
      state.host = host;
    }
    if (body.is_object()) {
      auto port = body.find("port");
      if (port != body.end() && port->is_number_integer()) {
        const int64_t p = port->get<int64_t>();
        if (p >= 1 && p <= 65535) state.port = static_cast<int>(p);
      }
    }
    if (state.host.empty()) return {std::nullopt, "HTTP 200, but the member URL has no host"};
    return {std::move(state), ""};
  }

  config::PatroniPrimary patroni_;
  int postgres_port_;
  HttpTransport& transport_;
  std::mutex mu_;
  std::optional<size_t> last_primary_;
};

}  // namespace

std::vector<PrimaryState> PrimaryCandidates(const config::Cluster& cluster) {
  std::vector<PrimaryState> out;
  if (const auto* patroni = std::get_if<config::PatroniPrimary>(&cluster.primary)) {
    for (const std::string& member : patroni->members) {
      const std::string host = UrlHost(member);
      const bool seen = std::any_of(out.begin(), out.end(),
                                    [&](const PrimaryState& p) { return p.host == host; });
      if (!host.empty() && !seen) out.push_back(PrimaryState{host, cluster.postgres.port, member});
    }
    return out;
  }
  const auto& primary = std::get<config::StaticPrimary>(cluster.primary);
  if (!primary.host.empty()) out.push_back(PrimaryState{primary.host, primary.port, "static"});
  return out;
}

std::unique_ptr<PrimaryLocator> MakePrimaryLocator(const config::Cluster& cluster,
                                                   HttpTransport& transport) {
  if (const auto* patroni = std::get_if<config::PatroniPrimary>(&cluster.primary)) {
    return std::make_unique<PatroniPrimaryLocator>(*patroni, cluster.postgres.port, transport);
  }
  return std::make_unique<StaticPrimaryLocator>(std::get<config::StaticPrimary>(cluster.primary));
}

}  // namespace ra::autoscaler
