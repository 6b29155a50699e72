#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "autoscaler/reconcile.h"
#include "config/config.h"
#include "core/http_transport.h"
#include "core/result.h"
#include "core/secret.h"

/// PostgreSQL as the loop sees it: replica probes through libpq and the current primary.
namespace ra::autoscaler {

/// Where the primary is.
struct PrimaryState {
  std::string host{};
  int port = 5432;
  /// Who said so, for logs: "static", or the Patroni member URL that answered 200.
  std::string source{};
};

/// Probes PostgreSQL servers. Implementations are thread-safe; every call blocks for at most the
/// configured connect timeout (once for PQping, once for the connection) plus one short query,
/// and opens (and closes) its own connection. Every call is read-only, so repeating it is safe.
class ReplicaProbe {
 public:
  virtual ~ReplicaProbe() = default;

  /// The primary's position and identity in one query: pg_current_wal_lsn(),
  /// pg_current_wal_flush_lsn(), the timeline it writes and its system identifier. kTransient
  /// when it does not answer (kAuth when it wants a password it was not given, kTimeout when the
  /// query outlived its bound), kConflict when the server is in recovery (not a primary), kParse
  /// on a value that cannot be read, kConfig for an empty host, a host list ("a,b") or a port
  /// outside 1..65535. Read-only.
  virtual Result<PrimaryFacts> PrimaryPosition(const std::string& host, int port) = 0;

  /// PQping on host:port, then, when it answers PQPING_OK, one query of the replica's recovery
  /// state, replay position and time, system identifier, WAL receiver (pg_stat_wal_receiver:
  /// the probe user needs pg_monitor or pg_read_all_stats to see more than its pid) and client
  /// sessions. Never fails:
  ///  - reachable is true exactly when PQping said PQPING_OK; otherwise `error` says why and
  ///    nothing else is set (a server that is starting up is not reachable);
  ///  - reachable but the connection or the query failed: `error` says why, lags unknown;
  ///  - not in recovery (a primary, or a promoted replica): in_recovery=false, lags unknown,
  ///    `error` says so;
  ///  - `primary_lsn` < 0 means the caller does not know it: lags unknown, `error` says so
  ///    (the other facts are still read);
  ///  - otherwise lag_bytes = max(0, primary_lsn - replay LSN); lag_seconds = 0 when lag_bytes
  ///    is 0 or the replica has replayed everything it received (an idle primary's background
  ///    records move its LSN without a commit, so the time since the last commit is not lag),
  ///    else max(0, seconds since the last replayed transaction's commit), or unknown
  ///    (with `error`) when no transaction has been replayed since the server started. Whether
  ///    it still receives is the WAL receiver's facts, judged by DerivePhases: "everything
  ///    received is replayed" says nothing about a receiver that stopped.
  /// The caller reads `primary_lsn` before probing, so a replica that replayed past it in the
  /// meantime shows 0 rather than a negative lag. Errors never contain the password. Read-only.
  virtual ProbeResult ProbeReplica(const std::string& host, int port, int64_t primary_lsn) = 0;

