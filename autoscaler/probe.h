#pragma once

#include <memory>
#include <string>
#include <vector>

#include "autoscaler/config.h"
#include "autoscaler/reconcile.h"
#include "core/http_transport.h"
#include "core/result.h"
#include "core/secret.h"

/// PostgreSQL as the loop sees it: replica probes through libpq and the current primary.
namespace ra::autoscaler {

/// Where the primary is.
struct PrimaryState {
  std::string host{};
  int port = 5432;
};

/// Probes PostgreSQL servers. Implementations are thread-safe; every call blocks for at most the
/// configured connect timeout plus one short query, and opens (and closes) its own connection.
class ReplicaProbe {
 public:
  virtual ~ReplicaProbe() = default;

  /// The primary's pg_current_wal_lsn(). kTransient when it does not answer, kConflict when the
  /// server is in recovery (not a primary). Read-only.
  virtual Result<int64_t> PrimaryLsn(const std::string& host, int port) = 0;

  /// PQping on host:port, then, when it answers, pg_is_in_recovery(), pg_last_wal_replay_lsn()
  /// and pg_last_xact_replay_timestamp(); lag_bytes = primary_lsn - replay LSN (never negative);
  /// lag_seconds = seconds since the last replayed transaction, or 0 when lag_bytes is 0. Never
  /// fails: an unreachable server is reachable=false with the reason in `error`. Read-only.
  virtual ProbeResult ProbeReplica(const std::string& host, int port, int64_t primary_lsn) = 0;
};

/// libpq. Connection strings are built with keyword/value arrays (PQconnectdbParams), so no
/// value is ever parsed as connection-string syntax; the password never appears in an error.
class LibpqReplicaProbe final : public ReplicaProbe {
 public:
  /// `probe` gives user, dbname, sslmode, connect_timeout; `password` may be empty.
  LibpqReplicaProbe(config::PostgresProbe probe, Secret password);
  Result<int64_t> PrimaryLsn(const std::string& host, int port) override;
  ProbeResult ProbeReplica(const std::string& host, int port, int64_t primary_lsn) override;

 private:
  config::PostgresProbe probe_;
  Secret password_;
};

/// Parses "16/B374D848" into a byte position. kParse on anything else.
Result<int64_t> ParseLsn(std::string_view text);

/// Finds the cluster's current primary. Thread-safe; blocks for its HTTP requests (bounded).
class PrimaryLocator {
 public:
  virtual ~PrimaryLocator() = default;
  /// host and port of the primary now. Static: always the configured one. Patroni: the member
  /// whose GET /primary answers 200 (host from that member's /patroni "host"/conn_url when
  /// given, else the member URL's host; port from conn_url, else postgres.port); kTransient
  /// when no member answers 200, with each member's answer in the message.
  virtual Result<PrimaryState> Locate() = 0;
};

/// The configured primary (config::StaticPrimary or config::PatroniPrimary).
std::unique_ptr<PrimaryLocator> MakePrimaryLocator(const config::Cluster& cluster,
                                                   HttpTransport& transport);

}  // namespace ra::autoscaler
