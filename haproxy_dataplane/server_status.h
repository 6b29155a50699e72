#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace ra::haproxy {

/// A server's admin state, as `set server BE/SRV state` sets it and the Data Plane API's runtime
/// endpoints report it.
enum class AdminState { kReady, kDrain, kMaint };

std::string_view ToString(AdminState state);  ///< "ready", "drain", "maint"
Result<AdminState> ParseAdminState(std::string_view text);

enum class Health {
  kUp,       ///< UP, UP n/m (going down), NOLB, DRAIN, no check
  kDown,     ///< DOWN, DOWN n/m (going up)
  kUnknown,  ///< in maintenance HAProxy does not say; or an empty status
};

/// The stats `status` column as HAProxy really writes it, which the Data Plane API passes on
/// unchanged: "UP", "UP 1/2", "DOWN", "DOWN 1/3", "NOLB", "DRAIN", "DRAIN (agent)", "MAINT",
/// "MAINT (via be/srv)", "MAINT (resolution)", "no check". (The specification's enum lists only
/// five of these.)
struct ServerStatus {
  Health health = Health::kUnknown;
  bool health_checked = true;  ///< false for "no check": the server is up by declaration
  bool maint = false;
  bool drain = false;
  bool nolb = false;        ///< up but not load-balanced (e.g. http-check disable-on-404)
  std::string maint_via{};  ///< "be/srv" for "MAINT (via be/srv)", "resolution", or ""
  std::string via_agent{};  ///< "agent" for "DRAIN (agent)"
  /// "UP 1/3": the health counter is moving (1 of 3 checks towards the other state).
  int transition_step = 0;
  int transition_of = 0;
  std::string raw{};
};

/// kParse for a word HAProxy does not write, with the text in the message.
Result<ServerStatus> ParseServerStatus(std::string_view text);

/// The stats `check_status` column: "L4OK", "L7STS", "INI", or "* L4TOUT" while a check runs
/// (HAProxy prefixes the last result with "* " then).
struct CheckStatus {
  std::string code{};        ///< "L7OK", "L4TOUT", "INI", ... ("" when no check is configured)
  bool in_progress = false;  ///< a check is running right now
  bool completed = false;    ///< at least one check has finished (code is neither "" nor "INI")
  bool passed = false;       ///< the last finished check succeeded (L4OK, L6OK, L7OK, L7OKC)
  std::string raw{};
};

CheckStatus ParseCheckStatus(std::string_view text);

}  // namespace ra::haproxy
