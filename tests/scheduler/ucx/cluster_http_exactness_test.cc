// `tandem serve` over HTTP, end to end, for UCX_TLS in {tcp,self, sm,self} and clusters 1P+1D
// and 2P+2D: 20 concurrent /v1/completions (token-id prompts of 1..60 tokens, 10 greedy and 10
// seeded top-p) must each equal single-process `tandem generate` with the same parameters. The
// comparison is on text: the reference ids are detokenized exactly as the router does
// (IncrementalDecoder, prompt as context, special tokens skipped), so equal ids give equal text,
// and with a random tiny model different ids practically never do; usage.completion_tokens is
// checked too. One configuration also runs 64 concurrent streams and checks that every one ends
// properly and that the decode nodes' free KV blocks (GET /v1/load) return to their start value.
// Labelled `ucx`; every wait is bounded and the serve process group is always killed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "model/make_model.h"
#include "tests/frontend/serving_test_util.h"
#include "tests/scheduler/ucx/serve_process.h"
#include "tokenizer/incremental_decoder.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::HttpReply;
using testing::ServeProcess;
using testing::Tandem;
using testing::TestHttpClient;

constexpr int kNumPrompts = 20;
constexpr int kMaxTokens = 16;

struct Case {
  std::vector<int32_t> prompt;
  bool greedy = true;
  int seed = 0;
};

// Prompt i has 1 + 3i tokens (1..58) plus i % 3 (so lengths reach 60), drawn from ordinary ids.
std::vector<Case> MakeCases() {
  std::vector<Case> cases;
  for (int i = 0; i < kNumPrompts; ++i) {
    Case c;
    const int len = 1 + 3 * i + i % 3;
    for (int j = 0; j < len; ++j) c.prompt.push_back(300 + (i * 7919 + j * 104729) % 20000);
    c.greedy = i < kNumPrompts / 2;
    c.seed = i;
    cases.push_back(std::move(c));
  }
  return cases;
}

std::string JoinIds(const std::vector<int32_t>& ids, const char* sep) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? sep : "") + std::to_string(ids[i]);
  return s;
}

class ClusterHttpExactnessTest : public ::testing::TestWithParam<std::tuple<std::string, int>> {
 protected:
  static void SetUpTestSuite() {
    suite_ = new testing::SuiteDir("tandem_cluster_http", 11);
    ASSERT_TRUE(suite_->status().ok()) << suite_->status().ToString();
    auto tok = Tokenizer::FromModelDir(suite_->model());
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    tokenizer_ = tok->release();
    cases_ = new std::vector<Case>(MakeCases());
    expected_ = new std::vector<std::string>(kNumPrompts);
    // The references do not depend on the cluster: run them once, all at once (bounded).
    std::vector<FILE*> pipes;
    for (const Case& c : *cases_) {
      std::string cmd = "timeout -k 5 120 " + Tandem() + " generate --model " + suite_->model() + " --prompt-ids " +
                        JoinIds(c.prompt, ",") + " --max-tokens " + std::to_string(kMaxTokens) +
                        " --ignore-eos --print-ids --threads 1 2>/dev/null";
      cmd += c.greedy ? " --temperature 0" : " --temperature 0.8 --top-p 0.9 --seed " + std::to_string(c.seed);
      pipes.push_back(::popen(cmd.c_str(), "r"));
      ASSERT_NE(pipes.back(), nullptr);
    }
    for (int i = 0; i < kNumPrompts; ++i) {
      std::string out;
      std::array<char, 4096> buf;
      size_t n;
      while ((n = std::fread(buf.data(), 1, buf.size(), pipes[i])) > 0) out.append(buf.data(), n);
      ASSERT_EQ(::pclose(pipes[i]), 0) << "generate for prompt " << i;
      std::vector<int32_t> ids;
      std::istringstream in(out);
      for (int32_t id; in >> id;) ids.push_back(id);
      ASSERT_EQ(ids.size(), static_cast<size_t>(kMaxTokens)) << out;
      IncrementalDecoder dec(*tokenizer_, /*skip_special_tokens=*/true, (*cases_)[i].prompt);
      std::string text;
      for (int32_t id : ids) text += dec.Step(id);
      text += dec.Flush();
      (*expected_)[i] = text;
    }
  }
  static void TearDownTestSuite() {
    delete suite_;
    delete tokenizer_;
    delete cases_;
    delete expected_;
  }

  // Every reply equals its reference; in round 2 with the cached prefix reported in usage.
  static void CheckReplies(const std::vector<HttpReply>& replies, int round, ServeProcess& serve);

