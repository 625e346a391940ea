#include "loadgen/rescore.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tandem::loadgen {
namespace {

TEST(RescoreTest, ASavedRunScoresAsTheOriginalUnderNewTargets) {
  std::vector<RequestResult> rs;
  for (int i = 0; i < 4; ++i) {
    RequestResult r;
    r.index = i;
    r.success = i != 3;
    r.sent_s = r.scheduled_s = 0.5 * i;
    r.chunk_s = {0.1 * (i + 1), 0.1 * (i + 1) + 0.02 * (i + 1), 0.1 * (i + 1) + 0.04 * (i + 1)};
    r.ttft_s = r.chunk_s.front();
    r.latency_s = r.success ? r.chunk_s.back() : -1;
    r.done_s = r.sent_s + r.chunk_s.back();
    r.output_tokens = 3;
    r.prompt_len = 7;
    r.slo_class = i % 2 ? "batch" : "";
    if (!r.success) r.error = "the stream ended before [DONE]";
    rs.push_back(r);
  }
  RunInfo info;
  info.label = "before";
  info.request_rate = 2;
  info.metric_percentiles = {50, 90};
  const Summary original = Summarize(rs, 2.0, {50, 90}, SloPolicy{});
  const auto dir = std::filesystem::temp_directory_path() / ("rescore_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string in = (dir / "run.json").string(), out = (dir / "scored.json").string();
  std::ofstream(in) << ResultJson(info, original, rs, false).dump();

  SloPolicy slo;
  slo.fallback = *SloTargets::Parse({"ttft:250", "tpot:50"});
  auto scored = RescoreFile(in, slo, {"ttft:250", "tpot:50"}, "after", out);
  ASSERT_TRUE(scored.ok()) << scored.status().ToString();
  const Summary direct = Summarize(rs, 2.0, {50, 90}, slo);
  ASSERT_TRUE(scored->attainment.has_value());
  EXPECT_DOUBLE_EQ(scored->attainment->joint, direct.attainment->joint);
  EXPECT_DOUBLE_EQ(scored->attainment->ttft, direct.attainment->ttft);
  EXPECT_DOUBLE_EQ(*scored->request_goodput, *direct.request_goodput);
  EXPECT_NEAR(scored->tpot.mean_ms, direct.tpot.mean_ms, 1e-9);
  EXPECT_NEAR(scored->itl.mean_ms, direct.itl.mean_ms, 1e-9);
  EXPECT_EQ(scored->failed, 1);
  std::ifstream written(out);
  const nlohmann::json j = nlohmann::json::parse(written);
  EXPECT_EQ(j["label"], "after");
  EXPECT_EQ(j["request_rate"], 2);
  EXPECT_TRUE(j.contains("p90_ttft_ms"));

  std::ofstream(dir / "sweep.json") << R"({"sweep": "rate", "points": []})";
  EXPECT_FALSE(RescoreFile((dir / "sweep.json").string(), slo, {}, "", out).ok());
  EXPECT_FALSE(RescoreFile((dir / "missing.json").string(), slo, {}, "", out).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem::loadgen
