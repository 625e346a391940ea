// The forward pass agrees with itself however the work is cut: batched vs one at a time,
// prefill + decode vs one full forward, chunked prefill vs whole prefill.
#include <random>

#include "tests/model/model_harness.h"

namespace tandem::testing {
namespace {

constexpr double kTol = 1e-4;  // fp32 reassociation only

class ForwardConsistencyTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    h_ = ModelHarness::Load(GoldenDir(GetParam()));
    ASSERT_NE(h_, nullptr);
  }
  std::vector<int32_t> RandomPrompt(int len, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> p(len);
    for (auto& t : p) t = static_cast<int32_t>(rng() % h_->vocab());
    return p;
  }
  std::unique_ptr<ModelHarness> h_;
};

TEST_P(ForwardConsistencyTest, PrefillThenDecodeMatchesFullForwardAtEveryPosition) {
  const std::vector<int32_t> prompt = RandomPrompt(37, 1);
  const std::vector<float> full = h_->ForwardAll(prompt);
  const int64_t V = h_->vocab();
  const int prefix = 5;
  auto blocks = h_->cache->pool().Allocate(BlocksForTokens(prompt.size(), 16));
  ASSERT_TRUE(blocks.ok());
  std::vector<float> logits;
  for (int pos = prefix - 1; pos < static_cast<int>(prompt.size()); ++pos) {
    SequenceChunk c;
    const int start = pos == prefix - 1 ? 0 : pos;
    c.tokens = std::span<const int32_t>(prompt).subspan(start, pos + 1 - start);
    c.start_position = start;
    c.block_table = *blocks;
    auto plan = BuildBatchPlan(std::span<const SequenceChunk>(&c, 1), 16);
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(h_->transformer->Forward(*plan, *h_->cache, &logits).ok());
    ASSERT_EQ(logits.size(), static_cast<size_t>(V));
    EXPECT_LT(RelMaxError(logits.data(), full.data() + pos * V, V), kTol) << "position " << pos;
  }
  ASSERT_TRUE(h_->cache->pool().Free(*blocks).ok());
}

TEST_P(ForwardConsistencyTest, ChunkedPrefillMatchesWholePrefill) {
  const std::vector<int32_t> prompt = RandomPrompt(40, 2);
  const std::vector<float> full = h_->ForwardAll(prompt);
  const int64_t V = h_->vocab();
  auto blocks = h_->cache->pool().Allocate(BlocksForTokens(prompt.size(), 16));
  ASSERT_TRUE(blocks.ok());
  std::vector<float> logits;
  const int cuts[] = {0, 7, 16, 33, 40};
  for (int i = 0; i + 1 < 5; ++i) {
    SequenceChunk c;
    c.tokens = std::span<const int32_t>(prompt).subspan(cuts[i], cuts[i + 1] - cuts[i]);
    c.start_position = cuts[i];
    c.block_table = *blocks;
    c.all_logits = true;
    auto plan = BuildBatchPlan(std::span<const SequenceChunk>(&c, 1), 16);
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(h_->transformer->Forward(*plan, *h_->cache, &logits).ok());
    EXPECT_LT(RelMaxError(logits.data(), full.data() + cuts[i] * V, logits.size()), kTol) << "chunk " << i;
  }
  ASSERT_TRUE(h_->cache->pool().Free(*blocks).ok());
}

TEST_P(ForwardConsistencyTest, BatchedForwardEqualsOneAtATime) {
  const std::vector<std::vector<int32_t>> prompts = {RandomPrompt(1, 3), RandomPrompt(17, 4), RandomPrompt(9, 5),
                                                     RandomPrompt(33, 6)};
  const int64_t V = h_->vocab();
  std::vector<std::vector<float>> alone;
  for (const auto& p : prompts) alone.push_back(h_->ForwardAll(p));

  std::vector<std::vector<int32_t>> tables;
  std::vector<SequenceChunk> chunks;
  for (const auto& p : prompts) {
    auto b = h_->cache->pool().Allocate(BlocksForTokens(p.size(), 16));
    ASSERT_TRUE(b.ok());
    tables.push_back(*b);
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    SequenceChunk c;
    c.tokens = prompts[i];
    c.block_table = tables[i];
    c.all_logits = true;
    chunks.push_back(c);
  }
  auto plan = BuildBatchPlan(chunks, 16);
  ASSERT_TRUE(plan.ok());
  std::vector<float> logits;
  ASSERT_TRUE(h_->transformer->Forward(*plan, *h_->cache, &logits).ok());
  size_t row = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_LT(RelMaxError(logits.data() + row * V, alone[i].data(), prompts[i].size() * V), kTol) << "seq " << i;
    row += prompts[i].size();
  }
  for (auto& t : tables) ASSERT_TRUE(h_->cache->pool().Free(t).ok());
}

