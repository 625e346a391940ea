// A short `tandem bench` against real servers on 127.0.0.1: the colocated `tandem worker` and a
// `tandem serve` 1P+1D cluster (real node processes, KV over UCX), through the library call the
// command makes, then the command itself (its JSON, CSV and plot).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "loadgen/benchmark.h"
#include "loadgen/plot_results.h"
#include "tests/scheduler/ucx/serve_process.h"

namespace tandem::loadgen {
namespace {

using tandem::testing::ServeProcess;
using tandem::testing::SuiteDir;
using tandem::testing::Tandem;

class BenchProcessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new SuiteDir("bench_process", 11); }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  // 12 random requests of 24 prompt tokens and 6 output tokens (EOS ignored) at 20 req/s.
  static BenchOutcome Bench(uint16_t port, const std::string& endpoint, std::string* table) {
    WorkloadOptions wo;
    wo.num_prompts = 12;
    wo.random_input_len = 24;
    wo.random_output_len = 6;
    wo.seed = 3;
    auto workload = LoadWorkload(wo);
    EXPECT_TRUE(workload.ok());
    BenchConfig c;
    c.run.endpoint.port = port;
    c.run.endpoint.path = endpoint;
    c.run.model = "tiny";
    c.run.ignore_eos = true;
    c.run.request_timeout_s = 60;
    c.arrivals.rate = 20;
    c.arrivals.seed = 3;
    c.slo.fallback = *SloTargets::Parse({"ttft:60000", "tpot:60000"});
    c.info.request_rate = 20;
    std::ostringstream out;
    auto outcome = RunBench(*workload, c, out);
    EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
    *table = out.str();
    return outcome.ok() ? *outcome : BenchOutcome{};
  }

  static void ExpectAllServed(const BenchOutcome& o, const std::string& table) {
    EXPECT_EQ(o.summary.completed, 12) << table;
    EXPECT_EQ(o.summary.failed, 0) << table;
    EXPECT_EQ(o.summary.total_output, 12 * 6);
    EXPECT_EQ(o.summary.total_input, 12 * 24);  // token-id prompts: exact, and usage agrees
    EXPECT_GT(o.summary.ttft.median_ms, 0);
    EXPECT_GT(o.summary.tpot.median_ms, 0);
    ASSERT_TRUE(o.summary.attainment.has_value());
    EXPECT_DOUBLE_EQ(o.summary.attainment->joint, 1.0);
    for (const RequestResult& r : o.results) {
      EXPECT_EQ(r.chunk_s.size(), 6u) << r.error;
      EXPECT_EQ(r.output_tokens, 6);
    }
    EXPECT_NE(table.find("Serving Benchmark Result"), std::string::npos);
  }

  static SuiteDir* dir_;
};

SuiteDir* BenchProcessTest::dir_ = nullptr;

TEST_F(BenchProcessTest, ColocatedWorker) {
  ASSERT_TRUE(dir_->status().ok()) << dir_->status().ToString();
  ServeProcess worker;
  std::string error;
  const std::string request_log = dir_->dir() + "/worker-requests.jsonl";
  ASSERT_TRUE(worker.StartCommand({Tandem(), "worker", "--model", dir_->model(), "--served-model-name", "tiny",
                                   "--port", "0", "--threads", "1", "--request-log", request_log},
                                  "tcp,self", dir_->dir() + "/worker", &error))
      << error;
  std::string table;
  ExpectAllServed(Bench(worker.port(), "/v1/completions", &table), table);
  worker.Stop();
  // The worker's request log is a trace of what it served: 12 requests of 24 + 6 tokens.
  WorkloadOptions replay;
  replay.dataset_name = "trace";
  replay.dataset_path = request_log;
  replay.num_prompts = 0;
  auto trace = LoadWorkload(replay);
  ASSERT_TRUE(trace.ok()) << trace.status().ToString();
  ASSERT_EQ(trace->requests.size(), 12u);
  for (const BenchRequest& r : trace->requests) {
    EXPECT_EQ(r.prompt_len, 24);
    EXPECT_EQ(r.output_len, 6);
  }
}

