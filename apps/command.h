// Subcommands of the `tandem` executable register themselves here, one file per command.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/status.h"

namespace tandem {

// Adds the subcommand (and its options) to `app` and returns it with the function that runs
// it once parsing succeeded; the runner returns the process exit code.
using CommandRunner = std::function<int()>;
using CommandSetup = std::pair<CLI::App*, CommandRunner> (*)(CLI::App& app);

std::vector<CommandSetup>& CommandRegistry();

struct CommandRegistrar {
  explicit CommandRegistrar(CommandSetup setup) { CommandRegistry().push_back(setup); }
};

// Prints "error: <status>" to stderr and returns exit code 1 (2 for invalid arguments).
int ReportError(const Status& status);

}  // namespace tandem

#define TANDEM_REGISTER_COMMAND(setup) \
  static ::tandem::CommandRegistrar TANDEM_CONCAT(tandem_command_, __LINE__)(setup)
