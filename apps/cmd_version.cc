#include <iostream>

#include "apps/command.h"
#include "apps/version.h"

namespace tandem {
namespace {

std::pair<CLI::App*, CommandRunner> SetupVersion(CLI::App& app) {
  auto* sub = app.add_subcommand("version", "Print the version");
  return {sub, [] {
            std::cout << "tandem " << kTandemVersion << std::endl;
            return 0;
          }};
}

TANDEM_REGISTER_COMMAND(SetupVersion);

}  // namespace
}  // namespace tandem
