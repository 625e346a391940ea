// AVX2 + FMA + F16C vector helpers (the x86-64-v3 build floor). Header-only on purpose: the
// kernels are templates over a vector-traits type, instantiated once per ISA in files built
// with that ISA's flags (see simd_avx512.h), so no AVX-512 code can leak into baseline paths.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/weight_types.h"

namespace tandem::cpu {

// Every helper is a static member of the traits type (never a free inline function), so the
// copies built with AVX-512 flags have different symbols from the baseline ones.
struct Avx2 {
  using F = __m256;
  static constexpr int kWidth = 8;
  // Weight rows processed together against M rows of x: accumulators (rows * M) plus M x
  // vectors plus one weight vector must fit the 16 ymm registers.
  template <int M>
  static constexpr int RowsPerBlock() { return M == 1 ? 8 : M == 2 ? 4 : 2; }

  static F Zero() { return _mm256_setzero_ps(); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  // bf16 is the top half of an fp32: zero-extend to 32 bits and shift into place.
  static F Load(const uint16_t* p, Bf16Tag) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static F Load(const uint16_t* p, F16Tag) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  // Scalar widening for the tails of vector loops.
  static float Widen(float v) { return v; }
  static float Widen(uint16_t v, Bf16Tag) {
    const uint32_t bits = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  static float Widen(uint16_t v, F16Tag) { return _cvtsh_ss(v); }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Max(F a, F b) { return _mm256_max_ps(a, b); }
  // Fixed reduction order, so a dot product never depends on what was computed beside it.
  static float Sum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float ReduceMax(F v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  // exp(x) in fp32, Cephes-style: x = n*ln2 + r, |r| <= ln2/2, degree-6 polynomial; about
  // 1 ulp on [-87, 88]; inputs below -87.3 give ~1e-38 rather than 0 (callers tolerate it).
  static F Exp(F x) {
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447504f));
    F fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
    fx = _mm256_floor_ps(fx);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    F y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    const __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx),
                                                         _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
  }
};

}  // namespace tandem::cpu
