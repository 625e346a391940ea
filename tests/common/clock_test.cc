#include "common/clock.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>

namespace tandem {
namespace {

TEST(ClockTest, SteadyToUnixAndBackAgreeWithinAMillisecond) {
  const int64_t steady = SteadyClock::Read();
  const int64_t unix_us = SteadyToUnixMicros(steady);
  EXPECT_LT(std::llabs(unix_us - UnixNowMicros()), 1000);
  EXPECT_LT(std::llabs(UnixToSteadyMicros(unix_us) - steady), 1000);
  EXPECT_EQ(SteadyToUnixMicros(0), 0);  // "never happened" stays so
  EXPECT_EQ(UnixToSteadyMicros(0), 0);
}

// A peer may send any int64 as a stamp: converted stamps saturate where the difference of two
// of them (a latency) still fits in int64_t.
TEST(ClockTest, StampsFromTheWireSaturateWhereDifferencesStillFit) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max(), kMin = std::numeric_limits<int64_t>::min();
  for (const int64_t a : {kMax, kMin, kMax - 1, kMin + 1, int64_t{1}, int64_t{-1}}) {
    for (const int64_t b : {kMax, kMin, int64_t{12345}}) {
      const int64_t sa = UnixToSteadyMicros(a), sb = UnixToSteadyMicros(b);
      int64_t diff = 0;
      EXPECT_FALSE(__builtin_sub_overflow(sa, sb, &diff)) << a << " " << b;
      EXPECT_FALSE(__builtin_sub_overflow(SteadyToUnixMicros(a), SteadyToUnixMicros(b), &diff)) << a << " " << b;
    }
  }
  EXPECT_GT(UnixToSteadyMicros(kMax), int64_t{1} << 60);
  EXPECT_LT(UnixToSteadyMicros(kMin), -(int64_t{1} << 60));
}

TEST(ClockTest, ManualClockMovesOnlyWhenTold) {
  ManualClock clock(100);
  const Clock& c = clock;
  EXPECT_EQ(c.NowMicros(), 100);
  clock.Advance(50);
  EXPECT_EQ(c.NowMicros(), 150);
  clock.Set(7);
  EXPECT_EQ(c.NowMicros(), 7);
  const int64_t a = SteadyClock::Instance().NowMicros();
  const int64_t b = SteadyClock::Read();
  EXPECT_LE(a, b);
}

}  // namespace
}  // namespace tandem
