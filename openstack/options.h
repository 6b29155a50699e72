#pragma once

#include <map>
#include <string>

#include "core/clock.h"
#include "core/http_transport.h"
#include "core/secret.h"

namespace ra::openstack {

using namespace std::chrono_literals;

/// How the client proves who it is to Keystone v3.
enum class AuthType {
  kPassword,               ///< user name (or id) + password, scoped to a project or a domain
  kApplicationCredential,  ///< application credential id (or name + user) + secret; self-scoped
};

/// The `auth:` section of a clouds.yaml entry, or OS_* variables.
struct AuthOptions {
  AuthType type = AuthType::kPassword;
  /// Keystone's base URL, with or without the trailing "/v3" (both are accepted).
  std::string auth_url;

  // kPassword: the user, by id or by name within a domain.
  std::string user_id;
  std::string username;
  std::string user_domain_id;
  std::string user_domain_name;  ///< "Default" when neither user_domain_* is given
  Secret password;

  // kPassword scope: a project (by id, or by name within a domain), or a domain. With none of
  // them the token is unscoped and has no catalog, which this client rejects.
  std::string project_id;
  std::string project_name;
  std::string project_domain_id;
  std::string project_domain_name;  ///< defaults to the user's domain
  std::string domain_id;
  std::string domain_name;

  // kApplicationCredential: by id, or by name together with the user (user_id or username +
  // user_domain_*).
  std::string application_credential_id;
  std::string application_credential_name;
  Secret application_credential_secret;
};

/// Retries of one call: exponential backoff with jitter on 5xx and connection failures,
/// Retry-After honoured on 429, 413 and 503.
struct RetryOptions {
  int max_attempts = 5;              ///< including the first; 1 disables retries
  Duration initial_backoff = 500ms;  ///< before the second attempt (then doubled)
  Duration max_backoff = 30s;        ///< cap of one backoff step
  Duration max_retry_after = 2min;   ///< a longer Retry-After fails the call at once
  Duration max_elapsed = 5min;       ///< no new attempt starts after this since the first
};

/// Everything the OpenStack client needs: what the service's YAML `clouds:` entry (or a
/// clouds.yaml entry plus OS_* variables, see LoadCloudConfig) becomes.
struct OpenStackOptions {
  AuthOptions auth;
  std::string region_name;           ///< empty: the catalog must hold one region per service
  std::string interface = "public";  ///< catalog interface: public, internal or admin

  /// Service type -> base URL used instead of the catalog's ("compute", "volumev3" or
  /// "block-storage", "dns"). "{project_id}", "%(project_id)s" and "$(project_id)s" are replaced
  /// by the token's project id: SberCloud/Huawei publish URLs like
  /// https://ecs.ru-moscow-1.hc.sbercloud.ru/v2.1/{project_id}.
  std::map<std::string, std::string> endpoint_overrides;

  /// Nova microversion: empty (the default) negotiates it from the version document (the least
  /// the client needs, 2.52: tags at boot); set, it is pinned for every compute call and must be
  /// at least 2.52.
  std::string compute_microversion;
  /// Cinder microversion: empty negotiates (3.22: snapshot lists filtered by metadata); set, it
  /// is pinned and must be at least 3.22.
  std::string volume_microversion;

  /// A cached token is reused until this long before its expires_at, then renewed.
  Duration token_refresh_margin = 5min;

  RetryOptions retry;
  /// Client-side request rate limit over all services (token bucket); 0 disables it.
  double requests_per_second = 10;
  int burst = 20;

  /// Timeouts and TLS for the libcurl transport (verify=false only for test clouds).
  HttpOptions http;

  /// Sent as User-Agent.
  std::string user_agent = "replica-autoscaler";
};

}  // namespace ra::openstack