TEST_F(BenchProcessTest, DisaggregatedCluster) {
  ASSERT_TRUE(dir_->status().ok());
  ServeProcess serve;
  std::string error;
  const std::string request_log = dir_->dir() + "/serve-requests.jsonl";
  ASSERT_TRUE(serve.Start(dir_->model(), 1, 1, "tcp,self", dir_->dir() + "/serve", &error,
                          {"--served-model-name", "tiny", "--request-log", request_log}))
      << error;
  std::string table;
  ExpectAllServed(Bench(serve.port(), "/v1/completions", &table), table);
  serve.Stop();
  // The router's request log: one line per request, with its nodes and the KV it moved.
  std::istringstream lines(tandem::testing::ReadFile(request_log));
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j["finish_reason"], "length");
    EXPECT_EQ(j["prefill_node"], "prefill-0");
    EXPECT_EQ(j["decode_node"], "decode-0");
    EXPECT_GT(j["kv_bytes"].get<int64_t>(), 0);
    EXPECT_FALSE(j["stamps_ms"]["transfer_end"].is_null());
  }
  EXPECT_EQ(n, 12);
}

// The command as a user runs it: chat endpoint with a tokenizer, a synthetic preset clipped to
// the model, a saved result, the CSV, and the plot of the result.
TEST_F(BenchProcessTest, TheCommandWritesItsResultCsvAndPlot) {
  ASSERT_TRUE(dir_->status().ok());
  ServeProcess worker;
  std::string error;
  ASSERT_TRUE(worker.StartCommand({Tandem(), "worker", "--model", dir_->model(), "--port", "0", "--threads", "1"},
                                  "tcp,self", dir_->dir() + "/worker2", &error))
      << error;
  const std::string out = dir_->dir() + "/out";
  const std::string cmd = Tandem() + " bench --port " + std::to_string(worker.port()) +
                          " --endpoint /v1/chat/completions --tokenizer " + dir_->model() +
                          " --dataset-name synthetic --synthetic-preset code --max-model-len 160 --num-prompts 6"
                          " --request-rate 10 --goodput ttft:60000 tpot:60000 --metric-percentiles 50,90"
                          " --save-result --result-dir " +
                          out + " --result-filename r.json --csv " + out + "/r.csv --label worker > " + out +
                          ".txt 2>&1";
  std::filesystem::create_directories(out);
  const int rc = std::system(cmd.c_str());
  const std::string printed = tandem::testing::ReadFile(out + ".txt");
  ASSERT_EQ(WEXITSTATUS(rc), 0) << printed;
  EXPECT_NE(printed.find("P90 TTFT (ms):"), std::string::npos) << printed;
  const nlohmann::json result = nlohmann::json::parse(tandem::testing::ReadFile(out + "/r.json"));
  EXPECT_EQ(result["completed"], 6);
  EXPECT_EQ(result["requests"].size(), 6u);
  EXPECT_EQ(result["label"], "worker");
  EXPECT_TRUE(result.contains("p90_ttft_ms"));
  const std::string csv = tandem::testing::ReadFile(out + "/r.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);
  EXPECT_TRUE(PlotResultFiles({out + "/r.json"}, out + "/r.png", 0.9).ok());
  EXPECT_TRUE(std::filesystem::file_size(out + "/r.png") > 1000);
  // Setup errors exit non-zero with a message: a missing data set, an unreachable server.
  EXPECT_NE(std::system((Tandem() + " bench --port " + std::to_string(worker.port()) +
                         " --dataset-name custom --dataset-path /nonexistent.jsonl > /dev/null 2>&1")
                            .c_str()),
            0);
  worker.Stop();
  EXPECT_NE(
      std::system(
          (Tandem() + " bench --port " + std::to_string(worker.port()) + " --num-prompts 2 > /dev/null 2>&1").c_str()),
      0);
}

}  // namespace
}  // namespace tandem::loadgen
