#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/http_transport.h"
#include "core/result.h"
#include "core/secret.h"
#include "core/sleeper.h"
#include "haproxy_dataplane/server_status.h"

namespace ra::haproxy {

/// Which Data Plane API the client speaks: /v2 (Data Plane API 2.x) or /v3 (3.x).
enum class ApiVersion { kAuto, kV2, kV3 };

std::string_view ToString(ApiVersion version);              ///< "auto", "v2", "v3"
Result<ApiVersion> ParseApiVersion(std::string_view text);  ///< the same words

/// How to reach one Data Plane API and which backend holds the replicas. Defaults are what a
/// Data Plane API next to HAProxy on the same host needs.
struct DataPlaneOptions {
  /// Base URL without the version path, e.g. "http://10.0.0.5:5555".
  std::string url{};
  /// kAuto asks /v3/info, then /v2/info, once, and remembers the answer.
  ApiVersion api_version = ApiVersion::kAuto;
  std::string username{};
  Secret password{};
  /// The HAProxy backend that holds the replicas (`backend <name>` in haproxy.cfg).
  std::string backend{};
  /// Per request; the transport's own timeout applies when it is shorter.
  Duration request_timeout = std::chrono::seconds(10);
  /// Re-read the configuration version and retry a write this many times after a 409
  /// "version mismatch" (another writer changed the configuration in between).
  int version_conflict_retries = 5;
  /// Retries of idempotent requests (reads, runtime state changes) after a transient failure
  /// (connection refused or reset, timeout, 5xx, 429), with backoff starting at retry_backoff.
  int transient_retries = 2;
  Duration retry_backoff = std::chrono::milliseconds(200);
  /// How long to wait for a reload (202 + Reload-ID) to finish, and how often to ask.
  Duration reload_timeout = std::chrono::seconds(60);
  Duration reload_poll_interval = std::chrono::milliseconds(250);
  /// How long EnsureMember waits for a new server's first health check, and how often it looks.
  Duration first_check_timeout = std::chrono::seconds(15);
  Duration first_check_poll_interval = std::chrono::milliseconds(250);
  /// Health-check parameters written on servers the client creates (unset: HAProxy's defaults or
  /// the backend's `default-server`).
  std::optional<int> check_inter_ms{};
  std::optional<int> check_rise{};
  std::optional<int> check_fall{};

  /// Every problem with these options, one per line; empty when usable.
  std::vector<std::string> Validate() const;
};

/// A server as the configuration endpoints describe it (the subset this client writes and reads).
struct ServerConfig {
  std::string name{};
  std::string address{};
  std::optional<int> port{};
  bool check = false;        ///< "check": "enabled"
  bool maintenance = false;  ///< "maintenance": "enabled" (`disabled` in haproxy.cfg)
  std::optional<int> inter_ms{};
  std::optional<int> rise{};
  std::optional<int> fall{};
  std::optional<int> weight{};
};

/// A server as the runtime endpoints describe it.
struct RuntimeServer {
  std::string name{};
  std::string address{};
  std::optional<int> port{};
  AdminState admin_state = AdminState::kReady;
  std::string operational_state{};  ///< "up", "down", "stopping"
};

/// One server's row of the native stats.
struct ServerStats {
  std::string name{};
  std::string backend{};
  std::string status{};        ///< raw, see ParseServerStatus
  std::string check_status{};  ///< raw, see ParseCheckStatus
  int64_t scur = 0;
  int64_t stot = 0;
};

struct Transaction {
  std::string id{};
  int64_t version = 0;
  std::string status{};  ///< "in_progress", "success", "failed", "outdated"
};

/// What a configuration write answered: a reload was requested (202 + Reload-ID) or not.
struct WriteOutcome {
  std::optional<std::string> reload_id{};
};

/// The Data Plane API's endpoints the LoadBalancer needs, for one backend, over v2 or v3.
///
/// Every method blocks for its HTTP exchange(s), each bounded by request_timeout. Thread-safe
/// (the only shared state is the detected API version). Errors map HTTP answers to kinds:
/// 400/422 kBadRequest, 401/403 kAuth, 404 kNotFound, 406/409 kConflict, 429 and 5xx kTransient,
/// with the API's own message; the password never appears in them.
class DataPlaneClient {
 public:
  /// `transport`, `clock` and `sleeper` must outlive the client. `sleeper` waits between polls
  /// and retries; tests pass one that advances a FakeClock.
  DataPlaneClient(DataPlaneOptions options, HttpTransport& transport, const Clock& clock,
                  Sleeper& sleeper = RealSleeper::Instance());

