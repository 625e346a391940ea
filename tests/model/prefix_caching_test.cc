// Prefix caching keeps the tokens: requests that share prefixes (a common system prompt, exact
// repeats, a conversation's next turn = previous prompt + answer + new message) produce, greedy
// and seeded, the same output with the cache as without, and skip computing the shared part.
// Under a pool too small for the workload (growth, preemption, eviction) the outputs still
// match, and every block comes back.
#include <random>

#include "tests/model/model_harness.h"

namespace tandem::testing {
namespace {

constexpr int32_t kBlockSize = 4;

struct Job {
  std::vector<int32_t> prompt;
  std::string salt;
  uint64_t seed = 0;
};

struct RunResult {
  std::vector<std::vector<int32_t>> outputs;
  std::vector<int32_t> cached_tokens;
  PrefixCacheStats stats;
  int64_t preemptions = 0;
};

class PrefixCachingTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Runs `waves` of jobs: each wave's jobs are added together and run to the end before the next
  // wave (so later waves find what earlier ones cached). A job whose prompt is empty is the next
  // turn of job `turn_of`: its prompt is that job's prompt + output + a new message.
  RunResult Run(const std::vector<std::vector<Job>>& waves, bool caching, float temperature, int32_t num_blocks,
                int max_tokens = 10) {
    auto h = ModelHarness::Load(GoldenDir(GetParam()), num_blocks, kBlockSize);
    EXPECT_NE(h, nullptr);
    if (h == nullptr) return {};
    EngineOptions options{8, 24};  // a small budget: prompts are chunked, mixed with decodes
    options.enable_prefix_caching = caching;
    Engine engine(*h->transformer, *h->cache, options);
    RunResult result;
    int64_t id = 0;
    for (const auto& wave : waves) {
      const int64_t first = id;
      for (const Job& job : wave) {
        Request r;
        r.id = id++;
        r.prompt = job.prompt;
        r.cache_salt = job.salt;
        r.params.temperature = temperature;
        r.params.top_p = 0.9f;
        r.params.seed = job.seed;
        r.params.max_tokens = max_tokens;
        r.params.ignore_eos = true;
        EXPECT_TRUE(engine.Add(std::move(r)).ok());
      }
      for (int steps = 0; engine.HasWork() && steps < 10'000; ++steps) {
        auto out = engine.Step();
        EXPECT_TRUE(out.ok()) << out.status().ToString();
      }
      EXPECT_FALSE(engine.HasWork());
      for (int64_t i = first; i < id; ++i) {
        auto done = engine.TakeFinished(i);
        EXPECT_NE(done, nullptr);
        if (done == nullptr) continue;
        EXPECT_EQ(done->finish_reason, FinishReason::kLength) << done->status.ToString();
        result.outputs.push_back(done->output);
        result.cached_tokens.push_back(done->record.cached_tokens);
      }
    }
    result.stats = engine.scheduler().prefix_cache_stats();
    result.preemptions = engine.scheduler().num_preemptions();
    EXPECT_EQ(h->cache->pool().num_free(), num_blocks);  // nothing leaked: cached blocks are free
    return result;
  }

  std::vector<int32_t> Random(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % 250) + 3;  // every golden vocab holds these
    return t;
  }
  std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }
};

TEST_P(PrefixCachingTest, SharedPrefixesGiveTheSameTokensAndSkipTheirCompute) {
  for (const float temperature : {0.0f, 0.8f}) {
    SCOPED_TRACE(temperature == 0 ? "greedy" : "seeded");
    const auto system = Random(18, 1);  // 4 full blocks and 2 tokens
    std::vector<std::vector<Job>> waves = {
        {{Concat(system, Random(5, 2)), "", 11}},
        // Together: both share the system prompt cached by wave 0; one repeats wave 0 exactly.
        {{Concat(system, Random(7, 3)), "", 12}, {Concat(system, Random(5, 2)), "", 13}},
        // Another tenant: its salt keeps it from the cache.
        {{Concat(system, Random(5, 2)), "tenant-b", 14}},
    };
    const RunResult off = Run(waves, false, temperature, 256);
    const RunResult on = Run(waves, true, temperature, 256);
    ASSERT_EQ(on.outputs.size(), 4u);
    EXPECT_EQ(on.outputs, off.outputs);
    EXPECT_EQ(on.cached_tokens[0], 0);
    EXPECT_EQ(on.cached_tokens[1], 16);  // the system prompt's full blocks
    EXPECT_EQ(on.cached_tokens[2], 20);  // the repeat: all full blocks but the one with the last token
    EXPECT_EQ(on.cached_tokens[3], 0);   // another salt
    EXPECT_EQ(on.stats.hit_tokens, 36);
    EXPECT_EQ(on.stats.queried_tokens, 23 + 25 + 23 + 23);
    for (int32_t c : off.cached_tokens) EXPECT_EQ(c, 0);
  }
}

TEST_P(PrefixCachingTest, TheNextTurnOfAConversationReusesPromptAndAnswer) {
  for (const float temperature : {0.0f, 0.8f}) {
    SCOPED_TRACE(temperature == 0 ? "greedy" : "seeded");
    const auto turn1 = Random(13, 5);
    // Turn 2's prompt needs turn 1's answer: take it from a run without the cache.
    const RunResult first = Run({{{turn1, "", 21}}}, false, temperature, 256);
    ASSERT_EQ(first.outputs.size(), 1u);
    const auto turn2 = Concat(Concat(turn1, first.outputs[0]), Random(6, 6));
    const std::vector<std::vector<Job>> waves = {{{turn1, "", 21}}, {{turn2, "", 22}}};
    const RunResult off = Run(waves, false, temperature, 256);
    const RunResult on = Run(waves, true, temperature, 256);
    EXPECT_EQ(on.outputs, off.outputs);
    // Turn 1 filled 13 + 10 tokens, 22 with K/V computed (the last answer token's is not): its
    // five full blocks, prompt and answer, are turn 2's start.
    EXPECT_EQ(on.cached_tokens[1], 20);
  }
}

// A pool that holds about two requests at once: sequences grow, get preempted and recomputed
// (hitting their own cached blocks), cached blocks get evicted and reused. The outputs match a
// big pool without the cache; eviction never took a block a running sequence reads.
TEST_P(PrefixCachingTest, ATinyPoolUnderPressureKeepsTheTokens) {
  const auto system = Random(10, 9);
  std::vector<Job> wave;
  for (int i = 0; i < 8; ++i) {
    wave.push_back({Concat(i % 2 ? system : Random(10, 40 + i), Random(3 + i, 60 + i)), "", 100u + i});
  }
  const std::vector<std::vector<Job>> waves = {wave, wave};
  const RunResult reference = Run(waves, false, 0.8f, 512, 24);
  const RunResult tiny = Run(waves, true, 0.8f, 20, 24);
  EXPECT_EQ(tiny.outputs, reference.outputs);
  EXPECT_GT(tiny.preemptions, 0);  // the pool really was too small
  EXPECT_GT(tiny.stats.hit_tokens, 0);
}

INSTANTIATE_TEST_SUITE_P(Golden, PrefixCachingTest, ::testing::Values("llama3_gqa", "qwen2_bias", "mistral_mha"));

}  // namespace
}  // namespace tandem::testing
