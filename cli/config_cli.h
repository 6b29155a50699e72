#pragma once

#include <iosfwd>
#include <string>

namespace CLI {
class App;
}

namespace ra::config {

struct ValidateOptions {
  std::string file{};
  bool json = false;
  bool no_secret_check = false;
};

/// Registers `validate FILE [--json] [--no-secret-check]` on `app`, filling `*options` when it is
/// parsed. Returns the subcommand so the caller can tell whether it was chosen.
CLI::App* AddValidateCommand(CLI::App& app, ValidateOptions* options);

/// Checks the configuration and prints every problem as "FILE:LINE:COL: PATH: message" and a
/// count (or, with --json, one JSON object) on `out`. Returns the exit status: 0 when valid (a
/// one-line summary is printed), 1 when there are problems, 2 when the file cannot be read.
/// Never prints a secret. Blocks on file reads only.
int RunValidate(const ValidateOptions& options, std::ostream& out, std::ostream& err);

}  // namespace ra::config