  const DataPlaneOptions& options() const { return options_; }
  const Clock& clock() const { return clock_; }
  /// Waits with the injected sleeper.
  void SleepFor(Duration d);

  /// The API version in use: the configured one, or the detected one (asked once). Idempotent.
  Result<ApiVersion> Version();

  /// The configuration version (the number every write must carry). Read-only.
  Result<int64_t> GetConfigurationVersion();

  /// The backend's servers in the configuration, with the version they were read at.
  struct ServersAtVersion {
    std::vector<ServerConfig> servers{};
    int64_t version = 0;
  };
  Result<ServersAtVersion> GetServers();

  /// Adds a server to the backend's configuration under the current version, re-reading it and
  /// retrying on 409 "version mismatch" (bounded). kConflict "already exists" when it is there.
  Result<WriteOutcome> CreateServer(const ServerConfig& server);

  /// Replaces a server's configuration (same name), like CreateServer for versions. kNotFound
  /// when it is not there.
  Result<WriteOutcome> ReplaceServer(const ServerConfig& server);

  /// Deletes a server from the backend's configuration, like CreateServer for versions.
  /// kNotFound when it is not there.
  Result<WriteOutcome> DeleteServer(std::string_view name);

  /// The operations of one transaction, given its id.
  using TransactionBody = std::function<Result<void>(const std::string& transaction_id)>;

  /// Starts a transaction at the current version, runs `body`, commits. A transaction that fails
  /// anywhere (body, commit) is deleted before returning: none is ever left open. When the commit
  /// meets a concurrent change (409 version mismatch, 406 outdated) the whole transaction is
  /// redone at the new version (bounded by version_conflict_retries); `body` must therefore be
  /// safe to run again. 429 (too many open transactions) is kTransient.
  Result<WriteOutcome> RunTransaction(const TransactionBody& body);

  /// Operations inside a transaction (no version: the transaction has its own).
  Result<void> CreateServerIn(const std::string& transaction_id, const ServerConfig& server);
  Result<void> DeleteServerIn(const std::string& transaction_id, std::string_view name);

  /// Open (or all, when `status` is empty) transactions. Read-only.
  Result<std::vector<Transaction>> ListTransactions(std::string_view status = "in_progress");

  /// Blocks until reload `id` succeeded (ok), failed (kTransient with HAProxy's answer) or
  /// reload_timeout passed (kTimeout).
  Result<void> WaitForReload(const std::string& id);

  /// Runtime: the backend's servers in the running HAProxy, and one server's admin state (no
  /// reload; lost at the next reload unless HAProxy keeps a server-state-file). Idempotent.
  Result<std::vector<RuntimeServer>> GetRuntimeServers();
  Result<RuntimeServer> SetAdminState(std::string_view name, AdminState state);

  /// Native stats of the backend's servers (all, or the one named).
  Result<std::vector<ServerStats>> GetServerStats(std::string_view name = "");

 private:
  struct Call {
    std::string method = "GET";
    std::string path{};  ///< after /v2 or /v3, with its query string
    std::string body{};
    bool idempotent = true;
  };
  Result<HttpResponse> Send(const Call& call);
  Result<HttpResponse> SendOnce(const Call& call, ApiVersion version);
  Result<ApiVersion> Detect();
  Result<std::string> ServersPath(std::string_view name, std::string_view query);
  Result<std::string> RuntimeServersPath(std::string_view name);
  /// A configuration write under the current version, retried on "version mismatch".
  Result<WriteOutcome> VersionedWrite(const std::string& method, std::string_view name,
                                      const std::string& body);

  DataPlaneOptions options_;
  HttpTransport& transport_;
  const Clock& clock_;
  Sleeper& sleeper_;
  std::string authorization_;
  std::mutex mu_;
  std::optional<ApiVersion> detected_;
};

/// Error for a Data Plane API answer that is not a success: its kind from the status code and the
/// API's own message ({"code":N,"message":"..."}), prefixed with what was asked.
Error DataPlaneError(std::string_view what, const HttpResponse& response);

/// True for a 409 whose message says the configuration version moved (not "already exists").
bool IsVersionMismatch(const HttpResponse& response);

/// JSON bodies as the API writes them (exposed for unit tests).
std::string ServerConfigToJson(const ServerConfig& server);
Result<ServerConfig> ServerConfigFromJson(std::string_view json);

}  // namespace ra::haproxy
