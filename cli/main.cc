#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/client_cli.h"
#include "cli/config_cli.h"
#include "cli/plan_cli.h"
#include "cli/serve.h"

int main(int argc, char** argv) {
  CLI::App app{"replica-autoscaler: elastic PostgreSQL read replicas on OpenStack"};
  app.set_version_flag("--version", std::string("replica-autoscaler ") + RA_VERSION);
  app.require_subcommand(1);

  ra::config::ValidateOptions validate;
  CLI::App* validate_cmd = ra::config::AddValidateCommand(app, &validate);
  ra::autoscaler::PlanOptions plan;
  CLI::App* plan_cmd = ra::autoscaler::AddPlanCommand(app, &plan);
  ra::autoscaler::ServeOptions serve;
  serve.version = RA_VERSION;
  CLI::App* serve_cmd = ra::autoscaler::AddServeCommand(app, &serve);
  ra::autoscaler::ClientOptions client;
  ra::autoscaler::AddClientCommands(app, &client);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other command-line mistake is a usage error: 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (validate_cmd->parsed()) return ra::config::RunValidate(validate, std::cout, std::cerr);
  if (serve_cmd->parsed()) return ra::autoscaler::RunServe(serve, std::cout, std::cerr);
  if (plan_cmd->parsed()) return ra::autoscaler::RunPlan(plan, std::cout, std::cerr);
  if (!client.command.empty()) return ra::autoscaler::RunClient(client, std::cout, std::cerr);
  return 0;
}
