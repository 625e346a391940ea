// WriteKv and Attention on the CUDA backend against the reference over a grid: head_dim 64 and
// 128, GQA ratios 1/4/8, block sizes 16 and 32, contexts 1..8k, and ragged batches that mix
// decode rows (query length 1) with prefill and chunked-prefill rows. Blocks are handed out in
// shuffled order; the cache starts poisoned, so reading a slot nothing wrote breaks the result.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda_factory.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/reference_backend.h"

namespace tandem::gpu_test {
namespace {

struct SeqSpec {
  int cached;     // tokens already in the cache before this step
  int query_len;  // tokens of this step
};

struct GridPoint {
  int head_dim, ratio, block_size;
};

// One backend's copy of a batch: its cache and plan arrays.
struct BackendBatch {
  std::unique_ptr<GuardedTensor> k_cache, v_cache;  // flat [num_blocks * kv_heads * bs, head_dim]
  std::vector<DeviceBuffer> plan_buffers;
  KvCacheView cache;
  AttentionPlanView plan;
};

class CudaAttentionDiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TANDEM_SKIP_WITHOUT_GPU();
    auto cuda = CreateCudaBackend({});
    ASSERT_TRUE(cuda.ok()) << cuda.status().ToString();
    cuda_ = std::move(cuda).value();
    auto ref = CreateReferenceBackend();
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    ref_ = std::move(ref).value();
  }

  void RunCase(const GridPoint& g, const std::vector<SeqSpec>& seqs, uint32_t seed);

  std::unique_ptr<Backend> cuda_, ref_;
};

template <typename T>
const T* PushPlanArray(Backend& b, BackendBatch& batch, const std::vector<T>& v, Status* st) {
  auto buf = Upload(b, v);
  if (!buf.ok()) {
    *st = buf.status();
    return nullptr;
  }
  const T* p = static_cast<const T*>(buf->data());
  batch.plan_buffers.push_back(std::move(buf).value());
  return p;
}

