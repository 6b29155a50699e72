#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "autoscaler/service.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/result.h"
#include "core/secret.h"

namespace prometheus {
class Registry;
}

/// The HTTP API (libmicrohttpd), described by docs/openapi.yaml. libmicrohttpd is included only
/// in api_server.cc.
namespace ra::autoscaler {

/// A resolved bearer token.
struct ResolvedToken {
  std::string name{};
  config::TokenRole role = config::TokenRole::kReadOnly;
  Secret value{};
};

/// JSON shapes shared by the API server and the CLI client (documented in docs/openapi.yaml).
/// Ages (age_seconds) are measured at `now`; without it, at status.last_cycle_at (null when that
/// is unknown too). Times are RFC 3339 UTC strings; unknown values are null.
nlohmann::json StatusJson(const ClusterStatus& status, std::optional<TimePoint> now = std::nullopt);
/// The journal's format (ToJson in journal.h): the API and the journal file show the same shape.
nlohmann::json EventJson(const Event& event);

/// The one mapping from an error's kind to the HTTP status the API answers with it: not-found
/// 404, bad-request 400, conflict 409, transient 503 (nothing changed, retry), anything else 500.
int HttpStatus(ErrorKind kind);

/// Routes:
///   GET  /healthz  /readyz  /metrics                 (no token)
///   GET  /v1/clusters                                read-only
///   GET  /v1/clusters/{name}                         read-only
///   PUT  /v1/clusters/{name}/override  {"replicas":N, "ttl":"30m", "reason":"..."}   admin
///   DELETE /v1/clusters/{name}/override              admin
///   POST /v1/clusters/{name}/pause {"reason":"..."}  admin
///   POST /v1/clusters/{name}/resume                  admin
///   POST /v1/clusters/{name}/snapshot                admin
///   GET  /v1/events?cluster=&limit=&since=           read-only
/// Errors are JSON {"error": {"code": "bad_request", "message": "..."}}: 400 for a bad body or
/// parameter (the message names the field), 401 without a valid token, 403 for a read-only token
/// on an admin route, 404 unknown cluster or route, 405 wrong method, 409 conflict, 413 body
/// over 64 KiB, 500 otherwise. Tokens are compared in constant time and never logged.
/// Successful changes answer 200 (202 for a snapshot) with what was accepted; they take effect
/// in the next cycle. Requests are served by 4 libmicrohttpd threads, so `control` is called
/// from several threads at once (ServiceControl is thread-safe) and `clock` is read per request
/// (/healthz ages, override expiries, status ages). One debug log line per request.
///
/// Limits, so that no client (authenticated or not) can make the service hold much memory:
/// route, method, token and role are checked as soon as the headers are in, before any body is
/// read; a body is read only for an admin's change and only up to 64 KiB (a larger
/// Content-Length is refused with 413 unread; of a chunked body nothing past 64 KiB is stored:
/// 413 when it ends within 1 MiB, the connection closed when it goes on).
/// Request line and headers share 32 KiB per connection (libmicrohttpd answers 414 or 431
/// beyond it). At most config.max_connections connections are open (more are closed on
/// accept), and one idle for config.idle_timeout is closed. With config.tls the API is served
/// over HTTPS only.
class ApiServer {
 public:
  ApiServer(config::ApiConfig config, std::vector<ResolvedToken> tokens, ServiceControl& control,
            prometheus::Registry& registry, const Clock& clock);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  /// Starts listening on config.host:config.port; returns once it accepts connections.
  /// kConfig when the address cannot be bound (in use, not local), with the system's reason.
  /// Idempotent while started. Port 0 is not supported (the bound port could not be reported).
  Result<void> Start();
  /// Stops accepting and waits for requests in progress. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ra::autoscaler
