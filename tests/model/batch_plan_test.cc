#include "model/batch_plan.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

TEST(BatchPlanTest, MixesPrefillChunkAndDecode) {
  const std::vector<int32_t> prompt = {10, 11, 12, 13, 14};
  const std::vector<int32_t> table_a = {7, 3};
  const std::vector<int32_t> decode_tok = {42};
  const std::vector<int32_t> table_b = {1, 2, 5};
  std::vector<SequenceChunk> chunks(2);
  chunks[0].tokens = std::span<const int32_t>(prompt).subspan(2, 3);  // chunked: positions 2..4
  chunks[0].start_position = 2;
  chunks[0].block_table = table_a;
  chunks[1].tokens = decode_tok;
  chunks[1].start_position = 5;  // 6th token of a sequence
  chunks[1].block_table = table_b;
  auto plan = BuildBatchPlan(chunks, 4);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->token_ids, (std::vector<int32_t>{12, 13, 14, 42}));
  EXPECT_EQ(plan->positions, (std::vector<int32_t>{2, 3, 4, 5}));
  // position 4 of seq A is block table_a[1] = 3, slot 0; seq B position 5 -> block 2, slot 1.
  EXPECT_EQ(plan->slot_mapping, (std::vector<int64_t>{7 * 4 + 2, 7 * 4 + 3, 3 * 4 + 0, 2 * 4 + 1}));
  EXPECT_EQ(plan->query_start, (std::vector<int32_t>{0, 3, 4}));
  EXPECT_EQ(plan->context_lens, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(plan->max_blocks_per_seq, 3);
  EXPECT_EQ(plan->block_tables, (std::vector<int32_t>{7, 3, 0, 1, 2, 5}));
  EXPECT_EQ(plan->logits_indices, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(plan->logits_seq, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(plan->max_query_len, 3);
  EXPECT_EQ(plan->max_context_len, 6);
}

TEST(BatchPlanTest, ChunkWithoutLogitsIsSkippedInLogitRows) {
  const std::vector<int32_t> toks = {1, 2};
  const std::vector<int32_t> table = {0};
  SequenceChunk c{toks, 0, table, false};
  auto plan = BuildBatchPlan(std::span<const SequenceChunk>(&c, 1), 16);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->num_logits(), 0);
}

TEST(BatchPlanTest, RejectsShortBlockTableAndEmptyChunk) {
  const std::vector<int32_t> toks = {1, 2, 3};
  const std::vector<int32_t> table = {0};
  SequenceChunk c{toks, 15, table, true};  // needs 18 tokens = 2 blocks of 16
  auto plan = BuildBatchPlan(std::span<const SequenceChunk>(&c, 1), 16);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
  SequenceChunk empty{{}, 0, table, true};
  EXPECT_FALSE(BuildBatchPlan(std::span<const SequenceChunk>(&empty, 1), 16).ok());
}

}  // namespace
}  // namespace tandem
