// Paged attention on the CPU backend: ragged batches mixing chunked prefill (with a prefix
// already cached) and decode, GQA 1/2/4, block sizes 16 and 32, shuffled block tables.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/kernels/kernel_test_util.h"

namespace tandem {
namespace {

using testing::GuardedF32;
using testing::MakeCpuBackend;
using testing::Rng;

struct SeqSpec {
  int prefix;  // tokens already in the cache before this step
  int query;   // tokens run in this step
};

// A batch and its cache, filled through WriteKv exactly as an engine would.
struct Batch {
  int num_heads = 0, num_kv_heads = 0, head_dim = 0, block_size = 0, num_blocks = 0;
  std::vector<SeqSpec> seqs;
  std::vector<float> k_cache, v_cache, q;
  std::vector<float> all_k, all_v;  // per sequence, every token: [ctx, kvh*hd]
  std::vector<int> seq_k_offset;    // row offset of sequence s in all_k
  std::vector<int32_t> positions, query_start, context_lens, block_tables;
  std::vector<int64_t> slots;
  int max_blocks = 0;

  KvCacheView cache() {
    return {k_cache.data(), v_cache.data(), DType::kF32, num_blocks, num_kv_heads, block_size,
            head_dim};
  }
  AttentionPlanView plan() const {
    AttentionPlanView p;
    p.num_tokens = static_cast<int>(positions.size());
    p.num_seqs = static_cast<int>(seqs.size());
    p.positions = positions.data();
    p.slot_mapping = slots.data();
    p.query_start = query_start.data();
    p.context_lens = context_lens.data();
    p.block_tables = block_tables.data();
    p.max_blocks_per_seq = max_blocks;
    return p;
  }
};

Batch MakeBatch(Rng& rng, Backend& b, std::vector<SeqSpec> seqs, int heads, int kv_heads, int hd,
                int bs) {
  Batch x;
  x.num_heads = heads;
  x.num_kv_heads = kv_heads;
  x.head_dim = hd;
  x.block_size = bs;
  x.seqs = std::move(seqs);
  const int width = kv_heads * hd;
  for (const auto& s : x.seqs) x.max_blocks = std::max(x.max_blocks, (s.prefix + s.query + bs - 1) / bs);
  x.num_blocks = x.max_blocks * static_cast<int>(x.seqs.size()) + 3;
  std::vector<int32_t> pool(x.num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng.gen());  // non-contiguous, unordered tables
  x.k_cache.assign(static_cast<size_t>(x.num_blocks) * bs * width, 0.0f);
  x.v_cache = x.k_cache;
  x.block_tables.assign(x.seqs.size() * x.max_blocks, 0);
  x.query_start = {0};
  size_t next_block = 0;
  for (size_t s = 0; s < x.seqs.size(); ++s) {
    const int ctx = x.seqs[s].prefix + x.seqs[s].query;
    for (int blk = 0; blk * bs < ctx; ++blk) x.block_tables[s * x.max_blocks + blk] = pool[next_block++];
    x.context_lens.push_back(ctx);
    x.query_start.push_back(x.query_start.back() + x.seqs[s].query);
    x.seq_k_offset.push_back(static_cast<int>(x.all_k.size()) / width);
    auto k = rng.NonZeros(static_cast<size_t>(ctx) * width, 1.5f);
    auto v = rng.NonZeros(static_cast<size_t>(ctx) * width);
    x.all_k.insert(x.all_k.end(), k.begin(), k.end());
    x.all_v.insert(x.all_v.end(), v.begin(), v.end());
    std::vector<int64_t> seq_slots;
    for (int t = 0; t < ctx; ++t) {
      seq_slots.push_back(int64_t{x.block_tables[s * x.max_blocks + t / bs]} * bs + t % bs);
    }
    // The prefix was written by earlier steps; this step's tokens go in with the plan's slots.
    EXPECT_TRUE(b.WriteKv({k.data(), DType::kF32, ctx, width}, {v.data(), DType::kF32, ctx, width},
                          seq_slots.data(), x.cache()).ok());
    for (int t = x.seqs[s].prefix; t < ctx; ++t) {
      x.positions.push_back(t);
      x.slots.push_back(seq_slots[t]);
    }
  }
  x.q = rng.NonZeros(x.positions.size() * heads * hd);
  return x;
}

// softmax(q.k * scale) . v in double for every token and head.
std::vector<double> Reference(const Batch& x, float scale) {
  const int width = x.num_kv_heads * x.head_dim, group = x.num_heads / x.num_kv_heads;
  std::vector<double> out(x.q.size());
  for (size_t s = 0; s < x.seqs.size(); ++s) {
    for (int t = x.query_start[s]; t < x.query_start[s + 1]; ++t) {
      const int n_keys = x.positions[t] + 1;
      for (int h = 0; h < x.num_heads; ++h) {
        const float* q = x.q.data() + (static_cast<size_t>(t) * x.num_heads + h) * x.head_dim;
        const int kvh = h / group;
        std::vector<double> p(n_keys);
        double mx = -1e300, sum = 0;
        for (int j = 0; j < n_keys; ++j) {
          const float* k = x.all_k.data() + static_cast<size_t>(x.seq_k_offset[s] + j) * width + kvh * x.head_dim;
          double d = 0;
          for (int e = 0; e < x.head_dim; ++e) d += double(q[e]) * k[e];
          p[j] = d * scale;
          mx = std::max(mx, p[j]);
        }
        for (auto& v : p) sum += (v = std::exp(v - mx));
        for (int e = 0; e < x.head_dim; ++e) {
          double acc = 0;
          for (int j = 0; j < n_keys; ++j) {
            acc += p[j] / sum * x.all_v[static_cast<size_t>(x.seq_k_offset[s] + j) * width + kvh * x.head_dim + e];
          }
          out[(static_cast<size_t>(t) * x.num_heads + h) * x.head_dim + e] = acc;
        }
      }
    }
  }
  return out;
}

TEST(CpuAttentionTest, RaggedMixedBatchesMatchReference) {
  Rng rng(2001);
  auto b = MakeCpuBackend();
  const std::vector<SeqSpec> mix = {{0, 7}, {5, 1}, {30, 12}, {0, 1}, {47, 1}, {16, 16}, {100, 3}};
  for (int bs : {16, 32}) {
    for (int group : {1, 2, 4}) {
      for (int hd : {64, 40}) {
        const int kv_heads = 2, heads = kv_heads * group;
        Batch x = MakeBatch(rng, *b, mix, heads, kv_heads, hd, bs);
        const int64_t n = static_cast<int64_t>(x.positions.size());
        const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
        GuardedF32 q(n, heads * hd), out(n, heads * hd);
        q.Fill(x.q);
        ASSERT_TRUE(b->Attention(q.view(), x.cache(), x.plan(), heads, scale, out.view()).ok());
        const auto ref = Reference(x, scale);
        for (size_t i = 0; i < ref.size(); ++i) {
          ASSERT_NEAR(out.data()[i], ref[i], 2e-6) << "bs " << bs << " group " << group
                                                    << " hd " << hd << " element " << i;
        }
        EXPECT_TRUE(out.GuardsIntact());
      }
    }
  }
}

// A sequence's rows are bitwise the same whether it runs alone or inside a ragged batch, and a
// decode token equals the same position computed as part of a prefill chunk.
TEST(CpuAttentionTest, ResultsDoNotDependOnBatchComposition) {
  Rng rng(2002);
  auto b = MakeCpuBackend();
  Batch x = MakeBatch(rng, *b, {{3, 20}, {40, 1}, {0, 9}}, 8, 2, 64, 16);
  const int width = 8 * 64;
  const int64_t n = static_cast<int64_t>(x.positions.size());
  std::vector<float> batched(n * width);
  ASSERT_TRUE(b->Attention({x.q.data(), DType::kF32, n, width}, x.cache(), x.plan(), 8, 0.125f,
                           {batched.data(), DType::kF32, n, width}).ok());
  // Each token alone, as a decode step of its own sequence (same cache, one query row).
  for (int s = 0; s < 3; ++s) {
    for (int t = x.query_start[s]; t < x.query_start[s + 1]; ++t) {
      AttentionPlanView p = x.plan();
      const int32_t qs[2] = {0, 1};
      const int32_t ctx = x.positions[t] + 1;
      p.num_tokens = 1;
      p.num_seqs = 1;
      p.positions = &x.positions[t];
      p.query_start = qs;
      p.context_lens = &ctx;
      p.block_tables = x.block_tables.data() + s * x.max_blocks;
      std::vector<float> one(width);
      ASSERT_TRUE(b->Attention({x.q.data() + t * width, DType::kF32, 1, width}, x.cache(), p, 8,
                               0.125f, {one.data(), DType::kF32, 1, width}).ok());
      for (int e = 0; e < width; ++e) ASSERT_EQ(one[e], batched[t * width + e]) << "token " << t;
    }
  }
}

TEST(CpuAttentionTest, RejectsInconsistentPlans) {
  Rng rng(2003);
  auto b = MakeCpuBackend();
  Batch x = MakeBatch(rng, *b, {{4, 2}}, 4, 2, 8, 16);
  GuardedF32 q(2, 32), out(2, 32);
  q.Fill(x.q);
  auto plan = x.plan();
  EXPECT_TRUE(b->Attention(q.view(), x.cache(), plan, 4, 0.3f, out.view()).ok());
  EXPECT_EQ(b->Attention(q.view(), x.cache(), plan, 3, 0.3f, out.view()).code(),
            StatusCode::kInvalidArgument);  // 3 heads over 2 kv heads
  std::vector<int32_t> far = {4, 6};  // position 6 beyond context_len 6
  plan.positions = far.data();
  Status s = b->Attention(q.view(), x.cache(), plan, 4, 0.3f, out.view());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("position 6"), std::string::npos) << s.message();
  plan = x.plan();
  std::vector<int32_t> table = {x.num_blocks};
  plan.block_tables = table.data();
  EXPECT_EQ(b->Attention(q.view(), x.cache(), plan, 4, 0.3f, out.view()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(out.GuardsIntact());
}

}  // namespace
}  // namespace tandem
