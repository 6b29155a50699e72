#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/http_transport.h"
#include "core/result.h"
#include "core/secret.h"
#include "openstack/options.h"

namespace ra::openstack {

struct CatalogEndpoint {
  std::string interface;  ///< public, internal, admin
  std::string region;     ///< region_id (or the legacy region name)
  std::string url;
};

struct CatalogService {
  std::string type;  ///< compute, volumev3, block-storage, dns, identity, ...
  std::string name;
  std::vector<CatalogEndpoint> endpoints;
};

/// A Keystone v3 token and what came with it.
struct Token {
  Secret value;  ///< X-Subject-Token; registered for redaction on receipt
  TimePoint expires_at;
  std::string user_id;
  std::string project_id;  ///< empty for a domain-scoped token
  std::string project_name;
  std::vector<CatalogService> catalog;
};

/// The Keystone v3 POST /v3/auth/tokens body for `auth` (password or application credential,
/// with its scope). kConfig when the options cannot make a valid request; the message names
/// the missing field.
Result<std::string> BuildAuthRequest(const AuthOptions& auth);

/// Parses a 201 answer of POST /v3/auth/tokens. kParse on a malformed answer.
Result<Token> ParseTokenResponse(const HttpResponse& response);

/// The URL of `service_type` for `interface` in `region` (any region when empty; then more than
/// one region is an error, since choosing silently would send requests to the wrong place).
/// Block storage is found under any of its types: block-storage, volumev3, volume.
/// kConfig when no endpoint matches (the message lists what the catalog offers).
Result<std::string> FindEndpoint(const std::vector<CatalogService>& catalog,
                                 std::string_view service_type, std::string_view interface,
                                 std::string_view region);

/// Keystone v3 authentication with a cached token.
///
/// Thread-safe. GetToken() blocks while it authenticates (one HTTP request, bounded by the
/// transport's timeouts) and otherwise returns at once.
class KeystoneAuth {
 public:
  KeystoneAuth(AuthOptions auth, HttpTransport& transport, const Clock& clock,
               Duration refresh_margin, std::string user_agent = "replica-autoscaler");

  /// The cached token while now < expires_at - refresh_margin; otherwise authenticates anew.
  /// Errors: kAuth (credentials rejected: 401/403), kConfig (options incomplete), kTransient /
  /// kTimeout (Keystone unreachable or 5xx), kParse. Not retried here: the caller's retry
  /// loop decides.
  Result<std::shared_ptr<const Token>> GetToken();

  /// Drops the cached token if it is still `token` (after a 401 it was revoked or expired
  /// early); the next GetToken() authenticates. Idempotent.
  void Invalidate(const std::shared_ptr<const Token>& token);

  /// How many times this object has authenticated (for tests and metrics).
  int authentications() const;

 private:
  const AuthOptions auth_;
  HttpTransport& transport_;
  const Clock& clock_;
  const Duration refresh_margin_;
  const std::string user_agent_;
  mutable std::mutex mu_;
  std::shared_ptr<const Token> token_;
  int authentications_ = 0;
};

}  // namespace ra::openstack
