#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "haproxy_dataplane/server_status.h"

namespace ra::haproxy {

/// A replica as the load balancer should know it.
struct ServerSpec {
  std::string name{};     ///< unique in the backend, no whitespace
  std::string address{};  ///< IPv4/IPv6 address or host name
  int port = 5432;
};

/// One server of the backend, as configuration, runtime state and statistics show it together.
struct LbServer {
  std::string name{};
  std::string address{};
  int port = 0;
  /// Runtime admin state (what `set server ... state` set, kept across reloads by the
  /// server-state-file). A server configured but not yet loaded by a reload reports kMaint.
  AdminState admin_state = AdminState::kMaint;
  /// False while the server is in the configuration but not yet in the running HAProxy.
  bool loaded = false;
  /// Health as HAProxy's checks see it, parsed from the stats `status` column.
  ServerStatus status{};
  /// The last check, parsed from the stats `check_status` column (e.g. "L7OK", "* L4TOUT").
  CheckStatus check{};
  /// Current sessions (`scur`) and sessions since start (`stot`) of the running worker.
  int64_t sessions = 0;
  int64_t total_sessions = 0;

  /// Takes new connections: admin ready, health up and the last check passed.
  bool Serving() const {
    return loaded && admin_state == AdminState::kReady && status.health == Health::kUp &&
           !status.drain && !status.maint && !status.nolb &&
           (check.passed || !status.health_checked);
  }
};

/// What Remove did. "Still has connections" is a normal answer, not an error: drain is under way;
/// ask again later (or remove with RemoveMode::kEvenWithSessions once the drain timeout passed).
struct RemoveOutcome {
  enum class Status {
    kRemoved,              ///< deleted from the configuration and the reload succeeded
    kAbsent,               ///< there was no such server: nothing to do
    kStillHasConnections,  ///< drained or in maint, but `sessions` are still open; retry later
  };
  Status status = Status::kRemoved;
  int64_t sessions = 0;
};

enum class RemoveMode {
  kWhenIdle,          ///< only once the server has no session left
  kEvenWithSessions,  ///< the drain timeout passed: remove anyway (sessions stay on the old worker)
};

/// The HAProxy backend that holds a cluster's replicas, as the service uses it.
///
/// Every method talks to the load balancer and blocks for the time it needs (bounded by the
/// implementation's timeouts; configuration changes also wait for the reload they cause).
/// Implementations are thread-safe. Errors are typed (core/result.h): kTransient or kTimeout may
/// succeed when retried, kAuth/kConfig/kBadRequest will not, kNotFound names an absent server,
/// kConflict a state that forbids the operation.
class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;

  /// Every server of the backend with its admin state, health, last check and session counts.
  /// Read-only, idempotent.
  virtual Result<std::vector<LbServer>> ListServers() = 0;

  /// Makes sure `spec` is a server of the backend, persisted in the configuration (so it survives
  /// reloads and restarts) with health checks on, and that its admin state is ready. A server
  /// added here takes no traffic before its first health check has answered: it is admitted in
  /// drain and set ready only once that check completed, so it becomes UP only when its
  /// PostgreSQL answers. Idempotent: an existing server with the same address and port is only
  /// set ready (nothing is written when it already is); one with another address or port is
  /// replaced in a single transaction. Blocks for the configuration writes, their reloads and the
  /// first check (each bounded); kTimeout when the first check did not complete in time, in which
  /// case the server stays in drain and calling again continues. A failed reload is kTransient.
  virtual Result<void> EnsureServer(const ServerSpec& spec) = 0;

  /// Stops new connections to `name` while existing ones continue (admin state drain), at
  /// runtime, without a reload. Idempotent. kNotFound when the running HAProxy has no such server.
  virtual Result<void> Drain(std::string_view name) = 0;

  /// Takes `name` out of rotation (admin state maint: no new connections, no health checks), at
  /// runtime, e.g. while its replica lags. Existing connections are not cut. Idempotent.
  /// kNotFound when the running HAProxy has no such server.
  virtual Result<void> Maint(std::string_view name) = 0;

  /// Current sessions of `name` (`scur`). Read-only. kNotFound when the running HAProxy has no
  /// such server.
  virtual Result<int64_t> SessionCount(std::string_view name) = 0;

  /// Deletes `name` from the configuration and waits for the reload. Only a server in drain or
  /// maint is removed (a ready one gives kConflict: drain it first); with kWhenIdle, one that
  /// still has sessions gives RemoveOutcome::kStillHasConnections and is left alone. Idempotent:
  /// an absent server gives kAbsent.
  virtual Result<RemoveOutcome> Remove(std::string_view name, RemoveMode mode) = 0;
};

}  // namespace ra::haproxy
