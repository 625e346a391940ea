// Row-wise and element-wise CPU kernels: RMSNorm, SiLU-and-multiply, RoPE, embedding rows,
// dtype widening. Each output element is computed the same way wherever it sits in the batch
// (vector tails go through a padded copy, not a different scalar formula).
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
// Below this many elements an op runs on the calling thread: a parallel region costs ~1-2 us.
constexpr int64_t kParallelMinElems = 1 << 15;

int ThreadsFor(int64_t elems, int64_t units, int num_threads) {
  if (elems < kParallelMinElems) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads, units)));
}

template <class W>
void WidenTyped(const typename W::T* src, int64_t count, float* dst) {
  int64_t i = 0;
  for (; i + kW <= count; i += kW) V::Store(dst + i, W::template Load<V>(src + i));
  for (; i < count; ++i) dst[i] = W::template Scalar<V>(src[i]);
}

// Widens up to kW weights starting at element i (a tail is zero-padded).
template <class W>
V::F LoadWeight(const void* w, int64_t i, int64_t dim) {
  const auto* p = static_cast<const typename W::T*>(w) + i;
  if (i + kW <= dim) return W::template Load<V>(p);
  alignas(32) float tmp[kW] = {};
  for (int64_t j = 0; j < dim - i; ++j) tmp[j] = W::template Scalar<V>(p[j]);
  return V::Load(tmp);
}

V::F LoadPadded(const float* p, int64_t avail) {
  if (avail >= kW) return V::Load(p);
  alignas(32) float tmp[kW] = {};
  for (int64_t j = 0; j < avail; ++j) tmp[j] = p[j];
  return V::Load(tmp);
}

void StorePartial(float* p, V::F v, int64_t avail) {
  if (avail >= kW) {
    V::Store(p, v);
    return;
  }
  alignas(32) float tmp[kW];
  V::Store(tmp, v);
  for (int64_t j = 0; j < avail; ++j) p[j] = tmp[j];
}

// HF LlamaRMSNorm in fp32: out = w * (x * rsqrt(mean(x^2) + eps)).
template <class W>
void NormRow(const float* x, const void* w, int64_t dim, float eps, float* out) {
  V::F acc0 = V::Zero(), acc1 = V::Zero();
  int64_t i = 0;
  for (; i + 2 * kW <= dim; i += 2 * kW) {
    const V::F a = V::Load(x + i), b = V::Load(x + i + kW);
    acc0 = V::Fma(a, a, acc0);
    acc1 = V::Fma(b, b, acc1);
  }
  for (; i < dim; i += kW) {
    const V::F a = LoadPadded(x + i, dim - i);
    acc0 = V::Fma(a, a, acc0);
  }
  const float mean = V::Sum(V::Add(acc0, acc1)) / static_cast<float>(dim);
  const V::F r = V::Set1(1.0f / std::sqrt(mean + eps));
  for (i = 0; i < dim; i += kW) {
    const V::F y = V::Mul(LoadWeight<W>(w, i, dim), V::Mul(LoadPadded(x + i, dim - i), r));
    StorePartial(out + i, y, dim - i);
  }
}

using NormRowFn = void (*)(const float*, const void*, int64_t, float, float*);
NormRowFn NormRowFor(DType wtype) {
  switch (wtype) {
    case DType::kF32: return &NormRow<F32W>;
    case DType::kBF16: return &NormRow<Bf16W>;
    case DType::kF16: return &NormRow<F16W>;
  }
  return nullptr;
}

}  // namespace

void WidenToF32(const void* src, DType wtype, int64_t count, float* dst) {
  switch (wtype) {
    case DType::kF32: std::copy_n(static_cast<const float*>(src), count, dst); return;
    case DType::kBF16: WidenTyped<Bf16W>(static_cast<const uint16_t*>(src), count, dst); return;
    case DType::kF16: WidenTyped<F16W>(static_cast<const uint16_t*>(src), count, dst); return;
  }
}

