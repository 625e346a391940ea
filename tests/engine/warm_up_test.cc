#include "engine/warm_up.h"

#include <gtest/gtest.h>

#include "tests/model/model_harness.h"

namespace tandem {
namespace {

using testing::GoldenDir;
using testing::ModelHarness;

TEST(WarmUpTest, LeavesThePoolAsItFoundItAndTheOutputUnchanged) {
  auto cold = ModelHarness::Load(GoldenDir("llama3_gqa"), 64);
  auto warm = ModelHarness::Load(GoldenDir("llama3_gqa"), 64);
  ASSERT_TRUE(cold && warm);
  const int32_t free_before = warm->cache->pool().num_free();
  ASSERT_TRUE(WarmUp(*warm->transformer, *warm->cache).ok());
  EXPECT_EQ(warm->cache->pool().num_free(), free_before);
  const std::vector<int32_t> prompt = {5, 17, 42, 99, 3, 250};
  EXPECT_EQ(warm->Greedy(prompt, 12), cold->Greedy(prompt, 12));
}

TEST(WarmUpTest, FitsATinyPool) {
  auto h = ModelHarness::Load(GoldenDir("llama3_gqa"), 2, 4);  // room for 8 tokens
  ASSERT_TRUE(h);
  ASSERT_TRUE(WarmUp(*h->transformer, *h->cache, 64).ok());
  EXPECT_EQ(h->cache->pool().num_free(), 2);
}

}  // namespace
}  // namespace tandem
