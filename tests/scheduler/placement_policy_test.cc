#include "scheduler/placement_policy.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

NodeLoad P(std::string id, uint64_t queued_tokens) {
  NodeLoad n;
  n.node_id = std::move(id);
  n.queued_tokens = queued_tokens;
  return n;
}

NodeLoad D(std::string id, uint32_t free_blocks, uint32_t block_size = 16) {
  NodeLoad n;
  n.node_id = std::move(id);
  n.free_blocks = free_blocks;
  n.total_blocks = 1000;
  n.block_size_tokens = block_size;
  return n;
}

TEST(PlacementPolicyTest, BlocksNeededRoundsUp) {
  EXPECT_EQ(BlocksNeeded({16, 0}, 16), 1u);
  EXPECT_EQ(BlocksNeeded({16, 1}, 16), 2u);
  EXPECT_EQ(BlocksNeeded({10, 22}, 16), 2u);
  EXPECT_EQ(BlocksNeeded({10, 23}, 16), 3u);
  EXPECT_EQ(BlocksNeeded({10, 23}, 0), 1u);
}

TEST(PlacementPolicyTest, PicksFewestQueuedTokensAndMostFreeBlocks) {
  LeastLoadedPolicy policy;
  auto r = policy.Place({100, 50}, {P("prefill-0", 500), P("prefill-1", 20), P("prefill-2", 300)},
                        {D("decode-0", 40), D("decode-1", 90), D("decode-2", 60)});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->prefill_node_id, "prefill-1");
  EXPECT_EQ(r->decode_node_id, "decode-1");
}

TEST(PlacementPolicyTest, TiesGoToLowestIdWhateverTheOrder) {
  LeastLoadedPolicy policy;
  auto r = policy.Place({8, 8}, {P("prefill-2", 7), P("prefill-1", 7), P("prefill-3", 9)},
                        {D("decode-3", 30), D("decode-1", 30), D("decode-0", 29)});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prefill_node_id, "prefill-1");
  EXPECT_EQ(r->decode_node_id, "decode-1");
}

TEST(PlacementPolicyTest, SkipsDecodeNodesThatCannotHoldTheRequest) {
  LeastLoadedPolicy policy;
  // 100 + 60 tokens: 10 blocks of 16, or 3 blocks of 64. decode-0 has more free blocks but
  // small ones that do not suffice; decode-1's bigger blocks hold it.
  auto r = policy.Place({100, 60}, {P("prefill-0", 0)}, {D("decode-0", 9, 16), D("decode-1", 3, 64)});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->decode_node_id, "decode-1");
}

TEST(PlacementPolicyTest, NothingFitsIsResourceExhausted) {
  LeastLoadedPolicy policy;
  auto r = policy.Place({1000, 1000}, {P("prefill-0", 0)}, {D("decode-0", 10), D("decode-1", 124)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("125 KV blocks"), std::string::npos) << r.status().ToString();
}

TEST(PlacementPolicyTest, LargerThanEveryPoolIsOutOfRange) {
  LeastLoadedPolicy policy;
  NodeLoad small = D("decode-0", 50);
  small.total_blocks = 50;
  NodeLoad medium = D("decode-1", 80);
  medium.total_blocks = 120;
  auto r = policy.Place({1000, 1000}, {P("prefill-0", 0)}, {small, medium});  // 125 blocks
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(r.status().message().find("(120)"), std::string::npos) << r.status().ToString();
}

TEST(PlacementPolicyTest, NoCandidatesIsUnavailable) {
  LeastLoadedPolicy policy;
  auto no_p = policy.Place({1, 1}, {}, {D("decode-0", 10)});
  ASSERT_FALSE(no_p.ok());
  EXPECT_EQ(no_p.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(no_p.status().message().find("prefill"), std::string::npos);
  auto no_d = policy.Place({1, 1}, {P("prefill-0", 0)}, {});
  ASSERT_FALSE(no_d.ok());
  EXPECT_EQ(no_d.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(no_d.status().message().find("decode"), std::string::npos);
}

TEST(PlacementPolicyTest, FactoryKnowsLeastLoaded) {
  auto p = CreatePlacementPolicy("least-loaded");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->name(), "least-loaded");
  auto bad = CreatePlacementPolicy("random");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