void CudaAttentionDiffTest::RunCase(const GridPoint& g, const std::vector<SeqSpec>& seqs,
                                    uint32_t seed) {
  std::mt19937 rng(seed);
  const int kv_heads = 2, heads = kv_heads * g.ratio, dim = g.head_dim, bs = g.block_size;
  std::string what = "head_dim " + std::to_string(dim) + " ratio " + std::to_string(g.ratio) +
                     " block " + std::to_string(bs) + " seed " + std::to_string(seed) + " seqs";
  for (const auto& s : seqs)
    what += " (" + std::to_string(s.cached) + "+" + std::to_string(s.query_len) + ")";
  SCOPED_TRACE(what);

  // Block tables from a shuffled pool with a few blocks to spare.
  const int num_seqs = static_cast<int>(seqs.size());
  int max_blocks = 1, total_blocks = 0, max_ctx = 0, max_q = 0;
  for (const auto& s : seqs) {
    const int ctx = s.cached + s.query_len;
    max_blocks = std::max(max_blocks, (ctx + bs - 1) / bs);
    total_blocks += (ctx + bs - 1) / bs;
    max_ctx = std::max(max_ctx, ctx);
    max_q = std::max(max_q, s.query_len);
  }
  const int num_blocks = total_blocks + 3;
  std::vector<int32_t> pool(num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<int32_t> block_tables(static_cast<size_t>(num_seqs) * max_blocks, 0);
  int next = 0;
  for (int s = 0; s < num_seqs; ++s) {
    const int ctx = seqs[s].cached + seqs[s].query_len;
    for (int b = 0; b < (ctx + bs - 1) / bs; ++b) block_tables[s * max_blocks + b] = pool[next++];
  }

  // Every cached and new token's K/V, written in one WriteKv call; the step's queries.
  std::vector<int64_t> all_slots;
  std::vector<int32_t> positions, query_start{0}, context_lens;
  std::vector<int64_t> step_slots;
  for (int s = 0; s < num_seqs; ++s) {
    const int ctx = seqs[s].cached + seqs[s].query_len;
    for (int t = 0; t < ctx; ++t) {
      const int64_t slot = int64_t{block_tables[s * max_blocks + t / bs]} * bs + t % bs;
      all_slots.push_back(slot);
      if (t >= seqs[s].cached) {
        positions.push_back(t);
        step_slots.push_back(slot);
      }
    }
    query_start.push_back(static_cast<int32_t>(positions.size()));
    context_lens.push_back(ctx);
  }
  const int64_t n_all = static_cast<int64_t>(all_slots.size());
  const int64_t n_step = static_cast<int64_t>(positions.size());
  const auto k_vals = RandomBf16Values(rng, n_all * kv_heads * dim);
  const auto v_vals = RandomBf16Values(rng, n_all * kv_heads * dim);
  const auto q_vals = RandomBf16Values(rng, n_step * heads * dim, 2.0f);

  const int64_t cache_rows = int64_t{num_blocks} * kv_heads * bs;
  auto prepare = [&](Backend& b, BackendBatch& batch) {
    batch.k_cache = std::make_unique<GuardedTensor>(b, b.kv_cache_dtype(), cache_rows, dim);
    batch.v_cache = std::make_unique<GuardedTensor>(b, b.kv_cache_dtype(), cache_rows, dim);
    ASSERT_OK(batch.k_cache->status());
    ASSERT_OK(batch.v_cache->status());
    batch.cache = {batch.k_cache->view().data,
                   batch.v_cache->view().data,
                   b.kv_cache_dtype(),
                   num_blocks,
                   kv_heads,
                   bs,
                   dim};
    GuardedTensor k(b, b.activation_dtype(), n_all, kv_heads * dim);
    GuardedTensor v(b, b.activation_dtype(), n_all, kv_heads * dim);
    ASSERT_OK(k.Fill(k_vals));
    ASSERT_OK(v.Fill(v_vals));
    Status st;
    const int64_t* slots = PushPlanArray(b, batch, all_slots, &st);
    ASSERT_OK(st);
    ASSERT_OK(b.WriteKv(k.view(), v.view(), slots, batch.cache));
    ASSERT_OK(b.Synchronize());
    AttentionPlanView& p = batch.plan;
    p.num_tokens = static_cast<int>(n_step);
    p.num_seqs = num_seqs;
    p.positions = PushPlanArray(b, batch, positions, &st);
    p.slot_mapping = PushPlanArray(b, batch, step_slots, &st);
    p.query_start = PushPlanArray(b, batch, query_start, &st);
    p.context_lens = PushPlanArray(b, batch, context_lens, &st);
    p.block_tables = PushPlanArray(b, batch, block_tables, &st);
    ASSERT_OK(st);
    p.max_blocks_per_seq = max_blocks;
    p.max_query_len = max_q;
    p.max_context_len = max_ctx;
  };
  BackendBatch cb, rb;
  prepare(*cuda_, cb);
  if (HasFatalFailure()) return;
  prepare(*ref_, rb);
  if (HasFatalFailure()) return;

  // WriteKv: written slots hold the inputs exactly, the rest keep the poison.
  {
    const auto ck = cb.k_cache->Read(), rk = rb.k_cache->Read();
    const auto cv = cb.v_cache->Read(), rv = rb.v_cache->Read();
    ASSERT_EQ(ck.size(), rk.size());
    size_t mismatches = 0;
    for (size_t i = 0; i < ck.size(); ++i) {
      const bool poisoned_c = ck[i] > 1e30f, poisoned_r = rk[i] > 1e30f;
      if (poisoned_c != poisoned_r || (!poisoned_c && (ck[i] != rk[i] || cv[i] != rv[i])))
        ++mismatches;
    }
    EXPECT_EQ(mismatches, 0u) << "WriteKv caches differ";
    EXPECT_TRUE(cb.k_cache->GuardsIntact() && cb.v_cache->GuardsIntact()) << "WriteKv overran";
  }

  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  GuardedTensor cq(*cuda_, cuda_->activation_dtype(), n_step, heads * dim);
  GuardedTensor rq(*ref_, ref_->activation_dtype(), n_step, heads * dim);
  ASSERT_OK(cq.Fill(q_vals));
  ASSERT_OK(rq.Fill(q_vals));
  GuardedTensor co(*cuda_, cuda_->activation_dtype(), n_step, heads * dim);
  GuardedTensor ro(*ref_, ref_->activation_dtype(), n_step, heads * dim);
  ASSERT_OK(cuda_->Attention(cq.view(), cb.cache, cb.plan, heads, scale, co.view()));
  ASSERT_OK(ref_->Attention(rq.view(), rb.cache, rb.plan, heads, scale, ro.view()));
  ASSERT_OK(cuda_->Synchronize());
  ASSERT_OK(ref_->Synchronize());
  const auto c_out = co.Read(), r_out = ro.Read();
  EXPECT_LE(RelL2(c_out, r_out), 1e-2);
  // Per sequence as well, so a wrong short sequence is not hidden by long ones.
  for (int s = 0; s < num_seqs; ++s) {
    const size_t a = size_t(query_start[s]) * heads * dim,
                 e = size_t(query_start[s + 1]) * heads * dim;
    EXPECT_LE(RelL2({c_out.begin() + a, c_out.begin() + e}, {r_out.begin() + a, r_out.begin() + e}),
              1e-2)
        << "sequence " << s;
  }
  EXPECT_TRUE(co.GuardsIntact()) << "Attention wrote outside its output";
}

TEST_F(CudaAttentionDiffTest, Grid) {
  uint32_t seed = 1000;
  for (int head_dim : {64, 128}) {
    for (int ratio : {1, 4, 8}) {
      for (int block_size : {16, 32}) {
        const GridPoint g{head_dim, ratio, block_size};
        std::mt19937 pick(seed);
        std::uniform_int_distribution<int> long_ctx(1, 8192), prompt(2, 130), cached(0, 1000);
        // Decode only, including a context of exactly 1 and one long enough to split.
        const std::vector<SeqSpec> decode{
            {0, 1}, {long_ctx(pick) - 1, 1}, {8191, 1}, {block_size - 1, 1}, {block_size, 1}};
        // Mixed: fresh prompts, chunked prefill on a cached prefix, and decode rows.
        const std::vector<SeqSpec> mixed{
            {0, prompt(pick)}, {long_ctx(pick) - 1, 1}, {cached(pick), prompt(pick)}, {0, 2},
            {37, 1},           {cached(pick), 64}};
        std::printf("[ seed     ] Grid head_dim %d ratio %d block %d: %u, %u (reference: %s)\n",
                    head_dim, ratio, block_size, seed, seed + 1, ReferenceName().c_str());
        RunCase(g, decode, seed++);
        RunCase(g, mixed, seed++);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST_F(CudaAttentionDiffTest, LongPrefill) {
  std::printf("[ seed     ] LongPrefill: 7 (reference: %s)\n", ReferenceName().c_str());
  RunCase({128, 4, 16}, {{0, 300}, {200, 129}, {5000, 1}}, 7);
  RunCase({64, 1, 32}, {{0, 257}}, 8);
}

}  // namespace
}  // namespace tandem::gpu_test
