#include <gtest/gtest.h>

#include <sstream>

#include "loadgen/report.h"
#include "loadgen/sweep.h"

namespace tandem::loadgen {
namespace {

TEST(SweepTest, RateSweepFindsTheKneeOfAFallingCurve) {
  // Attainment 1 up to 3.7 req/s, then falling linearly to 0 at 7.4.
  auto curve = [](double rate) -> Result<double> { return rate <= 3.7 ? 1.0 : std::max(0.0, 2.0 - rate / 3.7); };
  // Goal 0.9 is met up to 3.7 * 1.1 = 4.07.
  SweepOptions o;
  o.start = 1;
  o.goal = 0.9;
  o.tolerance = 0.02;
  o.max_points = 20;
  auto r = RunSweep(o, curve);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->bracketed);
  EXPECT_LE(r->best, 4.07);
  EXPECT_GE(r->best, 4.07 * 0.98);
  for (const SweepPoint& p : r->points) EXPECT_EQ(p.attainment, *curve(p.x));
}

TEST(SweepTest, RateSweepShrinksWhenTheStartAlreadyFails) {
  auto curve = [](double rate) -> Result<double> { return rate <= 0.3 ? 1.0 : 0.0; };
  SweepOptions o;
  o.start = 8;
  o.tolerance = 0.1;
  auto r = RunSweep(o, curve);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->bracketed);
  EXPECT_LE(r->best, 0.3);
  EXPECT_GE(r->best, 0.27);
}

TEST(SweepTest, SloScaleFindsTheTightestScale) {
  auto curve = [](double scale) -> Result<double> { return scale >= 0.6 ? 0.95 : 0.5; };
  SweepOptions o;
  o.start = 1;
  o.increasing = true;
  o.tolerance = 0.02;
  o.max_points = 20;
  auto r = RunSweep(o, curve);
  ASSERT_TRUE(r.ok());
  EXPECT_GE(r->best, 0.6);
  EXPECT_LE(r->best, 0.6 / 0.98);
}

TEST(SweepTest, NothingMeetsTheGoalAndErrorsEndTheSweep) {
  SweepOptions o;
  o.max_points = 5;
  auto never = RunSweep(o, [](double) -> Result<double> { return 0.0; });
  ASSERT_TRUE(never.ok());
  EXPECT_EQ(never->best, 0);
  EXPECT_FALSE(never->bracketed);
  EXPECT_EQ(never->points.size(), 5u);
  auto broken = RunSweep(o, [](double) -> Result<double> { return UnavailableError("server gone"); });
  EXPECT_FALSE(broken.ok());
  o.goal = 1.5;
  EXPECT_FALSE(RunSweep(o, [](double) -> Result<double> { return 1.0; }).ok());
}

Summary SampleSummary() {
  RequestResult r;
  r.success = true;
  r.sent_s = 0;
  r.chunk_s = {0.1, 0.2};
  r.ttft_s = 0.1;
  r.latency_s = 0.2;
  r.done_s = 0.2;
  r.output_tokens = 2;
  r.prompt_len = 5;
  SloPolicy slo;
  slo.fallback = *SloTargets::Parse({"ttft:500"});
  return Summarize({r}, 1.0, {50, 99.9}, slo);
}

TEST(ReportTest, TableHasVllmSectionsInOrder) {
  RunInfo info;
  info.request_rate = 2;
  info.percentile_metrics = {"ttft", "tpot", "itl", "e2el"};
  std::ostringstream out;
  PrintTable(out, info, SampleSummary());
  const std::string t = out.str();
  size_t at = 0;
  for (const char* line :
       {"============ Serving Benchmark Result ============", "Successful requests:", "Request rate configured (RPS):",
        "Benchmark duration (s):", "Request throughput (req/s):", "Request goodput (req/s):",
        "Output token throughput (tok/s):", "---------------Time to First Token----------------", "Mean TTFT (ms):",
        "Median TTFT (ms):", "P50 TTFT (ms):", "P99.9 TTFT (ms):", "-----Time per Output Token (excl. 1st token)------",
        "---------------Inter-token Latency----------------", "----------------End-to-end Latency----------------",
        "Requests meeting every target (%):"}) {
    const size_t found = t.find(line, at);
    ASSERT_NE(found, std::string::npos) << line << "\n" << t;
    at = found;
  }
}

TEST(ReportTest, JsonCarriesVllmKeysAndPerRequestRecords) {
  RunInfo info;
  info.request_rate = 2;
  info.percentile_metrics = {"ttft", "tpot"};
  RequestResult r;
  r.success = true;
  r.chunk_s = {0.1, 0.2};
  r.ttft_s = 0.1;
  r.latency_s = 0.2;
  r.output_tokens = 2;
  const nlohmann::ordered_json j = ResultJson(info, SampleSummary(), {r}, false);
  for (const char* key : {"date",
                          "backend",
                          "model_id",
                          "num_prompts",
                          "request_rate",
                          "duration",
                          "completed",
                          "total_input_tokens",
                          "total_output_tokens",
                          "request_throughput",
                          "request_goodput",
                          "output_throughput",
                          "total_token_throughput",
                          "mean_ttft_ms",
                          "median_ttft_ms",
                          "std_ttft_ms",
                          "p99.9_ttft_ms",
                          "p50_tpot_ms",
                          "input_lens",
                          "output_lens",
                          "ttfts",
                          "itls",
                          "errors",
                          "max_output_tokens_per_s",
                          "max_concurrent_requests",
                          "slo_attainment",
                          "requests"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_FALSE(j.contains("mean_itl_ms"));  // not selected
  EXPECT_EQ(j["requests"][0]["token_times_s"].size(), 2u);
  EXPECT_EQ(PercentileWord(99), "99");
  EXPECT_EQ(PercentileWord(99.9), "99.9");
  std::ostringstream csv;
  WriteCsv(csv, {r});
  EXPECT_EQ(csv.str().substr(0, 6), "index,");
  EXPECT_NE(csv.str().find("\n0,"), std::string::npos);
}

}  // namespace
}  // namespace tandem::loadgen
