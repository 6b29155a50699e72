#include "lb/load_balancer.h"

namespace ra::lb {

std::string_view ToString(AdminState state) {
  switch (state) {
    case AdminState::kReady:
      return "ready";
    case AdminState::kDraining:
      return "draining";
    case AdminState::kMaint:
      return "maint";
  }
  return "unknown";
}

std::string_view ToString(Health health) {
  switch (health) {
    case Health::kUp:
      return "up";
    case Health::kDown:
      return "down";
    case Health::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::string_view ToString(RemoveOutcome::Status status) {
  switch (status) {
    case RemoveOutcome::Status::kRemoved:
      return "removed";
    case RemoveOutcome::Status::kAbsent:
      return "absent";
    case RemoveOutcome::Status::kStillHasConnections:
      return "still_has_connections";
  }
  return "unknown";
}

}  // namespace ra::lb
