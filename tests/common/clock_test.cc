#include "common/clock.h"

#include <cstdlib>

#include <gtest/gtest.h>

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
