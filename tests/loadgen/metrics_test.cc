#include "loadgen/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace tandem::loadgen {
namespace {

// A successful request sent at `sent` whose chunks arrived at `chunks` (seconds after sending).
RequestResult Ok(double sent, std::vector<double> chunks, int32_t output_tokens, int32_t prompt = 10) {
  RequestResult r;
  r.sent_s = r.scheduled_s = sent;
  r.success = true;
  r.chunk_s = chunks;
  r.ttft_s = chunks.front();
  r.latency_s = chunks.back();
  r.done_s = sent + chunks.back();
  r.output_tokens = output_tokens;
  r.prompt_len = prompt;
  return r;
}

RequestResult Failed(double sent, double done, const std::string& why) {
  RequestResult r;
  r.sent_s = r.scheduled_s = sent;
  r.done_s = done;
  r.error = why;
  return r;
}

TEST(MetricsTest, TpotFollowsVllmIncludingOneTokenOutputs) {
  EXPECT_DOUBLE_EQ(Ok(0, {0.1, 0.2, 0.4}, 3).tpot_s(), 0.15);  // (0.4 - 0.1) / 2
  EXPECT_DOUBLE_EQ(Ok(0, {0.1}, 1).tpot_s(), 0.0);             // one token: TPOT 0 for goodput
}

TEST(MetricsTest, HandComputedSummary) {
  // Three requests over a 2 s run: A (3 tokens), B (1 token), C failed.
  std::vector<RequestResult> rs = {Ok(0.0, {0.1, 0.2, 0.4}, 3, 10), Ok(0.5, {0.3}, 1, 20),
                                   Failed(1.0, 1.2, "HTTP 400: too long")};
  SloPolicy slo;
  slo.fallback = *SloTargets::Parse({"ttft:200", "tpot:100"});
  const Summary s = Summarize(rs, 2.0, {50, 99}, slo);
  EXPECT_EQ(s.completed, 2);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.total_input, 30);
  EXPECT_EQ(s.total_output, 4);
  EXPECT_DOUBLE_EQ(s.request_throughput, 1.0);
  EXPECT_DOUBLE_EQ(s.output_throughput, 2.0);
  EXPECT_DOUBLE_EQ(s.total_token_throughput, 17.0);
  // TTFT over successes: 100 and 300 ms.
  EXPECT_NEAR(s.ttft.mean_ms, 200, 1e-9);
  EXPECT_NEAR(s.ttft.median_ms, 200, 1e-9);
  EXPECT_NEAR(s.ttft.std_ms, 100, 1e-9);  // population std, as numpy
  EXPECT_NEAR(s.ttft.percentiles_ms[1].second, 100 + 200 * 0.99, 1e-9);
  // TPOT only for A (B has one token): 150 ms. ITL pooled: A's gaps 100 and 200 ms.
  EXPECT_NEAR(s.tpot.mean_ms, 150, 1e-9);
  EXPECT_NEAR(s.itl.mean_ms, 150, 1e-9);
  EXPECT_NEAR(s.itl.median_ms, 150, 1e-9);
  EXPECT_NEAR(s.e2el.mean_ms, 350, 1e-9);  // 400 and 300 ms
  // Goodput (vLLM): A misses TPOT (150 > 100); B meets TTFT? 300 > 200: no. None meet.
  ASSERT_TRUE(s.request_goodput.has_value());
  EXPECT_DOUBLE_EQ(*s.request_goodput, 0.0);
  ASSERT_TRUE(s.attainment.has_value());
  EXPECT_EQ(s.attainment->requests, 3);             // the failed one counts as a miss
  EXPECT_NEAR(s.attainment->ttft, 1.0 / 3, 1e-12);  // only A
  EXPECT_NEAR(s.attainment->tpot, 1.0 / 3, 1e-12);  // only B (TPOT 0)
  EXPECT_EQ(s.errors.at("HTTP 400: too long"), 1);
  // Exact peak in flight: A [0, 0.4], B [0.5, 0.8], C [1.0, 1.2]: never two at once.
  EXPECT_EQ(s.max_in_flight, 1);
}

