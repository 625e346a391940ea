// PrefillEngine + DecodeEngine in one process over the LoopbackTransport: the disaggregated
// hand-off reproduces single-process output token for token, with chunked prefill, prefix
// caching and preemption on the decode node.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/nodes/node_engines_fixture.h"

namespace tandem {
namespace {

using testing::ReferenceOutputs;
using testing::TestPrompt;
using testing::TinyModelDir;

// With prefix caching on both nodes, a prompt sent again is not computed again on P (its cache)
// and not sent again to D (D kept what it decoded): D's reservation names its cached blocks and
// P sends only the block of the last prompt token. The tokens stay those of one process.
TEST_F(NodeEnginesTest, APromptSentAgainSendsOnlyTheBlocksTheDecodeNodeLacks) {
  for (const bool greedy : {true, false}) {
    SCOPED_TRACE(greedy ? "greedy" : "seeded");
    caching_ = true;
    Build(64, 96, 2048);
    std::vector<TestPrompt> prompts = ThreeGrowingPrompts(greedy);
    for (auto& p : prompts) p.prompt.resize(40, 300);  // 3 blocks: 2 full before the last token
    const auto expected = ReferenceOutputs(TinyModelDir(), prompts);
    for (const std::string round : {"a", "b"}) {
      for (size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(Submit(round + std::to_string(i), prompts[i]).ok());
      RunUntilIdle();
      for (size_t i = 0; i < prompts.size(); ++i) {
        const std::string id = round + std::to_string(i);
        EXPECT_EQ(outputs_[id], expected[i]) << id;
        EXPECT_EQ(cached_blocks_[id], round == "a" ? 0 : 2) << id;
      }
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::string n = std::to_string(i);
      EXPECT_EQ(kv_bytes_["b" + n] * 3, kv_bytes_["a" + n]) << n;  // one block of three
    }
    for (const auto& [id, e] : errors_) ADD_FAILURE() << id << ": " << e.ToString();
    ExpectAllFree();  // cached blocks count as free
    outputs_.clear();
    cached_blocks_.clear();
    kv_bytes_.clear();
  }
}

TEST_F(NodeEnginesTest, GreedyMatchesSingleProcessEngine) { CheckMatchesReference(true, 2048); }
TEST_F(NodeEnginesTest, SeededSamplingMatchesSingleProcessEngine) { CheckMatchesReference(false, 2048); }
TEST_F(NodeEnginesTest, ChunkedPrefillMatchesSingleProcessEngine) { CheckMatchesReference(true, 24); }

// A decode pool too small for the requests' growth preempts and recomputes; the tokens still
// equal the single-process engine's.
TEST_F(NodeEnginesTest, ADecodePoolThatRunsOutPreemptsAndStillMatchesSingleProcess) {
  CheckSurvivesPreemption(/*greedy=*/true);
}

TEST_F(NodeEnginesTest, SeededSamplingSurvivesPreemptionOnTheDecodeNode) { CheckSurvivesPreemption(/*greedy=*/false); }

// While a preempted request waits for memory, a new reservation that would take the blocks it
// waits for is refused (the router places it elsewhere or later); the preempted one finishes.
TEST_F(NodeEnginesTest, APreemptedRequestKeepsItsMemoryFromNewReservations) {
  Build(64, 8, 2048);
  const auto prompts = ThreeGrowingPrompts(true);
  for (size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(Submit("r" + std::to_string(i), prompts[i]).ok());
  for (int i = 0; i < 2000 && decode_->num_preemptions() == 0; ++i) Pump();
  ASSERT_GT(decode_->num_preemptions(), 0);
  ASSERT_GE(decode_->free_blocks(), 1);  // room for a one-block prompt, but not for the resume
  TestPrompt small;
  small.prompt.assign(10, 5);
  small.params.temperature = 0;
  small.params.max_tokens = 4;
  auto refused = decode_->Reserve({"late", small.prompt, small.params, 0});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("preempted"), std::string::npos) << refused.status().ToString();
  RunUntilIdle();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(done_["r" + std::to_string(i)], FinishReason::kLength);
  ExpectAllFree();
}

TEST_F(NodeEnginesTest, AGrowingDecodePoolReservesThePromptsBlocksOnly) {
  Build(16, 8, 2048);
  TestPrompt p;
  p.prompt.assign(40, 5);
  p.params.temperature = 0;
  p.params.max_tokens = 40;  // 3 prompt blocks; 5 over its life
  auto first = decode_->Reserve({"a", p.prompt, p.params, 0});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->size(), 3u);
  EXPECT_TRUE(decode_->Reserve({"b", p.prompt, p.params, 0}).ok());
  EXPECT_EQ(decode_->Reserve({"c", p.prompt, p.params, 0}).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(decode_->free_blocks(), 2);
}

}  // namespace
}  // namespace tandem
