#include "loadgen/arrivals.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>

namespace tandem::loadgen {
namespace {

struct GapStats {
  double mean = 0, cv = 0;
};

GapStats Gaps(const std::vector<double>& at) {
  std::vector<double> gaps;
  double prev = 0;
  for (double t : at) {
    gaps.push_back(t - prev);
    prev = t;
  }
  const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / static_cast<double>(gaps.size());
  double sq = 0;
  for (double g : gaps) sq += (g - mean) * (g - mean);
  return {mean, std::sqrt(sq / static_cast<double>(gaps.size())) / mean};
}

TEST(ArrivalScheduleTest, GammaGapsHaveTheRateAndTheBurstinessOverManyDraws) {
  for (double burstiness : {0.25, 1.0, 4.0}) {
    ArrivalOptions o;
    o.rate = 20;
    o.burstiness = burstiness;
    o.seed = 7;
    auto at = ArrivalSchedule(100000, o);
    ASSERT_TRUE(at.ok());
    const GapStats s = Gaps(*at);
    EXPECT_NEAR(s.mean, 1.0 / 20, 0.01 / 20) << burstiness;  // exact after vLLM's rescale
    EXPECT_NEAR(s.cv, 1.0 / std::sqrt(burstiness), 0.03 / std::sqrt(burstiness)) << burstiness;
    EXPECT_NEAR(at->back(), 100000 / 20.0, 1e-6);
    EXPECT_TRUE(std::is_sorted(at->begin(), at->end()));
  }
}

TEST(ArrivalScheduleTest, SameSeedSameScheduleOtherSeedOther) {
  ArrivalOptions o;
  o.rate = 5;
  o.seed = 3;
  auto a = ArrivalSchedule(1000, o), b = ArrivalSchedule(1000, o);
  o.seed = 4;
  auto c = ArrivalSchedule(1000, o);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
}

TEST(ArrivalScheduleTest, InfiniteRateSendsEverythingAtOnceAndInfiniteBurstinessIsRegular) {
  ArrivalOptions o;
  o.rate = std::numeric_limits<double>::infinity();
  auto at = ArrivalSchedule(10, o);
  ASSERT_TRUE(at.ok());
  for (double t : *at) EXPECT_EQ(t, 0.0);
  o.rate = 4;
  o.burstiness = std::numeric_limits<double>::infinity();
  at = ArrivalSchedule(8, o);
  ASSERT_TRUE(at.ok());
  for (size_t i = 0; i < at->size(); ++i) EXPECT_NEAR((*at)[i], 0.25 * static_cast<double>(i + 1), 1e-9);
}

TEST(ArrivalScheduleTest, RampUpsRaiseTheRateAcrossTheRun) {
  for (RampUp ramp : {RampUp::kLinear, RampUp::kExponential}) {
    ArrivalOptions o;
    o.ramp_up = ramp;
    o.ramp_up_start_rps = 1;
    o.ramp_up_end_rps = 20;
    o.burstiness = std::numeric_limits<double>::infinity();  // deterministic gaps = 1 / rate
    auto at = ArrivalSchedule(101, o);
    ASSERT_TRUE(at.ok());
    EXPECT_NEAR((*at)[0], 1.0, 1e-9);                     // first gap at the start rate
    EXPECT_NEAR((*at)[100] - (*at)[99], 1.0 / 20, 1e-9);  // last gap at the end rate
    const double mid_rate = ramp == RampUp::kLinear ? 10.5 : std::sqrt(20.0);
    EXPECT_NEAR((*at)[50] - (*at)[49], 1.0 / mid_rate, 1e-9);
  }
}

TEST(ArrivalScheduleTest, BadOptionsAreRefused) {
  ArrivalOptions o;
  o.rate = 1;
  o.burstiness = 0;
  EXPECT_FALSE(ArrivalSchedule(5, o).ok());
  o.burstiness = 1;
  o.ramp_up = RampUp::kLinear;
  EXPECT_FALSE(ArrivalSchedule(5, o).ok());
  EXPECT_FALSE(ParseRampUp("sideways").ok());
  EXPECT_EQ(*ParseRampUp("exponential"), RampUp::kExponential);
}

TEST(ScheduleFromTimestampsTest, KeepsTheTraceShapeAndRescalesToARate) {
  auto at = ScheduleFromTimestamps({1000, 1500, 3000, 1200}, 0);
  ASSERT_TRUE(at.ok());
  EXPECT_EQ(*at, (std::vector<double>{0, 0.5, 2.0, 0.2}));
  at = ScheduleFromTimestamps({0, 1000, 4000}, 3.0);  // 3 requests at 3/s: span 1 s
  ASSERT_TRUE(at.ok());
  EXPECT_NEAR((*at)[1], 0.25, 1e-9);
  EXPECT_NEAR((*at)[2], 1.0, 1e-9);
  EXPECT_FALSE(ScheduleFromTimestamps({1, -5}, 0).ok());
}

}  // namespace
}  // namespace tandem::loadgen
