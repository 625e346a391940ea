#include "model/block_pool.h"

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

namespace tandem {
namespace {

TEST(BlockPoolTest, AllocatesDistinctBlocksUntilExhausted) {
  BlockPool pool(8);
  EXPECT_TRUE(pool.CanAllocate(8));
  EXPECT_FALSE(pool.CanAllocate(9));
  auto a = pool.Allocate(5);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(pool.num_free(), 3);
  auto b = pool.Allocate(3);
  ASSERT_TRUE(b.ok());
  std::set<int32_t> all(a->begin(), a->end());
  all.insert(b->begin(), b->end());
  EXPECT_EQ(all.size(), 8u);
  EXPECT_EQ(pool.num_free(), 0);
  EXPECT_FALSE(pool.CanAllocate(1));
  EXPECT_TRUE(pool.CanAllocate(0));
}

TEST(BlockPoolTest, ExhaustionTakesNothing) {
  BlockPool pool(4);
  auto a = pool.Allocate(3);
  ASSERT_TRUE(a.ok());
  auto b = pool.Allocate(2);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(pool.num_free(), 1);  // the failed call took nothing
}

TEST(BlockPoolTest, FreshPoolHandsOutContiguousRuns) {
  BlockPool pool(6);
  auto a = pool.Allocate(4);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(BlockPoolTest, FreeReturnsBlocksAndTheyAreReused) {
  BlockPool pool(4);
  auto a = pool.Allocate(4);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(pool.Free(std::vector<int32_t>{(*a)[1], (*a)[2]}).ok());
  EXPECT_EQ(pool.num_free(), 2);
  auto b = pool.Allocate(2);
  ASSERT_TRUE(b.ok());
  std::vector<int32_t> got = *b;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int32_t>{(*a)[1], (*a)[2]}));
}

TEST(BlockPoolTest, DoubleFreeIsRejectedAndChangesNothing) {
  BlockPool pool(4);
  auto a = pool.Allocate(2);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(pool.Free(std::vector<int32_t>{(*a)[0]}).ok());
  Status s = pool.Free(std::vector<int32_t>{(*a)[1], (*a)[0]});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(pool.RefCount((*a)[1]), 1);  // validated before anything changed
  EXPECT_EQ(pool.num_free(), 3);
  // The same block twice in one call, held once, is a double free too.
  Status twice = pool.Free(std::vector<int32_t>{(*a)[1], (*a)[1]});
  EXPECT_EQ(twice.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(pool.RefCount((*a)[1]), 1);
}

TEST(BlockPoolTest, OutOfRangeIdsAreRejected) {
  BlockPool pool(2);
  EXPECT_EQ(pool.Free(std::vector<int32_t>{7}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.Free(std::vector<int32_t>{-1}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.AddRef(5).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(pool.Allocate(-1).ok());
}

TEST(BlockPoolTest, SharedBlocksReturnOnlyAfterLastReference) {
  BlockPool pool(2);
  auto a = pool.Allocate(1);
  ASSERT_TRUE(a.ok());
  const int32_t b = (*a)[0];
  ASSERT_TRUE(pool.AddRef(b).ok());
  EXPECT_EQ(pool.RefCount(b), 2);
  ASSERT_TRUE(pool.Free(std::vector<int32_t>{b}).ok());
  EXPECT_EQ(pool.num_free(), 1);
  ASSERT_TRUE(pool.Free(std::vector<int32_t>{b}).ok());
  EXPECT_EQ(pool.num_free(), 2);
  EXPECT_EQ(pool.AddRef(b).code(), StatusCode::kFailedPrecondition);  // not in use any more
}

TEST(BlockPoolTest, BlocksForTokens) {
  EXPECT_EQ(BlocksForTokens(0, 16), 0);
  EXPECT_EQ(BlocksForTokens(1, 16), 1);
  EXPECT_EQ(BlocksForTokens(16, 16), 1);
  EXPECT_EQ(BlocksForTokens(17, 16), 2);
}

}  // namespace
}  // namespace tandem
