#pragma once

#include <cstdint>
#include <string>

#include "haproxy_dataplane/server_status.h"
#include "lb/load_balancer.h"

namespace ra::haproxy {

/// One server of the backend as HAProxy shows it, configuration, runtime state and statistics
/// together: the Data Plane implementation's own view, which lb::Member summarizes for the
/// service.
struct ServerView {
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

  /// Takes new connections: loaded, admin ready, health up and the last check passed.
  bool Serving() const {
    return loaded && admin_state == AdminState::kReady && status.health == Health::kUp &&
           !status.drain && !status.maint && !status.nolb &&
           (check.passed || !status.health_checked);
  }
};

/// The neutral summary: drain is lb::AdminState::kDraining, `serving` is Serving(), `detail` the
/// stats status and the last check code ("UP, check L7OK").
lb::Member ToMember(const ServerView& server);

}  // namespace ra::haproxy