void RmsNorm(const float* x, const void* weight, DType wtype, int64_t n, int64_t dim, float eps,
             float* out, int num_threads) {
  const NormRowFn row = NormRowFor(wtype);
#pragma omp parallel for num_threads(ThreadsFor(n * dim, n, num_threads)) schedule(static)
  for (int64_t t = 0; t < n; ++t) row(x + t * dim, weight, dim, eps, out + t * dim);
}

void AddRmsNorm(float* residual, const float* x, const void* weight, DType wtype, int64_t n,
                int64_t dim, float eps, float* out, int num_threads) {
  const NormRowFn row = NormRowFor(wtype);
#pragma omp parallel for num_threads(ThreadsFor(n * dim, n, num_threads)) schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    float* r = residual + t * dim;
    const float* xr = x + t * dim;
    for (int64_t i = 0; i < dim; ++i) r[i] += xr[i];
    row(r, weight, dim, eps, out + t * dim);
  }
}

void SiluMul(const float* gate, const float* up, int64_t count, float* out, int num_threads) {
  const int64_t vecs = (count + kW - 1) / kW;
  const V::F one = V::Set1(1.0f);
  const V::F neg = V::Set1(-1.0f);
#pragma omp parallel for num_threads(ThreadsFor(count, vecs, num_threads)) schedule(static)
  for (int64_t v = 0; v < vecs; ++v) {
    const int64_t i = v * kW;
    const V::F g = LoadPadded(gate + i, count - i);
    const V::F u = LoadPadded(up + i, count - i);
    // silu(g) = g / (1 + exp(-g)), as torch computes it.
    const V::F s = _mm256_div_ps(g, V::Add(one, V::Exp(V::Mul(g, neg))));
    StorePartial(out + i, V::Mul(s, u), count - i);
  }
}

void Rope(float* q, int64_t q_heads, float* k, int64_t k_heads, int64_t n,
          const int32_t* positions, const float* inv_freq, int head_dim, int num_threads) {
  const int half = head_dim / 2;
  const int64_t elems = n * (q_heads + k_heads) * head_dim;
#pragma omp parallel num_threads(ThreadsFor(elems, n, num_threads))
  {
    std::vector<float> cos_t(half), sin_t(half);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n; ++t) {
      // torch: freqs = inv_freq.float() @ position.float() in fp32, then cos/sin in fp32.
      const float pos = static_cast<float>(positions[t]);
      for (int j = 0; j < half; ++j) {
        const float angle = pos * inv_freq[j];
        cos_t[j] = std::cos(angle);
        sin_t[j] = std::sin(angle);
      }
      auto rotate = [&](float* base, int64_t heads) {
        for (int64_t h = 0; h < heads; ++h) {
          float* x = base + h * head_dim;
          for (int j = 0; j < half; ++j) {
            const float x1 = x[j], x2 = x[j + half];
            // q * cos + rotate_half(q) * sin, two products then a sum (no FMA), like torch.
            const float a = x1 * cos_t[j];
            const float b = -x2 * sin_t[j];
            const float c = x2 * cos_t[j];
            const float d = x1 * sin_t[j];
            x[j] = a + b;
            x[j + half] = c + d;
          }
        }
      };
      rotate(q + t * q_heads * head_dim, q_heads);
      if (k != nullptr) rotate(k + t * k_heads * head_dim, k_heads);
    }
  }
}

void EmbeddingRows(const void* table, DType wtype, int64_t dim, const int32_t* ids, int64_t n,
                   float* out, int num_threads) {
  const auto* base = static_cast<const char*>(table);
  const size_t row_bytes = static_cast<size_t>(dim) * DTypeSize(wtype);
#pragma omp parallel for num_threads(ThreadsFor(n * dim, n, num_threads)) schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    WidenToF32(base + static_cast<size_t>(ids[t]) * row_bytes, wtype, dim, out + t * dim);
  }
}

}  // namespace tandem::cpu
