#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "apps/command.h"
#include "common/logging.h"

namespace tandem {

std::vector<CommandSetup>& CommandRegistry() {
  static std::vector<CommandSetup> registry;
  return registry;
}

int ReportError(const Status& status) {
  std::cerr << "error: " << status.ToString() << std::endl;
  return status.code() == StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace tandem

int main(int argc, char** argv) {
  CLI::App app{"tandem: prefill/decode-disaggregated LLM serving"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")->capture_default_str();

  std::vector<std::pair<CLI::App*, tandem::CommandRunner>> commands;
  for (auto setup : tandem::CommandRegistry()) commands.push_back(setup(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!tandem::SetLogLevel(log_level)) {
    std::cerr << "error: unknown --log-level '" << log_level << "'" << std::endl;
    return 2;
  }
  try {
    for (auto& [sub, run] : commands) {
      if (sub->parsed()) return run();
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
  return 2;
}