TEST_P(ForwardConsistencyTest, EngineBatchGivesSameTokensAsAlone) {
  const std::vector<std::vector<int32_t>> prompts = {RandomPrompt(3, 7), RandomPrompt(20, 8), RandomPrompt(11, 9)};
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : prompts) alone.push_back(h_->Greedy(p, 12));

  const int32_t free_before = h_->cache->pool().num_free();
  // Small token budget so prompts are chunked and mixed with decodes.
  Engine engine(*h_->transformer, *h_->cache, EngineOptions{8, 10});
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.id = static_cast<int64_t>(i);
    r.prompt = prompts[i];
    r.params.temperature = 0.0f;
    r.params.max_tokens = 12;
    r.params.ignore_eos = true;
    ASSERT_TRUE(engine.Add(std::move(r)).ok());
  }
  while (engine.HasWork()) ASSERT_TRUE(engine.Step().ok());
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto done = engine.TakeFinished(static_cast<int64_t>(i));
    ASSERT_NE(done, nullptr);
    EXPECT_EQ(done->output, alone[i]) << "request " << i;
    EXPECT_EQ(done->finish_reason, FinishReason::kLength);
  }
  EXPECT_EQ(h_->cache->pool().num_free(), free_before);
}

TEST_P(ForwardConsistencyTest, SeededSamplingIndependentOfBatch) {
  auto run = [&](bool with_neighbours) {
    Engine engine(*h_->transformer, *h_->cache, EngineOptions{});
    auto add = [&](int64_t id, uint64_t seed, std::vector<int32_t> prompt) {
      Request r;
      r.id = id;
      r.prompt = std::move(prompt);
      r.params.temperature = 0.8f;
      r.params.top_p = 0.9f;
      r.params.seed = seed;
      r.params.max_tokens = 10;
      r.params.ignore_eos = true;
      EXPECT_TRUE(engine.Add(std::move(r)).ok());
    };
    add(0, 1234, RandomPrompt(6, 10));
    if (with_neighbours) {
      add(1, 99, RandomPrompt(12, 11));
      add(2, 7, RandomPrompt(4, 12));
    }
    while (engine.HasWork()) EXPECT_TRUE(engine.Step().ok());
    return engine.TakeFinished(0)->output;
  };
  EXPECT_EQ(run(false), run(true));
}

TEST_P(ForwardConsistencyTest, EngineRejectsBadRequests) {
  Engine engine(*h_->transformer, *h_->cache, EngineOptions{});
  Request empty;
  EXPECT_EQ(engine.Add(empty).code(), StatusCode::kInvalidArgument);
  Request bad_token;
  bad_token.prompt = {static_cast<int32_t>(h_->vocab())};
  EXPECT_EQ(engine.Add(bad_token).code(), StatusCode::kInvalidArgument);
  Request too_long;
  too_long.prompt = {1, 2, 3};
  too_long.params.max_tokens = static_cast<int32_t>(h_->weights->config.max_position_embeddings);
  EXPECT_EQ(engine.Add(too_long).code(), StatusCode::kOutOfRange);
  Request abort_me;
  abort_me.id = 5;
  abort_me.prompt = {1, 2, 3};
  const int32_t free_before = h_->cache->pool().num_free();
  ASSERT_TRUE(engine.Add(abort_me).ok());
  ASSERT_TRUE(engine.Step().ok());
  EXPECT_LT(h_->cache->pool().num_free(), free_before);
  ASSERT_TRUE(engine.Abort(5).ok());
  EXPECT_EQ(h_->cache->pool().num_free(), free_before);
  EXPECT_EQ(engine.Abort(5).code(), StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Golden, ForwardConsistencyTest,
                         ::testing::Values("llama3_gqa", "qwen2_bias", "mistral_mha"));

}  // namespace
}  // namespace tandem::testing