  static testing::SuiteDir* suite_;
  static Tokenizer* tokenizer_;
  static std::vector<Case>* cases_;
  static std::vector<std::string>* expected_;
};
testing::SuiteDir* ClusterHttpExactnessTest::suite_ = nullptr;
Tokenizer* ClusterHttpExactnessTest::tokenizer_ = nullptr;
std::vector<Case>* ClusterHttpExactnessTest::cases_ = nullptr;
std::vector<std::string>* ClusterHttpExactnessTest::expected_ = nullptr;

// The decode nodes' free KV blocks as the router last heard them; -1 when unknown.
int FreeBlocks(uint16_t port) {
  TestHttpClient c(port, seconds(10));
  const HttpReply r = c.Get("/v1/load");
  if (r.status != 200) return -1;
  const json j = r.json();
  return j.is_object() && j.contains("num_free_kv_blocks") ? j["num_free_kv_blocks"].get<int>() : -1;
}

// The prefill nodes as the router sees them: blocks their prefix caches hold (KV-aware routing's
// view) and prompt tokens queued or placed since their last report; {-1, -1} when unknown.
struct PrefillView {
  int64_t cached_blocks = -1;
  int64_t queued_tokens = -1;
};
PrefillView Prefills(uint16_t port) {
  TestHttpClient c(port, seconds(10));
  const HttpReply r = c.Get("/v1/load");
  const json j = r.status == 200 ? r.json() : json();
  if (!j.is_object() || !j.contains("nodes")) return {};
  PrefillView v{0, 0};
  for (const json& n : j["nodes"]) {
    if (n["role"] != "prefill") continue;
    v.cached_blocks += n["cached_kv_blocks"].get<int64_t>();
    v.queued_tokens += n["queued_tokens"].get<int64_t>();
  }
  return v;
}

// The sum of a Prometheus family's samples on the router's /metrics (0 when absent).
double MetricSum(uint16_t port, const std::string& name) {
  TestHttpClient c(port, seconds(10));
  std::istringstream in(c.Get("/metrics").body);
  double total = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) == 0 || line.rfind(name + " ", 0) == 0)
      total += std::stod(line.substr(line.rfind(' ')));
  }
  return total;
}

TEST_P(ClusterHttpExactnessTest, CompletionsEqualSingleProcessGenerate) {
  const auto& [tls, nodes] = GetParam();
  const std::string run_dir = suite_->dir() + "/run-" + std::to_string(nodes) + "-" + tls.substr(0, tls.find(','));
  ServeProcess serve;
  std::string error;
  ASSERT_TRUE(serve.Start(suite_->model(), nodes, nodes, tls, run_dir, &error)) << error;

  std::vector<HttpReply> replies(kNumPrompts);
  // Round 2 sends every prompt again: the prefix caches (on by default) hold their full blocks on
  // the prefill node that computed them (not computed again) and on the decode node that decoded
  // them (only the block of the last prompt token is sent); KV-aware routing finds both; the text
  // must not change. It waits until the router has heard of every cached block (cache events ride
  // the load reports) and sends one prompt at a time: sent together, least-loaded may rightly put a
  // short cached prompt on the idle node when its own node is busier by more than its history.
  int64_t blocks_to_hit = 0;
  for (const Case& c : *cases_) blocks_to_hit += (static_cast<int64_t>(c.prompt.size()) - 1) / 16;
  const auto send = [&](int i) {
    const Case& c = (*cases_)[i];
    json body = {{"prompt", c.prompt}, {"max_tokens", kMaxTokens}, {"ignore_eos", true}};
    if (c.greedy) {
      body["temperature"] = 0;
    } else {
      body["temperature"] = 0.8;
      body["top_p"] = 0.9;
      body["seed"] = c.seed;
    }
    TestHttpClient client(serve.port(), seconds(60));
    replies[i] = client.Post("/v1/completions", body);
  };
  // Polls the router's view of the prefill nodes until `done` holds or `timeout` passes.
  const auto wait_for = [&](auto done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done(Prefills(serve.port())) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(milliseconds(20));
    return done(Prefills(serve.port()));
  };
  double kv_bytes[3] = {0, 0, 0};
  for (const int round : {1, 2}) {
    SCOPED_TRACE("round " + std::to_string(round));
    if (round == 1) {
      std::vector<std::thread> threads;
      for (int i = 0; i < kNumPrompts; ++i) threads.emplace_back(send, i);
      for (auto& t : threads) t.join();
    } else {
      ASSERT_TRUE(wait_for([&](const PrefillView& v) { return v.cached_blocks >= blocks_to_hit; }, seconds(20)))
          << "the router never heard of the cached blocks";
      for (int i = 0; i < kNumPrompts; ++i) {
        // The previous prompt is done; its tokens leave the router's view with the next report.
        wait_for([](const PrefillView& v) { return v.queued_tokens == 0; }, seconds(10));
        send(i);
      }
    }
    ASSERT_NO_FATAL_FAILURE(CheckReplies(replies, round, serve));
    kv_bytes[round] = MetricSum(serve.port(), "tandem:kv_transfer_bytes_sum");
  }
  const double first = kv_bytes[1], second = kv_bytes[2] - kv_bytes[1];
  std::printf("[ prefix cache ] KV bytes moved: round 1 %.0f, round 2 %.0f\n", first, second);
  EXPECT_GT(first, 0);
  EXPECT_LT(second, 0.6 * first);  // 20 blocks (the last of each prompt) of the 48 they fill
  serve.Stop();
}

