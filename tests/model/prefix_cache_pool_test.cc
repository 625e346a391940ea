// The pool's prefix cache: matching by content chain, sharing, LRU eviction of unreferenced
// cached blocks only, reviving, salts, and the token comparison that keeps a hash hit honest.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "model/block_hash.h"
#include "model/block_pool.h"

namespace tandem {
namespace {

constexpr int32_t kBs = 4;

std::vector<int32_t> Tokens(int n, int base) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), base);
  return t;
}

// Registers `blocks` as holding tokens block by block (as the scheduler does once computed).
void RegisterAll(BlockPool& pool, const BlockHash& root, const std::vector<int32_t>& tokens,
                 const std::vector<int32_t>& blocks) {
  BlockHash h = root;
  for (size_t i = 0; i < blocks.size() && (i + 1) * kBs <= tokens.size(); ++i) {
    std::span<const int32_t> chunk(tokens.data() + i * kBs, kBs);
    h = ChainBlockHash(h, chunk);
    pool.Register(blocks[i], h, chunk);
  }
}

TEST(BlockHashTest, ChainsDependOnEveryTokenAndTheSalt) {
  const auto a = Tokens(4, 10);
  auto b = a;
  b[3] = 99;
  EXPECT_EQ(ChainBlockHash(PrefixRoot(""), a), ChainBlockHash(PrefixRoot(""), a));
  EXPECT_NE(ChainBlockHash(PrefixRoot(""), a), ChainBlockHash(PrefixRoot(""), b));
  EXPECT_NE(ChainBlockHash(PrefixRoot(""), a), ChainBlockHash(PrefixRoot("tenant-1"), a));
  EXPECT_NE(ChainBlockHash(ChainBlockHash(PrefixRoot(""), a), a), ChainBlockHash(PrefixRoot(""), a));
}

TEST(PrefixCachePoolTest, OffByDefaultAndValidated) {
  BlockPool pool(8);
  EXPECT_FALSE(pool.prefix_caching());
  const auto t = Tokens(8, 1);
  EXPECT_TRUE(pool.MatchPrefix(PrefixRoot(""), t, 2).empty());
  EXPECT_FALSE(pool.EnablePrefixCaching(0).ok());
  ASSERT_TRUE(pool.EnablePrefixCaching(kBs).ok());
  EXPECT_TRUE(pool.EnablePrefixCaching(kBs).ok());
  EXPECT_EQ(pool.EnablePrefixCaching(8).code(), StatusCode::kInvalidArgument);
}

TEST(PrefixCachePoolTest, FreedRegisteredBlocksStayCachedAndCountAsFree) {
  BlockPool pool(8);
  ASSERT_TRUE(pool.EnablePrefixCaching(kBs).ok());
  const auto tokens = Tokens(10, 100);  // two full blocks and a partial one
  auto blocks = pool.Allocate(3);
  ASSERT_TRUE(blocks.ok());
  RegisterAll(pool, PrefixRoot(""), tokens, *blocks);
  EXPECT_EQ(pool.num_cached(), 2);  // the partial block is never registered
  ASSERT_TRUE(pool.Free(*blocks).ok());
  EXPECT_EQ(pool.num_free(), 8);
  EXPECT_EQ(pool.num_evictable(), 2);

  std::vector<BlockHash> hashes;
  const auto hit = pool.MatchPrefix(PrefixRoot(""), tokens, 2, &hashes);
  ASSERT_EQ(hit.size(), 2u);
  EXPECT_EQ(hit[0], (*blocks)[0]);
  EXPECT_EQ(hit[1], (*blocks)[1]);
  EXPECT_EQ(hashes.size(), 2u);
  EXPECT_EQ(pool.MatchPrefix(PrefixRoot(""), tokens, 1).size(), 1u);  // capped by max_blocks
  EXPECT_TRUE(pool.MatchPrefix(PrefixRoot("other"), tokens, 2).empty());
  auto diverged = tokens;
  diverged[5] = 7;  // in the second block
  EXPECT_EQ(pool.MatchPrefix(PrefixRoot(""), diverged, 2).size(), 1u);

  EXPECT_EQ(pool.CountEvictable(hit), 2);
  ASSERT_TRUE(pool.Acquire(hit).ok());
  EXPECT_EQ(pool.num_free(), 6);
  EXPECT_EQ(pool.RefCount(hit[0]), 1);
  ASSERT_TRUE(pool.Acquire(hit).ok());  // a second sharer
  EXPECT_EQ(pool.RefCount(hit[0]), 2);
  ASSERT_TRUE(pool.Free(hit).ok());
  ASSERT_TRUE(pool.Free(hit).ok());
  EXPECT_EQ(pool.num_free(), 8);
}

