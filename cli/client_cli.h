#pragma once

#include <functional>
#include <iosfwd>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/http_transport.h"
#include "core/sleeper.h"

namespace CLI {
class App;
}

/// The client commands: `status`, `scale`, `pause`, `resume`, `events`, `snapshot`. They talk to
/// a running `serve` through its HTTP API (api_server.h, docs/api.md) and act on nothing else.
namespace ra::autoscaler {

struct ClientOptions {
  std::string command{};  ///< set by the parsed subcommand: "status", "scale", ...

  // common to every client command
  std::string api_url{};     ///< --api; empty: $RA_API_URL, else http://127.0.0.1:8080
  std::string token_file{};  ///< --token-file; empty: $RA_TOKEN_FILE, else $RA_TOKEN's value

  std::string cluster{};  ///< positional CLUSTER; `events --cluster`
  bool json = false;      ///< status, events: print JSON

  // scale
  std::optional<int> replicas{};
  bool clear = false;
  std::string ttl{};
  std::string reason{};  ///< scale, pause
  bool wait = false;
  std::string timeout = "10m";

  // events
  int limit = 50;
  bool follow = false;
};

/// Registers the client commands on `app`; the one parsed sets options->command.
void AddClientCommands(CLI::App& app, ClientOptions* options);

/// What the client needs from outside, injectable for tests.
struct ClientEnvironment {
  HttpTransport* transport = nullptr;  ///< nullptr: a CurlHttpTransport
  const Clock* clock = nullptr;        ///< nullptr: the system clock
  Sleeper* sleeper = nullptr;          ///< between polls (--wait, --follow); nullptr: real sleep
  /// Reads an environment variable ("" when unset); empty: getenv.
  std::function<std::string(const std::string&)> getenv{};
};

/// Runs options.command against the API and prints the result. Returns the exit status: 0 on
/// success, 1 when the API refused or could not be reached (the message says why, with the
/// server's own message), or when `scale --wait` timed out; 2 for usage errors. Blocks for one
/// request, or polls once a second for `--wait` (until done or --timeout) and every two seconds
/// for `events --follow` (until the process is interrupted).
int RunClient(const ClientOptions& options, std::ostream& out, std::ostream& err,
              const ClientEnvironment& environment = {});

}  // namespace ra::autoscaler
