#include "slo/slo_config.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "slo/request_record.h"

namespace tandem {
namespace {

TEST(SloConfigTest, ReadsClassesPrioritiesAndTheDefault) {
  auto c = SloConfig::FromJson(R"({"classes": [
      {"name": "interactive", "ttft_ms": 250, "tpot_ms": 50, "priority": 0, "default": true},
      {"name": "batch", "ttft_ms": 5000, "priority": 1}]})",
                               "test");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_NE(c->Find("batch"), nullptr);
  EXPECT_EQ(c->Find("batch")->ttft_ms, 5000);
  EXPECT_EQ(c->Find("batch")->tpot_ms, 0);
  EXPECT_EQ(c->Find("batch")->priority, 1);
  ASSERT_NE(c->default_class(), nullptr);
  EXPECT_EQ(c->default_class()->name, "interactive");
  EXPECT_EQ(c->Find("nope"), nullptr);
  EXPECT_EQ(c->Names(), "interactive, batch");
}

TEST(SloConfigTest, RefusesNonsenseNamingTheClass) {
  for (const char* bad :
       {"{", "[]", R"({"classes": []})", R"({"classes": [{"ttft_ms": 5}]})", R"({"classes": [{"name": "a"}]})",
        R"({"classes": [{"name": "a", "ttft_ms": -1}]})", R"({"classes": [{"name": "a", "tpot_ms": "fast"}]})",
        R"({"classes": [{"name": "a", "ttft_ms": 5}, {"name": "a", "ttft_ms": 6}]})",
        R"({"classes": [{"name": "a", "ttft_ms": 5, "default": true}, {"name": "b", "ttft_ms": 6, "default": true}]})",
        R"({"classes": [{"name": "a", "ttft_ms": 5, "priority": 0.5}]})"}) {
    auto c = SloConfig::FromJson(bad, "slo.json");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(c.status().message().find("slo.json"), std::string::npos);
  }
  EXPECT_EQ(SloConfig::FromFile("/nonexistent/slo.json").status().code(), StatusCode::kNotFound);
}

TEST(SloConfigTest, ReadsAClassQueueBoundAndRefusesBadOnes) {
  auto c = SloConfig::FromJson(R"({"classes": [
      {"name": "interactive", "ttft_ms": 250, "max_queued": 0},
      {"name": "batch", "ttft_ms": 5000, "priority": 1, "max_queued": 256},
      {"name": "bulk", "tpot_ms": 500}]})",
                               "test");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->Find("interactive")->max_queued, 0);  // never waits in the router
  EXPECT_EQ(c->Find("batch")->max_queued, 256);
  EXPECT_EQ(c->Find("bulk")->max_queued, -1);  // the global bound only
  const RequestSlo slo = RequestSloOf(*c->Find("batch"));
  EXPECT_EQ(slo.class_name, "batch");
  EXPECT_EQ(slo.ttft_ms, 5000);
  EXPECT_EQ(slo.priority, 1);
  EXPECT_EQ(slo.max_queued, 256);
  for (const char* bad : {R"({"classes": [{"name": "a", "ttft_ms": 5, "max_queued": -1}]})",
                          R"({"classes": [{"name": "a", "ttft_ms": 5, "max_queued": 1.5}]})",
                          R"({"classes": [{"name": "a", "ttft_ms": 5, "max_queued": "10"}]})",
                          R"({"classes": [{"name": "a", "ttft_ms": 5, "max_queued": null}]})",
                          R"({"classes": [{"name": "a", "ttft_ms": 5, "max_queued": 99999999999}]})",
                          R"({"classes": [{"name": "a", "ttft_ms": 5, "max_queued": 18446744073709551615}]})"}) {
    auto r = SloConfig::FromJson(bad, "slo.json");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("class a: max_queued"), std::string::npos) << r.status().message();
  }
}

TEST(SloConfigTest, MetChecksEveryTargetAndARecordNeedsANormalFinish) {
  RequestSlo slo;
  slo.ttft_ms = 100;
  slo.tpot_ms = 20;
  EXPECT_TRUE(slo.Met(100, 20));
  EXPECT_FALSE(slo.Met(101, 20));
  EXPECT_FALSE(slo.Met(50, 21));
  EXPECT_FALSE(slo.Met(-1, 0));  // no first token
  EXPECT_TRUE(RequestSlo{}.Met(-1, 1e9));
  RequestRecord r;
  r.slo = slo;
  r.arrival_us = 0;
  r.AddToken(50'000);
  r.AddToken(60'000);
  r.finish_reason = FinishReason::kLength;
  EXPECT_TRUE(r.slo_met());
  EXPECT_NE(r.Summary().find("slo=custom slo_met=true"), std::string::npos);
  r.finish_reason = FinishReason::kError;
  EXPECT_FALSE(r.slo_met());
}

// A TTFT target off the wire may be any double; the deadline never overflows, and a target that
// is not a positive number counts as none.
TEST(SloConfigTest, TtftDeadlineTakesAnyTargetWithoutOverflow) {
  EXPECT_EQ(TtftDeadlineUs(1000, 250), 1000 + 250'000);
  EXPECT_EQ(TtftDeadlineUs(1000, 0), 1000 + kUntargetedTtftBudgetUs);
  EXPECT_EQ(TtftDeadlineUs(1000, -5), 1000 + kUntargetedTtftBudgetUs);
  EXPECT_EQ(TtftDeadlineUs(1000, std::numeric_limits<double>::quiet_NaN()), 1000 + kUntargetedTtftBudgetUs);
  const int64_t stamp_limit = int64_t{1} << 61;  // converted wire stamps stay within this
  for (const double huge : {1e300, std::numeric_limits<double>::infinity(), 9.3e15}) {
    EXPECT_EQ(TtftDeadlineUs(stamp_limit, huge), stamp_limit + static_cast<int64_t>(kMaxTtftBudgetUs)) << huge;
    EXPECT_EQ(TtftDeadlineUs(-stamp_limit, huge), -stamp_limit + static_cast<int64_t>(kMaxTtftBudgetUs)) << huge;
  }
}

}  // namespace
}  // namespace tandem