  /// Round trip from the primary at primary_host:primary_port to each standby streaming from it,
  /// as the primary's pg_stat_replication.write_lag: application_name -> seconds (>= 0), only
  /// for walsenders with a value. The walsender times it alone, on the primary's clock (WAL sent
  /// to the standby's reply that it wrote it), so it is the network round trip plus one write,
  /// independent of clock skew. PostgreSQL clears it (no entry then) once an idle primary's
  /// standbys have confirmed everything; a primary with regular commits keeps it current.
  /// Replicas built by the service stream as application_name = their server name (user_data,
  /// written into primary_conninfo by the first-boot script). When several walsenders share a
  /// name, the larger value. kConflict when the server is in recovery (a cascading standby times
  /// its own hop, not the primary's), kAuth when the probe user may not read the lag columns
  /// (it needs pg_monitor or pg_read_all_stats) or is refused, kTransient when the primary does
  /// not answer, kTimeout when the query outlived its bound, kParse on a value that is not a
  /// number, kConfig for an address ProbeReplica would refuse. Read-only; blocks like the others.
  virtual Result<std::map<std::string, double>> ReplicationLatencies(
      const std::string& primary_host, int primary_port) = 0;
};

/// libpq. Connection parameters are keyword/value arrays (PQconnectdbParams, expand_dbname=0),
/// so no value is ever parsed as connection-string syntax; the password never appears in an
/// error. Each connection says application_name=replica-autoscaler and runs with
/// statement_timeout=5s; the query is also bounded on the client side (statement timeout plus
/// one second), so a server that stops answering mid-query cannot hold a caller for longer.
class LibpqReplicaProbe final : public ReplicaProbe {
 public:
  /// `probe` gives user, dbname, sslmode, connect_timeout (rounded up to whole seconds, at least
  /// 1, as libpq takes it); `password` may be empty (trust, .pgpass or certificates then).
  LibpqReplicaProbe(config::PostgresProbe probe, Secret password);
  Result<PrimaryFacts> PrimaryPosition(const std::string& host, int port) override;
  ProbeResult ProbeReplica(const std::string& host, int port, int64_t primary_lsn) override;
  Result<std::map<std::string, double>> ReplicationLatencies(const std::string& primary_host,
                                                             int primary_port) override;

 private:
  config::PostgresProbe probe_;
  Secret password_;
};

/// What every probe requires of an address: kConfig for an empty host, a host that is not one
/// address (commas, spaces, control characters: libpq would read a list or a socket), or a port
/// outside 1..65535.
Result<void> CheckProbeAddress(const std::string& host, int port);

/// Parses a pg_lsn as PostgreSQL prints it, "16/B374D848" (two hexadecimal halves of 1 to 8
/// digits, upper or lower case) into the byte position (0x16 << 32) + 0xB374D848. kParse on
/// anything else: an empty half, a missing or second '/', a non-hex digit, a sign, spaces, or a
/// position beyond INT64_MAX (a high half above 7FFFFFFF).
Result<int64_t> ParseLsn(std::string_view text);

/// Finds the cluster's current primary. Thread-safe; blocks for its HTTP requests (each bounded
/// by the configured total timeout, so at most members x total_timeout). Read-only.
class PrimaryLocator {
 public:
  virtual ~PrimaryLocator() = default;
  /// host and port of the primary now.
  ///
  /// Static: always the configured one (kConfig when its host is empty).
  ///
  /// Patroni: GET {member}/primary on each member, starting with the one that answered 200 last
  /// time, then in configured order; the first to answer 200 is the primary (Patroni answers 200
  /// there only on the member that runs as primary and holds the leader lock, 503 elsewhere).
  /// Patroni's answer (state, role, server_version, xlog, timeline, replication, patroni{...})
  /// carries no address, so the host is the member URL's host and the port is the cluster's
  /// postgres.port; a "host" string or "port" number in the body, as a proxy in front of Patroni
  /// may add, takes precedence. A 200 whose body is not JSON still names that member. kTransient
  /// when no member answers 200, with each member's answer (status and role, or the transport
  /// error) in the message.
  virtual Result<PrimaryState> Locate() = 0;
};

/// Every address that may be the primary, for a replica's multi-host primary_conninfo: the
/// static primary, or each Patroni member's host (from its REST URL) at postgres.port, in
/// configured order, duplicates dropped. A replica that lists them all with
/// target_session_attrs=read-write streams from whichever leads (docs/service.md).
std::vector<PrimaryState> PrimaryCandidates(const config::Cluster& cluster);

/// The configured primary (config::StaticPrimary or config::PatroniPrimary). `transport` must
/// outlive the locator; for Patroni it should be built with PatroniPrimary::http (TLS settings,
/// connect timeout): the locator sets each request's total timeout from it.
std::unique_ptr<PrimaryLocator> MakePrimaryLocator(const config::Cluster& cluster,
                                                   HttpTransport& transport);

}  // namespace ra::autoscaler
