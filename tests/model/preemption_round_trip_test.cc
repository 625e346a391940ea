// Preemption with recompute keeps the tokens: requests run through an Engine whose KV pool is
// too small for all of them at once (kGrow: sequences are preempted and recomputed) produce the
// same output, greedy and seeded, as the same requests in a pool that holds them all (kReserve).
#include <random>

#include "tests/model/model_harness.h"

namespace tandem::testing {
namespace {

struct Outputs {
  std::vector<std::vector<int32_t>> tokens;
  int64_t preemptions = 0;
};

class PreemptionRoundTripTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Five requests with a shared prompt length (so their growth collides), alternating priority.
  Outputs Run(int32_t num_blocks, KvAllocation allocation, float temperature) {
    auto h = ModelHarness::Load(GoldenDir(GetParam()), num_blocks, /*block_size=*/4);
    EXPECT_NE(h, nullptr);
    if (h == nullptr) return {};
    EngineOptions options{8, 16};  // a small budget: recomputes are chunked among decodes
    options.kv_allocation = allocation;
    Engine engine(*h->transformer, *h->cache, options);
    const int kRequests = 5;
    std::mt19937 rng(7);
    for (int i = 0; i < kRequests; ++i) {
      Request r;
      r.id = i;
      for (int t = 0; t < 9 + i; ++t) r.prompt.push_back(static_cast<int32_t>(rng() % h->vocab()));
      r.params.temperature = temperature;
      r.params.top_p = 0.95f;
      r.params.seed = 100 + i;
      r.params.max_tokens = 24;
      r.params.ignore_eos = true;
      r.record.slo.priority = i % 2;
      EXPECT_TRUE(engine.Add(std::move(r)).ok());
    }
    for (int steps = 0; engine.HasWork() && steps < 10'000; ++steps) {
      auto out = engine.Step();
      EXPECT_TRUE(out.ok()) << out.status().ToString();
      EXPECT_TRUE(engine.last_step_ran());  // nothing waits forever for memory
    }
    EXPECT_FALSE(engine.HasWork());
    Outputs result;
    for (int i = 0; i < kRequests; ++i) {
      auto done = engine.TakeFinished(i);
      EXPECT_NE(done, nullptr);
      if (done == nullptr) continue;
      EXPECT_EQ(done->finish_reason, FinishReason::kLength) << done->status.ToString();
      EXPECT_EQ(done->record.token_us.size(), 24u);
      result.tokens.push_back(done->output);
    }
    result.preemptions = engine.scheduler().num_preemptions();
    EXPECT_EQ(h->cache->pool().num_free(), num_blocks);  // nothing leaked
    return result;
  }
};

TEST_P(PreemptionRoundTripTest, GreedyOutputAfterPreemptionEqualsUninterrupted) {
  const Outputs reference = Run(256, KvAllocation::kReserve, 0.0f);
  // Each request needs up to 10 blocks over its life; 16 hold one and a half of them.
  const Outputs preempted = Run(16, KvAllocation::kGrow, 0.0f);
  EXPECT_GT(preempted.preemptions, 0);
  EXPECT_EQ(reference.preemptions, 0);
  EXPECT_EQ(preempted.tokens, reference.tokens);
}

TEST_P(PreemptionRoundTripTest, SeededOutputAfterPreemptionEqualsUninterrupted) {
  const Outputs reference = Run(256, KvAllocation::kReserve, 0.9f);
  const Outputs preempted = Run(16, KvAllocation::kGrow, 0.9f);
  EXPECT_GT(preempted.preemptions, 0);
  EXPECT_EQ(preempted.tokens, reference.tokens);
}

INSTANTIATE_TEST_SUITE_P(Golden, PreemptionRoundTripTest, ::testing::Values("llama3_gqa", "qwen2_bias"));

}  // namespace
}  // namespace tandem::testing