TEST(MetricsTest, GoodputCountsRequestsMeetingEveryTarget) {
  std::vector<RequestResult> rs = {Ok(0, {0.1, 0.15}, 2), Ok(0, {0.1}, 1), Ok(0.05, {0.5, 0.6}, 2)};
  SloPolicy slo;
  slo.fallback = *SloTargets::Parse({"ttft:200", "tpot:60", "e2el:1000"});
  const Summary s = Summarize(rs, 4.0, {99}, slo);
  EXPECT_DOUBLE_EQ(*s.request_goodput, 0.5);  // the first two meet everything: 2 / 4 s
  EXPECT_NEAR(s.attainment->joint, 2.0 / 3, 1e-12);
  EXPECT_EQ(s.max_in_flight, 3);
}

TEST(MetricsTest, PerClassAttainmentUsesEachClassTargets) {
  RequestResult a = Ok(0, {0.3, 0.35}, 2), b = Ok(0, {0.3, 0.35}, 2);
  a.slo_class = "interactive";
  b.slo_class = "batch";
  SloPolicy slo;
  slo.classes["interactive"] = *SloTargets::Parse({"ttft:100"});
  slo.classes["batch"] = *SloTargets::Parse({"ttft:1000"});
  const Summary s = Summarize({a, b}, 1.0, {99}, slo);
  EXPECT_DOUBLE_EQ(s.by_class.at("interactive").joint, 0.0);
  EXPECT_DOUBLE_EQ(s.by_class.at("batch").joint, 1.0);
  EXPECT_DOUBLE_EQ(s.attainment->joint, 0.5);
}

TEST(MetricsTest, VllmOneSecondBuckets) {
  // Tokens at 0.1, 0.2, 1.4 (A) and 0.9 (B, sent at 0.5): bucket 0 holds 3 tokens; both
  // requests are active in second 0.
  std::vector<RequestResult> rs = {Ok(0, {0.1, 0.2, 1.4}, 3), Ok(0.5, {0.4}, 1)};
  const Summary s = Summarize(rs, 1.5, {99}, SloPolicy{});
  EXPECT_DOUBLE_EQ(s.max_output_tokens_per_s, 3);
  EXPECT_EQ(s.max_concurrent_requests, 2);
  EXPECT_FALSE(s.request_goodput.has_value());
  EXPECT_FALSE(s.attainment.has_value());
}

TEST(MetricsTest, PercentileMatchesNumpyLinear) {
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(Percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(Percentile(v, 90), 3.7);
  EXPECT_DOUBLE_EQ(Percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile(v, 100), 4);
  EXPECT_DOUBLE_EQ(Percentile({}, 50), 0);
  const MetricStats empty = Stats({}, {99});
  EXPECT_EQ(empty.mean_ms, 0);
  EXPECT_EQ(empty.percentiles_ms.size(), 1u);
}

TEST(SloTargetsTest, ParsesVllmGoodputPairsAndRefusesNonsense) {
  auto t = SloTargets::Parse({"ttft:250", "tpot:50.5"});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t->ttft_ms, 250);
  EXPECT_EQ(*t->tpot_ms, 50.5);
  EXPECT_FALSE(t->e2el_ms.has_value());
  EXPECT_EQ(*t->Scaled(2).tpot_ms, 101);
  for (const char* bad : {"ttft", "ttft:", "ttft:abc", "ttft:-1", "latency:5", "ttft:5ms"}) {
    EXPECT_FALSE(SloTargets::Parse({bad}).ok()) << bad;
  }
}

TEST(SloPolicyTest, ReadsTheClassFileAndRefusesBadOnes) {
  const auto dir = std::filesystem::temp_directory_path() / ("slo_policy_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream((dir / name).string()) << text;
    return (dir / name).string();
  };
  auto good = SloPolicy::FromConfigFile(
      write("good.json", R"({"classes": [{"name": "interactive", "ttft_ms": 250, "tpot_ms": 50, "priority": 0},
                                        {"name": "batch", "ttft_ms": 5000}]})"),
      SloTargets{});
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(*good->For("interactive").tpot_ms, 50);
  EXPECT_FALSE(good->For("batch").tpot_ms.has_value());
  EXPECT_TRUE(good->For("unknown").empty());
  EXPECT_FALSE(SloPolicy::FromConfigFile(write("a.json", "{"), {}).ok());
  EXPECT_FALSE(SloPolicy::FromConfigFile(write("b.json", R"({"classes": [{"ttft_ms": 5}]})"), {}).ok());
  EXPECT_FALSE(SloPolicy::FromConfigFile(write("c.json", R"({"classes": [{"name": "x", "ttft_ms": -5}]})"), {}).ok());
  EXPECT_FALSE(SloPolicy::FromConfigFile((dir / "missing.json").string(), {}).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem::loadgen
