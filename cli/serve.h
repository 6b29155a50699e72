#pragma once

#include <iosfwd>
#include <string>

#include "config/config.h"
#include "core/result.h"
#include "openstack/options.h"

namespace CLI {
class App;
}

/// `replica-autoscaler serve`: the long-running service (control loop, HTTP API, metrics).
namespace ra::autoscaler {

struct ServeOptions {
  std::string config_file{};
  bool once = false;      ///< one cycle (its actions run to completion), print the plan, exit
  std::string version{};  ///< for the "service_started" event
};

/// Registers `serve --config FILE [--once]`; returns the subcommand.
CLI::App* AddServeCommand(CLI::App& app, ServeOptions* options);

/// Runs the service until SIGTERM or SIGINT, then stops gracefully (API first, then the loop,
/// then running actions, at most 30 s) and returns 0. Configuration problems are printed as
/// `validate` prints them and return 2; a secret that cannot be read or an API address that
/// cannot be bound returns 1. An unreachable cloud, load balancer or metrics source is not a
/// start-up error: every cycle tries again. With --once: one cycle, the plan printed on `out`,
/// 0 when every source could be read, 1 otherwise.
int RunServe(const ServeOptions& options, std::ostream& out, std::ostream& err);

/// The OpenStack client's options for a `clouds:` entry: its clouds.yaml entry (with OS_*
/// variables applied, as the openstack CLI does) or its inline auth with secrets resolved, then
/// the entry's own region, interface, TLS, endpoint overrides, rate limit, attempts and
/// timeouts on top. kConfig naming the cloud on any problem; never contacts the cloud.
Result<openstack::OpenStackOptions> CloudOptions(const config::Cloud& cloud,
                                                 const config::EnvLookup& env = config::ProcessEnv);

}  // namespace ra::autoscaler
