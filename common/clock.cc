#include "common/clock.h"

#include <chrono>
#include <limits>

namespace tandem {

namespace {

// stamp + offset, clamped to int64_t: a stamp from the wire may be anything.
int64_t Shift(int64_t stamp, int64_t offset) {
  int64_t shifted = 0;
  if (!__builtin_add_overflow(stamp, offset, &shifted)) return shifted;
  return offset > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

}  // namespace

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
  return Shift(steady_us, UnixNowMicros() - SteadyClock::Read());
}

int64_t UnixToSteadyMicros(int64_t unix_us) {
  if (unix_us == 0) return 0;
  return Shift(unix_us, SteadyClock::Read() - UnixNowMicros());
}

}  // namespace tandem
