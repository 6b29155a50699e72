#include "cli/config_cli.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "config/config.h"

namespace ra::config {

CLI::App* AddValidateCommand(CLI::App& app, ValidateOptions* options) {
  CLI::App* cmd = app.add_subcommand(
      "validate",
      "Check a configuration file: every problem with its YAML path and line; exit 1 if any");
  cmd->add_option("FILE", options->file, "the configuration file")->required();
  cmd->add_flag("--json", options->json, "print the result as one JSON object");
  cmd->add_flag("--no-secret-check", options->no_secret_check,
                "do not check secret files, environment variables, CA bundles and clouds.yaml "
                "(for validating on a machine other than the service's)");
  return cmd;
}

int RunValidate(const ValidateOptions& options, std::ostream& out, std::ostream& err) {
  // An unreadable file is a usage problem (exit 2), not a problem of the configuration.
  std::error_code ec;
  if (std::filesystem::is_directory(options.file, ec)) {
    err << "validate: " << options.file << " is a directory, not a file\n";
    return 2;
  }
  std::ifstream in(options.file, std::ios::binary);
  if (!in) {
    err << "validate: cannot read " << options.file << ": " << std::strerror(errno) << "\n";
    return 2;
  }
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigBytes) {
    err << "validate: " << options.file << " is larger than 16 MiB; not a configuration\n";
    return 2;
  }
  LoadOptions load;
  load.check_environment = !options.no_secret_check;
  load.base_dir = std::filesystem::path(options.file).parent_path().string();
  if (load.base_dir.empty()) load.base_dir = ".";
  ConfigResult result = LoadConfigFromString(text, options.file, load);

  if (options.json) {
    nlohmann::json doc{{"file", options.file}, {"valid", result.has_value()}};
    doc["problems"] = nlohmann::json::array();
    if (result) {
      doc["summary"] = Summarize(*result);
    } else {
      for (const ConfigProblem& p : result.error()) {
        doc["problems"].push_back(
            {{"path", p.path}, {"line", p.line}, {"column", p.column}, {"message", p.message}});
      }
    }
    // Messages quote values, which may hold any bytes: replace invalid UTF-8 rather than throw.
    out << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return result ? 0 : 1;
  }
  if (result) {
    out << "ok: " << Summarize(*result) << "\n";
    return 0;
  }
  for (const ConfigProblem& p : result.error()) out << FormatProblem(p, options.file) << "\n";
  const size_t n = result.error().size();
  out << fmt::format("{}: {} {}\n", options.file, n, n == 1 ? "problem" : "problems");
  return 1;
}

}  // namespace ra::config
