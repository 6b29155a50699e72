#include "core/result.h"

namespace ra {

std::string_view ToString(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kTransient:
      return "transient";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kAuth:
      return "auth";
    case ErrorKind::kQuota:
      return "quota";
    case ErrorKind::kCapacity:
      return "capacity";
    case ErrorKind::kNotFound:
      return "not-found";
    case ErrorKind::kConflict:
      return "conflict";
    case ErrorKind::kBadRequest:
      return "bad-request";
    case ErrorKind::kConfig:
      return "config";
    case ErrorKind::kParse:
      return "parse";
    case ErrorKind::kInternal:
      return "internal";
    case ErrorKind::kNotLeader:
      return "not_leader";
  }
  return "unknown";
}

bool IsRetryable(ErrorKind kind) {
  return kind == ErrorKind::kTransient || kind == ErrorKind::kTimeout;
}

std::string Error::ToString() const {
  std::string out(ra::ToString(kind));
  out += ": ";
  out += message;
  return out;
}

}  // namespace ra