void ClusterHttpExactnessTest::CheckReplies(const std::vector<HttpReply>& replies, int round, ServeProcess& serve) {
  for (int i = 0; i < kNumPrompts; ++i) {
    const HttpReply& r = replies[i];
    ASSERT_EQ(r.status, 200) << "prompt " << i << ": " << r.error << r.body << "\nserve stderr:\n"
                             << serve.stderr_text();
    const json j = r.json();
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["choices"][0]["text"].get<std::string>(), (*expected_)[i])
        << "prompt " << i << " (" << ((*cases_)[i].greedy ? "greedy" : "seeded") << ", " << (*cases_)[i].prompt.size()
        << " tokens)";
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length") << r.body;
    EXPECT_EQ(j["usage"]["completion_tokens"], kMaxTokens) << r.body;
    EXPECT_EQ(j["usage"]["prompt_tokens"], (*cases_)[i].prompt.size()) << r.body;
    // Every full block before the last token, from the cache the second time.
    const int64_t cached = j["usage"].contains("prompt_tokens_details")
                               ? j["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>()
                               : 0;
    const int64_t full = (static_cast<int64_t>((*cases_)[i].prompt.size()) - 1) / 16 * 16;
    EXPECT_EQ(cached, round == 1 ? 0 : full) << "prompt " << i << ": " << r.body;
  }
}

INSTANTIATE_TEST_SUITE_P(TlsAndSize, ClusterHttpExactnessTest,
                         ::testing::Combine(::testing::Values(std::string("tcp,self"), std::string("sm,self")),
                                            ::testing::Values(1, 2)),
                         [](const auto& info) {
                           std::string tls = std::get<0>(info.param);
                           return tls.substr(0, tls.find(',')) + "_" + std::to_string(std::get<1>(info.param)) + "P" +
                                  std::to_string(std::get<1>(info.param)) + "D";
                         });

// 64 concurrent streams with max_tokens 1..40 on 2P+2D (tcp,self): each ends with a
// finish_reason chunk and [DONE], and afterwards the decode nodes hold no reservation.
TEST_F(ClusterHttpExactnessTest, ConcurrentStreamsFinishAndFreeTheirBlocks) {
  ServeProcess serve;
  std::string error;
  ASSERT_TRUE(serve.Start(suite_->model(), 2, 2, "tcp,self", suite_->dir() + "/run-streams", &error)) << error;
  const int start_free = FreeBlocks(serve.port());
  ASSERT_GT(start_free, 0);

  constexpr int kStreams = 64;
  std::vector<HttpReply> replies(kStreams);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kStreams; ++i) {
      threads.emplace_back([&, i] {
        const Case& c = (*cases_)[i % kNumPrompts];
        const json body = {{"prompt", c.prompt}, {"max_tokens", 1 + i % 40},
                           {"ignore_eos", true}, {"temperature", 0.8},
                           {"seed", i},          {"stream", true}};
        TestHttpClient client(serve.port(), seconds(60));
        replies[i] = client.Post("/v1/completions", body);
      });
    }
    for (auto& t : threads) t.join();
  }
  for (int i = 0; i < kStreams; ++i) {
    const HttpReply& r = replies[i];
    ASSERT_EQ(r.status, 200) << "stream " << i << ": " << r.error << r.body;
    std::vector<std::string> events;
    std::istringstream in(r.body);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind("data: ", 0) == 0) events.push_back(line.substr(6));
    }
    ASSERT_GE(events.size(), 2u) << r.body;
    EXPECT_EQ(events.back(), "[DONE]") << "stream " << i;
    int finishes = 0;
    for (size_t e = 0; e + 1 < events.size(); ++e) {
      const json j = json::parse(events[e], nullptr, false);
      ASSERT_TRUE(j.is_object()) << events[e];
      const json& fr = j["choices"][0]["finish_reason"];
      if (!fr.is_null()) {
        ++finishes;
        EXPECT_EQ(fr, "length") << "stream " << i;
      }
    }
    EXPECT_EQ(finishes, 1) << "stream " << i << ":\n" << r.body;
  }
  // Nodes report their load every 100 ms; allow 10 s for the freed blocks to show.
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  int free_now = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    free_now = FreeBlocks(serve.port());
    if (free_now == start_free) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(free_now, start_free);
  serve.Stop();
}

}  // namespace
}  // namespace tandem
