#include "common/clock.h"

#include <algorithm>
#include <chrono>

namespace tandem {

namespace {

// Converted stamps stay within +-2^61 us (73,000 years): the difference of any two of them fits
// in int64_t, so the latencies computed from stamps off the wire cannot overflow.
constexpr int64_t kStampLimit = int64_t{1} << 61;

// stamp + offset, clamped to +-kStampLimit: a stamp from the wire may be anything.
int64_t Shift(int64_t stamp, int64_t offset) {
  int64_t shifted = 0;
  if (__builtin_add_overflow(stamp, offset, &shifted)) return offset > 0 ? kStampLimit : -kStampLimit;
  return std::clamp(shifted, -kStampLimit, kStampLimit);
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
