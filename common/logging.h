// One spdlog logger per component ("model", "kernels", "router", ...), all writing to stderr so
// that stdout stays clean for the program's real output (tokens, ids, JSON).
#pragma once

#include <memory>
#include <string_view>

#include <spdlog/spdlog.h>

namespace tandem {

// Returns the logger for `component`, creating it on first use. Thread-safe.
std::shared_ptr<spdlog::logger> GetLogger(std::string_view component);

// Sets the level of every existing and future logger ("trace".."off"); false if unknown.
bool SetLogLevel(std::string_view level);

}  // namespace tandem
