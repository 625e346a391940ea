// The small-m matmul ("GEMV") kernel: out[i, j] = x[i, :] . w[j, :] (+ bias[j]) for every row
// i < m of x and rows j in [n0, n1) of w. Each weight row is streamed from memory once and
// widened to fp32 in registers; all m dot products are computed from it (rows beyond the first
// group of x re-read it from L1/L2). Memory-bound by design: decode reads every weight once.
//
// Invariant (batch invariance): every dot product accumulates lane-wise over k in the same
// order and is reduced by V::Sum, whatever m and the row blocking are, so a token's result does
// not depend on which other tokens share the batch.
//
// Template over vector traits V (simd_avx2.h / simd_avx512.h) and weight type W
// (weight_types.h); instantiated once per ISA in gemv_avx2.cc / gemv_avx512.cc.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace tandem::cpu {

template <class V, class W>
struct GemvKernel {
  using T = typename W::T;
  using F = typename V::F;

  // R rows of w against M rows of x. out points at out[0, j0]; bias at bias[j0] or null.
  // pf: the same rows of the next row group, prefetched into L2 while this one computes
  // (weight rows are short: 1.5 KB for bf16 x 768, too short for the hardware streamer to
  // ramp up on its own), or null.
  template <int R, int M>
  static void Block(const float* x, int64_t k, const T* w, const float* bias, float* out,
                    int64_t ldo, const T* pf) {
    F acc[R][M];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i) acc[r][i] = V::Zero();
    }
    const int64_t kv = k / V::kWidth * V::kWidth;
    for (int64_t p = 0; p < kv; p += V::kWidth) {
      if (pf != nullptr) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          _mm_prefetch(reinterpret_cast<const char*>(pf + r * k + p), _MM_HINT_T1);
        }
      }
      F xv[M];
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i) xv[i] = V::Load(x + i * k + p);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const F wv = W::template Load<V>(w + r * k + p);
#pragma GCC unroll 16
        for (int i = 0; i < M; ++i) acc[r][i] = V::Fma(wv, xv[i], acc[r][i]);
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int i = 0; i < M; ++i) {
        float s = V::Sum(acc[r][i]);
        for (int64_t p = kv; p < k; ++p) s += x[i * k + p] * W::template Scalar<V>(w[r * k + p]);
        if (bias != nullptr) s += bias[r];
        out[i * ldo + r] = s;
      }
    }
  }

  // Rows [j0, j0 + R) of w against all m rows of x, in groups of up to 4 x rows; the first
  // group prefetches `next` (the next row group, or null).
  template <int R>
  static void RowGroup(const float* x, int64_t m, int64_t k, const T* w, const float* bias,
                       float* out, int64_t ldo, int64_t j0, const T* next) {
    const T* wr = w + j0 * k;
    const float* b = bias ? bias + j0 : nullptr;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4, next = nullptr) {
      Sub<R, 4>(x + i * k, k, wr, b, out + i * ldo + j0, ldo, next);
    }
    switch (m - i) {
      case 3: Sub<R, 3>(x + i * k, k, wr, b, out + i * ldo + j0, ldo, next); break;
      case 2: Sub<R, 2>(x + i * k, k, wr, b, out + i * ldo + j0, ldo, next); break;
      case 1: Sub<R, 1>(x + i * k, k, wr, b, out + i * ldo + j0, ldo, next); break;
      default: break;
    }
  }

  // Splits R rows into blocks of V's register budget for M x rows.
  template <int R, int M>
  static void Sub(const float* x, int64_t k, const T* w, const float* bias, float* out,
                  int64_t ldo, const T* next) {
    constexpr int kSub = V::template RowsPerBlock<M>() < R ? V::template RowsPerBlock<M>() : R;
    static_assert(R % kSub == 0);
#pragma GCC unroll 1
    for (int r = 0; r < R; r += kSub) {
      Block<kSub, M>(x, k, w + r * k, bias ? bias + r : nullptr, out + r, ldo,
                     next ? next + r * k : nullptr);
    }
  }

  static void Rows(const float* x, int64_t m, int64_t k, const void* w_any, const float* bias,
                   float* out, int64_t ldo, int64_t n0, int64_t n1) {
    const T* w = static_cast<const T*>(w_any);
    constexpr int kGroup = 8;
    int64_t j = n0;
    for (; j + kGroup <= n1; j += kGroup) {
      const T* next = j + 2 * kGroup <= n1 ? w + (j + kGroup) * k : nullptr;
      RowGroup<kGroup>(x, m, k, w, bias, out, ldo, j, next);
    }
    for (; j < n1; ++j) RowGroup<1>(x, m, k, w, bias, out, ldo, j, nullptr);
  }
};

}  // namespace tandem::cpu
