#include "common/logging.h"

#include <cstdlib>
#include <mutex>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace tandem {
namespace {

std::mutex g_mu;
spdlog::level::level_enum g_level = spdlog::level::info;  // GUARDED_BY(g_mu)
bool g_env_read = false;                                  // GUARDED_BY(g_mu)

void ReadEnvOnce() {  // REQUIRES: g_mu held
  if (g_env_read) return;
  g_env_read = true;
  if (const char* env = std::getenv("TANDEM_LOG_LEVEL")) {
    g_level = spdlog::level::from_str(env);
  }
}

}  // namespace

std::shared_ptr<spdlog::logger> GetLogger(std::string_view component) {
  std::lock_guard<std::mutex> lock(g_mu);
  ReadEnvOnce();
  std::string name(component);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  logger->set_level(g_level);
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%L%$ [%n] %v");
  return logger;
}

bool SetLogLevel(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") return false;
  std::lock_guard<std::mutex> lock(g_mu);
  g_env_read = true;
  g_level = parsed;
  spdlog::apply_all([parsed](std::shared_ptr<spdlog::logger> l) { l->set_level(parsed); });
  return true;
}

}  // namespace tandem
