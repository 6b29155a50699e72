#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/http_transport.h"
#include "core/random.h"
#include "core/rate_limiter.h"
#include "core/result.h"
#include "core/sleeper.h"
#include "openstack/keystone.h"
#include "openstack/options.h"

namespace ra::openstack {

/// One call to an OpenStack service.
struct ServiceRequest {
  std::string service_type;  ///< "compute", "block-storage", "dns"
  std::string method = "GET";
  /// Path below the service's endpoint, with its query: "/servers/detail?tags=a".
  std::string path;
  std::string body;  ///< JSON; empty for none
  HttpHeaders headers;
  /// Safe to send twice (GET, DELETE, PUT). Non-idempotent calls (POST) are retried only when
  /// the cloud says it did not process them (429, 413 or 503 with Retry-After).
  bool idempotent = true;
  /// Names the call in errors and logs: "nova: create server".
  std::string what;
};

/// What a Session needs from outside; injected so unit tests control time and randomness.
struct SessionDeps {
  HttpTransport& transport;
  const Clock& clock;
  Sleeper& sleeper;
  RandomSource random;
};

/// What one HTTP exchange with the cloud came to, for metrics ("cloud requests by code").
struct RequestRecord {
  std::string service_type;  ///< compute, block-storage, dns
  std::string method;
  std::string what;  ///< "nova: create server main-r1"
  int status = 0;    ///< 0 when no answer came (connection failure, timeout)
  Duration elapsed{0};
  int attempt = 1;
};
using RequestObserver = std::function<void(const RequestRecord&)>;

/// An authenticated connection to one cloud: Keystone tokens, the catalog and endpoint
/// overrides, microversion headers, retries with backoff and jitter, Retry-After, the client
/// side rate limit, and typed errors.
///
/// Thread-safe. Send() blocks for the request and its retries (bounded by
/// RetryOptions::max_elapsed plus one transport timeout).
class Session {
 public:
  Session(OpenStackOptions options, SessionDeps deps);

  /// Sends `request`, retrying what is safe to retry. A 2xx answer is returned as is; anything
  /// else is a typed error (see ErrorFromResponse) with the cloud's message. A 401 makes the
  /// session drop its token and authenticate again, exactly once per call.
  Result<HttpResponse> Send(const ServiceRequest& request);

  /// The base URL of a service (override or catalog), without a trailing slash. Blocks if it
  /// has to authenticate.
  Result<std::string> Endpoint(const std::string& service_type);

  /// The project the token is scoped to. Blocks if it has to authenticate.
  Result<std::string> ProjectId();

  /// Called after every HTTP exchange (each retry too), on the calling thread. Set it before
  /// the session is shared; it must not call back into the session.
  void SetObserver(RequestObserver observer) { observer_ = std::move(observer); }

  const OpenStackOptions& options() const { return options_; }
  /// The microversion sent to a service: the configured pin, or the one negotiated from its
  /// version document at the first call (see openstack/microversion.h), then kept.
  Result<std::string> Microversion(const std::string& service_type);
  KeystoneAuth& auth() { return auth_; }

 private:
  Result<std::string> EndpointFor(const Token& token, const std::string& service_type) const;
  Result<std::string> NegotiateMicroversion(const Token& token, const std::string& service_type,
                                            const std::string& endpoint);

  const OpenStackOptions options_;
  SessionDeps deps_;
  KeystoneAuth auth_;
  RateLimiter limiter_;
  RequestObserver observer_;
  std::mutex microversions_mu_;
  std::map<std::string, std::string> microversions_;  ///< "compute"/"volume" -> negotiated
};

/// Replaces {project_id}, %(project_id)s and $(project_id)s in an endpoint override.
std::string ExpandEndpoint(std::string url, const std::string& project_id);

}  // namespace ra::openstack
