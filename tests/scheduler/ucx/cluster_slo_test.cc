// The SLO policy in a real cluster: `tandem profile` fits the tiny model on this machine, then a
// `tandem serve` 2P+1D cluster places with it (--policy slo --admission slo):
//   - an interactive request that arrives while one prefill node works on a long prompt goes to
//     the other prefill node;
//   - a request whose TTFT target no node can meet gets 429 slo_unattainable with Retry-After,
//     and the requests beside it are served;
//   - a request with a reachable target is served and reports slo_met in its usage.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "slo/latency_model.h"
#include "tests/frontend/serving_test_util.h"
#include "tests/scheduler/ucx/serve_process.h"

namespace tandem {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::HttpReply;
using testing::ServeProcess;
using testing::TestHttpClient;

std::vector<json> ReadJsonLines(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(json::parse(line, nullptr, false));
  }
  return out;
}

TEST(ClusterSloTest, PlacesByPredictedTtftAndRefusesWhatNoNodeCanMeet) {
  testing::SuiteDir suite("tandem_cluster_slo", 5);
  ASSERT_TRUE(suite.status().ok()) << suite.status().ToString();
  const std::string profile = suite.dir() + "/profile.json";
  const std::string profile_cmd = "timeout 300 " + testing::Tandem() + " profile --model " + suite.model() + " --out " +
                                  profile +
                                  " --threads 1 --max-num-batched-tokens 64 --max-num-seqs 4 --max-context 256"
                                  " --repeats 1 > " +
                                  suite.dir() + "/profile.log 2>&1";
  ASSERT_EQ(std::system(profile_cmd.c_str()), 0) << testing::ReadFile(suite.dir() + "/profile.log");
  auto loaded = LoadLatencyProfile(profile);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  if (loaded->transfer.empty()) GTEST_SKIP() << "the profile has no transfer phase (UCX unavailable)";

  const std::string log = suite.dir() + "/requests.jsonl";
  ServeProcess serve;
  std::string error;
  // A 16-token step budget: the long prompt takes over a hundred steps on its prefill node.
  ASSERT_TRUE(serve.Start(suite.model(), 2, 1, "tcp,self", suite.dir() + "/run", &error,
                          {"--policy", "slo", "--latency-profile", profile, "--admission", "slo",
                           "--max-num-batched-tokens", "16", "--request-log", log}))
      << error;

  // The long prompt, in the background.
  std::thread long_request([&] {
    TestHttpClient c(serve.port(), seconds(120));
    std::vector<int> ids(1800, 42);
    const HttpReply r = c.Post("/v1/completions", {{"model", "tiny"}, {"prompt", ids}, {"max_tokens", 1}});
    EXPECT_EQ(r.status, 200) << r.body;
  });
  std::this_thread::sleep_for(milliseconds(20));
  TestHttpClient c(serve.port(), seconds(60));
  const HttpReply interactive = c.Post(
      "/v1/completions", {{"model", "tiny"}, {"prompt", "hello"}, {"max_tokens", 4}, {"slo", {{"ttft_ms", 60000}}}});
  EXPECT_EQ(interactive.status, 200) << interactive.body;
  EXPECT_EQ(interactive.json()["usage"]["slo_met"], true) << interactive.body;

  // No node answers within 1 us: refused at once, and it says when to come back.
  const HttpReply refused = c.Post(
      "/v1/completions", {{"model", "tiny"}, {"prompt", "hello"}, {"max_tokens", 4}, {"slo", {{"ttft_ms", 0.001}}}});
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(refused.json()["error"]["code"], "slo_unattainable") << refused.body;
  EXPECT_EQ(refused.headers.count("retry-after"), 1u);
  // Without targets nothing is refused.
  EXPECT_EQ(c.Post("/v1/completions", {{"model", "tiny"}, {"prompt", "hi"}, {"max_tokens", 2}}).status, 200);
  long_request.join();
  serve.Stop();

  const std::vector<json> records = ReadJsonLines(log);
  const json* long_record = nullptr;
  const json* short_record = nullptr;
  for (const json& r : records) {
    if (r["input_length"] == 1800) long_record = &r;
    if (r["slo_ttft_ms"] == 60000) short_record = &r;
  }
  ASSERT_TRUE(long_record && short_record) << records.size() << " records in " << log;
  const double long_prefill_end_ms =
      long_record->at("timestamp").get<double>() + long_record->at("stamps_ms").at("prefill_end").get<double>();
  if (long_prefill_end_ms < short_record->at("timestamp").get<double>()) {
    GTEST_SKIP() << "this machine prefilled the long prompt before the second request arrived";
  }
  EXPECT_NE(long_record->at("prefill_node"), short_record->at("prefill_node"))
      << "the interactive request waited behind the long prompt";
}

}  // namespace
}  // namespace tandem