TEST(PrefixCachePoolTest, AllocationEvictsOnlyUnreferencedBlocksOldestFirst) {
  BlockPool pool(4);
  ASSERT_TRUE(pool.EnablePrefixCaching(kBs).ok());
  const auto a = Tokens(8, 1), b = Tokens(8, 50);
  auto ba = pool.Allocate(2);
  auto bb = pool.Allocate(2);
  ASSERT_TRUE(ba.ok() && bb.ok());
  RegisterAll(pool, PrefixRoot(""), a, *ba);
  RegisterAll(pool, PrefixRoot(""), b, *bb);
  ASSERT_TRUE(pool.Free(*ba).ok());  // a is evictable; b is still in use
  EXPECT_EQ(pool.num_free(), 2);
  EXPECT_FALSE(pool.CanAllocate(3));
  auto one = pool.Allocate(1);
  ASSERT_TRUE(one.ok());
  // The tail block of `a` went first (freed in reverse), so a's first block still matches.
  EXPECT_EQ((*one)[0], (*ba)[1]);
  EXPECT_EQ(pool.MatchPrefix(PrefixRoot(""), a, 2).size(), 1u);
  EXPECT_EQ(pool.MatchPrefix(PrefixRoot(""), b, 2).size(), 2u);  // in use: never evicted
  auto two = pool.Allocate(1);
  ASSERT_TRUE(two.ok());
  EXPECT_TRUE(pool.MatchPrefix(PrefixRoot(""), a, 2).empty());
  EXPECT_EQ(pool.num_cached(), 2);
  EXPECT_FALSE(pool.Allocate(1).ok());  // nothing evictable: b's blocks are held
  // A block taken by eviction is private: registering over it works again, reused or not.
  ASSERT_TRUE(pool.Free(*one).ok());
  ASSERT_TRUE(pool.Free(*two).ok());
  ASSERT_TRUE(pool.Free(*bb).ok());
  EXPECT_EQ(pool.num_free(), 4);
  pool.ResetPrefixCache();
  EXPECT_EQ(pool.num_cached(), 0);
  EXPECT_EQ(pool.num_free(), 4);
}

TEST(PrefixCachePoolTest, OneCopyPerContentAndAFreeUncachedBlockCannotBeAcquired) {
  BlockPool pool(4);
  ASSERT_TRUE(pool.EnablePrefixCaching(kBs).ok());
  const auto t = Tokens(4, 3);
  auto x = pool.Allocate(1);
  auto y = pool.Allocate(1);
  ASSERT_TRUE(x.ok() && y.ok());
  const BlockHash h = ChainBlockHash(PrefixRoot(""), t);
  pool.Register((*x)[0], h, t);
  pool.Register((*y)[0], h, t);  // the same content computed twice: the cache keeps x
  EXPECT_EQ(pool.num_cached(), 1);
  EXPECT_EQ(pool.MatchPrefix(PrefixRoot(""), t, 1), *x);
  ASSERT_TRUE(pool.Free(*y).ok());
  EXPECT_EQ(pool.num_evictable(), 0);  // y was private: straight back to the free list
  EXPECT_EQ(pool.Acquire(*y).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(pool.RefCount((*y)[0]), 0);
  pool.Register((*y)[0], ChainBlockHash(PrefixRoot(""), Tokens(4, 9)), Tokens(4, 9));  // free: ignored
  EXPECT_EQ(pool.num_cached(), 1);
  ASSERT_TRUE(pool.Free(*x).ok());
}

// A hash hit whose tokens differ (what a collision would look like) is a miss: the pool keeps
// the tokens of every cached block and compares them.
TEST(PrefixCachePoolTest, AHashHitWithOtherTokensIsAMiss) {
  BlockPool pool(2);
  ASSERT_TRUE(pool.EnablePrefixCaching(kBs).ok());
  const auto real = Tokens(4, 20), forged = Tokens(4, 70);
  auto x = pool.Allocate(1);
  ASSERT_TRUE(x.ok());
  // Registered under the hash `forged` would have: a collision, constructed.
  pool.Register((*x)[0], ChainBlockHash(PrefixRoot(""), forged), real);
  EXPECT_TRUE(pool.MatchPrefix(PrefixRoot(""), forged, 1).empty());
  ASSERT_TRUE(pool.Free(*x).ok());
}

}  // namespace
}  // namespace tandem
