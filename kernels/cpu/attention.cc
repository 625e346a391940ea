// Paged causal attention on the CPU, for any mix of prefill chunks and decode tokens.
//
// Work is split into items (sequence, kv head, run of query tokens); an item computes every
// query head that shares the kv head (GQA group) for its tokens, so each K/V block is loaded
// once per item and reused from L1 by all of its rows. Per row: scores = q.k * scale over the
// causal prefix [0, position], an exact fp32 softmax (max-subtracted), then p.V.
//
// Invariant (batch invariance): a row's result depends only on its query, its position and
// the cache, never on the other rows of the item or batch: each dot product and each weighted
// sum runs in a fixed order.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd_avx2.h"

namespace tandem::cpu {
namespace {

using V = Avx2;
constexpr int kW = V::kWidth;
// Scores of one item are kept whole (two-pass softmax); cap their size per thread.
constexpr int64_t kScoreBudgetFloats = int64_t{1} << 18;  // 1 MiB
constexpr int kMaxTokensPerItem = 16;

struct Item {
  int seq;
  int kv_head;
  int t0, t1;  // token indices into the batch
};

// dot(q, k_j) for `count` consecutive keys (stride hd); one fixed order per dot product.
void Dots(const float* q, const float* k, int hd, int count, float* out) {
  const int hv = hd / kW * kW;
  int j = 0;
  for (; j + 4 <= count; j += 4) {
    const float* k0 = k + static_cast<int64_t>(j) * hd;
    V::F a0 = V::Zero(), a1 = V::Zero(), a2 = V::Zero(), a3 = V::Zero();
    for (int p = 0; p < hv; p += kW) {
      const V::F qv = V::Load(q + p);
      a0 = V::Fma(qv, V::Load(k0 + p), a0);
      a1 = V::Fma(qv, V::Load(k0 + hd + p), a1);
      a2 = V::Fma(qv, V::Load(k0 + 2 * hd + p), a2);
      a3 = V::Fma(qv, V::Load(k0 + 3 * hd + p), a3);
    }
    float s[4] = {V::Sum(a0), V::Sum(a1), V::Sum(a2), V::Sum(a3)};
    for (int u = 0; u < 4; ++u) {
      for (int p = hv; p < hd; ++p) s[u] += q[p] * k0[u * hd + p];
      out[j + u] = s[u];
    }
  }
  for (; j < count; ++j) {
    const float* kj = k + static_cast<int64_t>(j) * hd;
    V::F a = V::Zero();
    for (int p = 0; p < hv; p += kW) a = V::Fma(V::Load(q + p), V::Load(kj + p), a);
    float s = V::Sum(a);
    for (int p = hv; p < hd; ++p) s += q[p] * kj[p];
    out[j] = s;
  }
}

// In place: s[0..n) -> softmax(s * scale).
void Softmax(float* s, int n, float scale) {
  const V::F vscale = V::Set1(scale);
  alignas(32) float tmp[kW];
  int i = 0;
  V::F vmax = V::Set1(-INFINITY);
  for (; i + kW <= n; i += kW) {
    const V::F x = V::Mul(V::Load(s + i), vscale);
    V::Store(s + i, x);
    vmax = V::Max(vmax, x);
  }
  float mx = V::ReduceMax(vmax);
  for (; i < n; ++i) {
    s[i] *= scale;
    mx = std::max(mx, s[i]);
  }
  // exp(s - max) for every element through the vector path (a padded tail), so the value of
  // an element never depends on where the row's end falls.
  const V::F vm = V::Set1(mx);
  V::F vsum = V::Zero();
  for (i = 0; i < n; i += kW) {
    const int avail = std::min(kW, n - i);
    for (int u = 0; u < kW; ++u) tmp[u] = u < avail ? s[i + u] : mx;
    V::F e = V::Exp(_mm256_sub_ps(V::Load(tmp), vm));
    if (avail < kW) {
      V::Store(tmp, e);
      for (int u = avail; u < kW; ++u) tmp[u] = 0.0f;
      e = V::Load(tmp);
      for (int u = 0; u < avail; ++u) s[i + u] = tmp[u];
    } else {
      V::Store(s + i, e);
    }
    vsum = V::Add(vsum, e);
  }
  const float inv = 1.0f / V::Sum(vsum);
  for (i = 0; i < n; ++i) s[i] *= inv;
}

// out[d] = sum_j p[j] * v_j[d] over the row's keys, walking the block table.
void WeightedSum(const float* p, int n_keys, const float* v_cache, const int32_t* block_table,
                 int64_t block_stride, int bs, int hd, float* out) {
  constexpr int kChunk = 4 * kW;  // 4 accumulators per pass over the keys
  int d = 0;
  for (; d + kChunk <= hd; d += kChunk) {
    V::F a0 = V::Zero(), a1 = V::Zero(), a2 = V::Zero(), a3 = V::Zero();
    for (int b = 0; b * bs < n_keys; ++b) {
      const float* vb = v_cache + block_table[b] * block_stride + d;
      const int cnt = std::min(bs, n_keys - b * bs);
      const float* pb = p + b * bs;
      for (int j = 0; j < cnt; ++j) {
        const V::F pj = V::Set1(pb[j]);
        const float* vr = vb + static_cast<int64_t>(j) * hd;
        a0 = V::Fma(pj, V::Load(vr), a0);
        a1 = V::Fma(pj, V::Load(vr + kW), a1);
        a2 = V::Fma(pj, V::Load(vr + 2 * kW), a2);
        a3 = V::Fma(pj, V::Load(vr + 3 * kW), a3);
      }
    }
    V::Store(out + d, a0);
    V::Store(out + d + kW, a1);
    V::Store(out + d + 2 * kW, a2);
    V::Store(out + d + 3 * kW, a3);
  }
  for (; d < hd; ++d) {  // head_dim not a multiple of 32: the rest one lane at a time
    float a = 0.0f;
    for (int b = 0; b * bs < n_keys; ++b) {
      const float* vb = v_cache + block_table[b] * block_stride + d;
      const int cnt = std::min(bs, n_keys - b * bs);
      for (int j = 0; j < cnt; ++j) a += p[b * bs + j] * vb[static_cast<int64_t>(j) * hd];
    }
    out[d] = a;
  }
}

void RunItem(const Item& it, const float* q, const KvCacheView& cache,
             const AttentionPlanView& plan, int num_heads, float scale, float* out,
             std::vector<float>& scores) {
  const int kvh_count = cache.num_kv_heads;
  const int group = num_heads / kvh_count;
  const int hd = cache.head_dim;
  const int bs = cache.block_size;
  const int64_t q_stride = static_cast<int64_t>(num_heads) * hd;
  const int64_t block_stride = static_cast<int64_t>(kvh_count) * bs * hd;  // floats per block
  const float* k_cache = static_cast<const float*>(cache.k) + static_cast<int64_t>(it.kv_head) * bs * hd;
  const float* v_cache = static_cast<const float*>(cache.v) + static_cast<int64_t>(it.kv_head) * bs * hd;
  const int32_t* table = plan.block_tables + static_cast<int64_t>(it.seq) * plan.max_blocks_per_seq;

  int kmax = 0;
  for (int t = it.t0; t < it.t1; ++t) kmax = std::max(kmax, plan.positions[t] + 1);
  const int rows = (it.t1 - it.t0) * group;
  scores.resize(static_cast<size_t>(rows) * kmax);

  // Scores, block by block so each K block is reused by all rows while it is in L1.
  for (int b = 0; b * bs < kmax; ++b) {
    const float* kb = k_cache + table[b] * block_stride;
    for (int t = it.t0; t < it.t1; ++t) {
      const int valid = std::min(bs, plan.positions[t] + 1 - b * bs);
      if (valid <= 0) continue;
      for (int g = 0; g < group; ++g) {
        const int r = (t - it.t0) * group + g;
        const float* qr = q + t * q_stride + static_cast<int64_t>(it.kv_head * group + g) * hd;
        Dots(qr, kb, hd, valid, scores.data() + static_cast<int64_t>(r) * kmax + b * bs);
      }
    }
  }
  for (int t = it.t0; t < it.t1; ++t) {
    const int n_keys = plan.positions[t] + 1;
    for (int g = 0; g < group; ++g) {
      const int r = (t - it.t0) * group + g;
      float* p = scores.data() + static_cast<int64_t>(r) * kmax;
      Softmax(p, n_keys, scale);
      float* o = out + t * q_stride + static_cast<int64_t>(it.kv_head * group + g) * hd;
      WeightedSum(p, n_keys, v_cache, table, block_stride, bs, hd, o);
    }
  }
}

}  // namespace

void Attention(const float* q, const KvCacheView& cache, const AttentionPlanView& plan,
               int num_heads, float scale, float* out, int num_threads) {
  const int group = num_heads / cache.num_kv_heads;
  std::vector<Item> items;
  int64_t total_work = 0;
  for (int s = 0; s < plan.num_seqs; ++s) {
    const int t_begin = plan.query_start[s], t_end = plan.query_start[s + 1];
    if (t_begin == t_end) continue;
    const int64_t ctx = std::max(1, plan.context_lens[s]);
    const int per_item = static_cast<int>(std::clamp<int64_t>(
        kScoreBudgetFloats / (group * ctx), 1, kMaxTokensPerItem));
    for (int t0 = t_begin; t0 < t_end; t0 += per_item) {
      const int t1 = std::min(t_end, t0 + per_item);
      for (int h = 0; h < cache.num_kv_heads; ++h) items.push_back({s, h, t0, t1});
      total_work += (t1 - t0) * ctx;
    }
  }
  const int threads = total_work * num_heads * cache.head_dim < (1 << 15)
                          ? 1
                          : std::max(1, std::min<int>(num_threads, static_cast<int>(items.size())));
#pragma omp parallel num_threads(threads)
  {
    thread_local std::vector<float> scores;
#pragma omp for schedule(dynamic, 1)
    for (size_t i = 0; i < items.size(); ++i) {
      RunItem(items[i], q, cache, plan, num_heads, scale, out, scores);
    }
  }
}

}  // namespace tandem::cpu
