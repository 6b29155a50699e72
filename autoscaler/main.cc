#include <CLI/CLI.hpp>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"replica-autoscaler: elastic PostgreSQL read replicas on OpenStack"};
  app.set_version_flag("--version", std::string("replica-autoscaler ") + RA_VERSION);
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
