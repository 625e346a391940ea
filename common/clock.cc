#include "common/clock.h"

#include <chrono>

namespace tandem {

const SteadyClock& SteadyClock::Instance() {
  static const SteadyClock clock;
  return clock;
}

int64_t SteadyClock::Read() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t UnixNowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SteadyToUnixMicros(int64_t steady_us) {
  if (steady_us == 0) return 0;
  return UnixNowMicros() - (SteadyClock::Read() - steady_us);
}

int64_t UnixToSteadyMicros(int64_t unix_us) {
  if (unix_us == 0) return 0;
  return SteadyClock::Read() - (UnixNowMicros() - unix_us);
}

}  // namespace tandem
