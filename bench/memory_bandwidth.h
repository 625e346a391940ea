// Measures the machine's memory read bandwidth, the ceiling decode is compared against: every
// thread sums its share of a buffer far larger than the caches, split into `streams` interleaved
// sequential streams (one stream per core leaves line-fill buffers idle on this kind of machine;
// the GEMV kernel reads 8 rows at once). Best of several passes, and best over stream counts.
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <map>

namespace tandem::bench {

// GB/s (1e9 bytes/s) reading `n` floats of `buf` with `streams` streams per thread (<= 16).
inline double ReadBandwidthGBs(const float* buf, size_t n, int threads, int streams, int passes) {
  double best = 0;
  volatile float sink = 0;
  for (int p = 0; p < passes; ++p) {
    float total = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      const size_t per = n / threads / streams / 32 * 32;  // floats per stream
      const float* base = buf + static_cast<size_t>(omp_get_thread_num()) * per * streams;
      __m256 acc[16];
      for (auto& a : acc) a = _mm256_setzero_ps();
      for (size_t i = 0; i < per; i += 32) {
        for (int st = 0; st < streams; ++st) {
          const float* q = base + st * per + i;
          acc[st] = _mm256_add_ps(acc[st], _mm256_add_ps(_mm256_add_ps(_mm256_load_ps(q), _mm256_load_ps(q + 8)),
                                                         _mm256_add_ps(_mm256_load_ps(q + 16), _mm256_load_ps(q + 24))));
        }
      }
      __m256 r = acc[0];
      for (int st = 1; st < 16; ++st) r = _mm256_add_ps(r, acc[st]);
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, r);
      for (float l : lanes) total += l;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink + total;
    const size_t bytes = n / threads / streams / 32 * 32 * threads * streams * sizeof(float);
    best = std::max(best, bytes / secs / 1e9);
  }
  return best;
}

struct BandwidthReading {
  double best_gbs = 0;
  std::map<int, double> by_streams;  // streams per thread -> GB/s
};

// The ceiling: the best read rate over 1, 4, 8 and 16 streams per thread.
inline BandwidthReading MeasureReadBandwidth(size_t bytes, int threads, int passes = 5) {
  if (threads <= 0) threads = omp_get_max_threads();
  const size_t n = bytes / sizeof(float);
  auto* buf = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = static_cast<float>(i & 7) + 1.0f;  // touch every page
  BandwidthReading r;
  for (int streams : {1, 4, 8, 16}) {
    const double gbs = ReadBandwidthGBs(buf, n, threads, streams, passes);
    r.by_streams[streams] = gbs;
    r.best_gbs = std::max(r.best_gbs, gbs);
  }
  std::free(buf);
  return r;
}

}  // namespace tandem::bench
