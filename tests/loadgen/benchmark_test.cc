// RunBench end to end against the scripted server: a single run, both sweeps, their saved JSON,
// and the plot panels drawn from it.
#include "loadgen/benchmark.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "loadgen/plot_results.h"
#include "tests/loadgen/scripted_server.h"

namespace tandem::loadgen {
namespace {

class BenchmarkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("loadgen_benchmark_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    for (int i = 0; i < 8; ++i) {
      BenchRequest r;
      r.prompt_text = "ok";
      r.output_len = 3;
      r.slo_class = i % 2 ? "batch" : "interactive";
      workload_.requests.push_back(r);
    }
    config_.run.endpoint.port = server_.port();
    config_.run.model = "scripted";
    config_.run.request_timeout_s = 5;
    config_.arrivals.rate = 50;
    config_.slo.fallback = *SloTargets::Parse({"ttft:1000", "tpot:1000"});
    config_.slo.classes["interactive"] = *SloTargets::Parse({"ttft:1000"});
    config_.info.label = "scripted";
    config_.info.request_rate = 50;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  nlohmann::json Read(const std::string& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in);
  }

  testing::ScriptedServer server_;
  std::filesystem::path dir_;
  Workload workload_;
  BenchConfig config_;
};

TEST_F(BenchmarkTest, OneRunSavesJsonAndCsvWithClasses) {
  config_.save_json = (dir_ / "run.json").string();
  config_.save_csv = (dir_ / "run.csv").string();
  config_.warmup_requests = 2;
  std::ostringstream out;
  auto outcome = RunBench(workload_, config_, out);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(outcome->summary.completed, 8);
  EXPECT_NE(out.str().find("warmup: 2 requests, 0 failed"), std::string::npos);
  EXPECT_EQ(outcome->summary.by_class.size(), 2u);
  const nlohmann::json j = Read(config_.save_json);
  EXPECT_EQ(j["completed"], 8);
  EXPECT_EQ(j["attainment_by_class"]["interactive"]["requests"], 4);
  EXPECT_DOUBLE_EQ(j["slo_attainment"].get<double>(), 1.0);
  EXPECT_TRUE(std::filesystem::exists(config_.save_csv));
}

TEST_F(BenchmarkTest, RateSweepWritesItsPointsAndRunsAndPlots) {
  config_.sweep = "rate";
  config_.sweep_options.start = 20;
  config_.sweep_options.max_points = 3;  // an instant server meets every rate: never bracketed
  config_.save_json = (dir_ / "sweep.json").string();
  std::ostringstream out;
  auto outcome = RunBench(workload_, config_, out);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(outcome->sweep.points.size(), 3u);
  EXPECT_FALSE(outcome->sweep.bracketed);
  EXPECT_DOUBLE_EQ(outcome->sweep.best, 80);  // 20 -> 40 -> 80, all met
  const nlohmann::json j = Read(config_.save_json);
  EXPECT_EQ(j["sweep"], "rate");
  EXPECT_EQ(j["points"].size(), 3u);
  EXPECT_EQ(j["runs"].size(), 3u);
  EXPECT_DOUBLE_EQ(j["goodput_rate"].get<double>(), 80);
  EXPECT_NE(out.str().find("not bracketed"), std::string::npos);
  auto panels = PanelsFromResults({j}, {"sweep"}, 0.9);
  ASSERT_TRUE(panels.ok());
  ASSERT_FALSE((*panels)[0].curves.empty());
  EXPECT_EQ((*panels)[0].curves[0].points.size(), 3u);  // attainment vs rate
  EXPECT_EQ((*panels)[1].curves[0].points.size(), 8u);  // TTFT CDF of the goodput run
  EXPECT_TRUE(PlotResultFiles({config_.save_json}, (dir_ / "sweep.svg").string(), 0.9).ok());
}

// --isolate-prefix-cache: the warm-up and each sweep point carry their own cache_salt, so a
// server's prefix cache cannot serve one point from what an earlier point left there.
TEST_F(BenchmarkTest, IsolatedRunsSendTheirOwnCacheSalt) {
  config_.sweep = "rate";
  config_.sweep_options.start = 20;
  config_.sweep_options.max_points = 2;
  config_.warmup_requests = 2;
  config_.isolate_prefix_cache = "iso";
  std::ostringstream out;
  ASSERT_TRUE(RunBench(workload_, config_, out).ok());
  const std::map<std::string, int> expected{{"iso-0", 2}, {"iso-1", 8}, {"iso-2", 8}};
  EXPECT_EQ(server_.cache_salts(), expected);

  testing::ScriptedServer plain;  // off: no salt at all
  config_.run.endpoint.port = plain.port();
  config_.isolate_prefix_cache.clear();
  ASSERT_TRUE(RunBench(workload_, config_, out).ok());
  EXPECT_TRUE(plain.cache_salts().empty());
}

TEST_F(BenchmarkTest, SloScaleSweepAndSetupErrors) {
  config_.sweep = "slo-scale";
  config_.sweep_options.max_points = 16;
  // Targets of a few milliseconds: small scales make even an instant server miss its TTFT.
  config_.slo.fallback = *SloTargets::Parse({"ttft:10"});
  config_.slo.classes["interactive"] = *SloTargets::Parse({"ttft:10"});
  std::ostringstream out;
  auto outcome = RunBench(workload_, config_, out);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_TRUE(outcome->sweep.bracketed);
  EXPECT_GT(outcome->sweep.best, 0);
  EXPECT_NE(out.str().find("tightest SLO scale"), std::string::npos);
  config_.slo = SloPolicy{};
  EXPECT_FALSE(RunBench(workload_, config_, out).ok());  // a sweep needs targets
  config_.slo.fallback = *SloTargets::Parse({"ttft:5"});
  config_.sweep = "sideways";
  EXPECT_FALSE(RunBench(workload_, config_, out).ok());
}

}  // namespace
}  // namespace tandem::loadgen
