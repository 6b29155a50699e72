#pragma once

#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace ra {

/// What went wrong, coarse enough for callers to decide what to do next: retry (kTransient,
/// kTimeout), back off a zone (kQuota, kCapacity), give up and report (everything else).
enum class ErrorKind {
  kTransient,   ///< worth retrying: 5xx, connection refused or reset, 429
  kTimeout,     ///< the operation did not finish in time; may have had an effect
  kAuth,        ///< credentials rejected or missing (401, 403)
  kQuota,       ///< a quota limit of the project was hit
  kCapacity,    ///< the cloud has no room (its scheduler found no host or backend)
  kNotFound,    ///< the resource does not exist (404)
  kConflict,    ///< the resource is in a state that forbids the operation (409)
  kBadRequest,  ///< the request was malformed (400, 422); retrying will not help
  kConfig,      ///< the configuration is invalid or incomplete
  kParse,       ///< an answer could not be understood
  kInternal,    ///< a bug or an unexpected state in this program
  kNotLeader,   ///< another instance leads (ha): this one takes no write; the message names it
};

std::string_view ToString(ErrorKind kind);

/// Retrying the same call at once may succeed: kTransient and kTimeout only. kQuota and
/// kCapacity are not: the caller backs off (another zone, later) instead.
bool IsRetryable(ErrorKind kind);

struct Error {
  ErrorKind kind;
  std::string message;

  /// "kind: message", for logs and CLI output.
  std::string ToString() const;
};

template <typename T>
using Result = tl::expected<T, Error>;

/// Shorthand for returning an error: `return Fail(ErrorKind::kConfig, "...");`
inline tl::unexpected<Error> Fail(ErrorKind kind, std::string message) {
  return tl::unexpected<Error>(Error{kind, std::move(message)});
}

inline tl::unexpected<Error> Fail(Error error) { return tl::unexpected<Error>(std::move(error)); }

}  // namespace ra
