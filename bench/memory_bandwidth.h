// Measures the machine's memory read bandwidth: all threads, 256-bit vector loads over a buffer
// far larger than the caches, best of several passes. The ceiling decode is compared against.
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace tandem::bench {

// Returns GB/s (1e9 bytes per second).
inline double MeasureReadBandwidthGBs(size_t bytes = size_t{1} << 30, int passes = 5, int threads = 0) {
  if (threads <= 0) threads = omp_get_max_threads();
  const size_t n = bytes / sizeof(__m256);
  auto* buf = static_cast<__m256*>(std::aligned_alloc(64, n * sizeof(__m256)));
  // Touch every page in parallel (first-touch placement) with non-zero data.
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = _mm256_set1_ps(static_cast<float>(i & 7) + 1.0f);
  double best = 0.0;
  volatile float sink = 0.0f;
  for (int p = 0; p < passes; ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
#pragma omp for schedule(static)
      for (size_t i = 0; i < n; i += 4) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(reinterpret_cast<const float*>(buf + i)));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(reinterpret_cast<const float*>(buf + i + 1)));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(reinterpret_cast<const float*>(buf + i + 2)));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(reinterpret_cast<const float*>(buf + i + 3)));
      }
      __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
      float lanes[8];
      _mm256_storeu_ps(lanes, s);
      for (float l : lanes) total += l;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink + total;
    best = std::max(best, static_cast<double>(n) * sizeof(__m256) / secs / 1e9);
  }
  std::free(buf);
  return best;
}

}  // namespace tandem::bench
