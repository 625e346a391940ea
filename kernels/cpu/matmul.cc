// Matmul dispatch: out[m, n] = x[m, k] . w[n, k]^T (+ bias).
//
// Small m (decode): the GEMV kernel (gemv_kernel.h) streams each weight row once, split over
// threads by output rows. Large m (prefill): each OpenMP thread takes a contiguous range of
// output columns, widens panels of w to fp32 in a per-thread buffer (BF16/F16 only) and runs a
// single-threaded OpenBLAS sgemm on it. OpenBLAS is pinned to one thread so that its own
// pthreads never compete with ours for the cores (measured in bench/cpu_kernels_bench.cc).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"

namespace tandem::cpu {
namespace {

// Above this m the sgemm path wins (see bench/cpu_kernels_bench.cc, "crossover").
// Measured on the 2048x768 BF16 shape, one core: GEMV 1.5 ms vs sgemm 1.9 ms at m = 32, about
// even at m = 48..64 (the GEMV turns compute-bound as m grows).
std::atomic<int64_t> g_gemv_max_rows{32};
std::atomic<GemmThreading> g_gemm_threading{GemmThreading::kOmpPanels};

// BF16/F16 w is widened in panels of this many rows (512 x 768 fp32 = 1.5 MiB per thread): large
// enough that OpenBLAS's re-packing of x per panel costs little, small enough to stay in L2.
constexpr int64_t kPanelRows = 512;

int64_t RoundUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

GemvRowsFn GemvFor(DType wtype) { return UseAvx512() ? GemvRowsAvx512(wtype) : GemvRowsAvx2(wtype); }

// OpenBLAS's thread count is process-wide; set it only when it has to change.
void SetOpenBlasThreads(int threads) {
  static std::atomic<int> current{-1};
  if (current.exchange(threads) != threads) openblas_set_num_threads(threads);
}

void Gemv(const float* x, int64_t m, int64_t k, const void* w, DType wtype, int64_t n, const float* bias, float* out,
          int num_threads) {
  const GemvRowsFn rows = GemvFor(wtype);
  // Below ~64K weight elements a parallel region costs more than it saves.
  const int threads =
      n * k < (int64_t{1} << 16) ? 1 : static_cast<int>(std::min<int64_t>(num_threads, std::max<int64_t>(1, n / 8)));
  if (threads <= 1) {
    rows(x, m, k, w, bias, out, n, 0, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    // Split by the team OpenMP gave, which may be smaller than asked (OMP_THREAD_LIMIT,
    // OMP_DYNAMIC, a call from inside another parallel region): a split by the request would
    // leave the missing threads' rows uncomputed.
    const int64_t team = omp_get_num_threads();
    const int64_t per = RoundUp((n + team - 1) / team, 8);
    const int64_t t = omp_get_thread_num();
    const int64_t n0 = std::min(n, t * per);
    const int64_t n1 = std::min(n, n0 + per);
    if (n0 < n1) rows(x, m, k, w, bias, out, n, n0, n1);
  }
}

// One thread's share of the sgemm path: columns [c0, c1) of out, in panels.
void GemmColumns(const float* x, int64_t m, int64_t k, const void* w, DType wtype, int64_t n, const float* bias,
                 float* out, int64_t c0, int64_t c1) {
  thread_local std::vector<float> panel;
  const int64_t cols = c1 - c0;
  // F32 w needs no widening: one sgemm over the whole range.
  const int64_t panels = wtype == DType::kF32 ? 1 : (cols + kPanelRows - 1) / kPanelRows;
  const int64_t step = RoundUp((cols + panels - 1) / panels, 16);
  for (int64_t p0 = c0; p0 < c1; p0 += step) {
    const int64_t pn = std::min(step, c1 - p0);
    const float* wp;
    if (wtype == DType::kF32) {
      wp = static_cast<const float*>(w) + p0 * k;
    } else {
      panel.resize(static_cast<size_t>(pn * k));
      WidenToF32(static_cast<const char*>(w) + p0 * k * DTypeSize(wtype), wtype, pn * k, panel.data());
      wp = panel.data();
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(pn), static_cast<int>(k),
                1.0f, x, static_cast<int>(k), wp, static_cast<int>(k), 0.0f, out + p0, static_cast<int>(n));
    if (bias != nullptr) {
      for (int64_t i = 0; i < m; ++i) {
        float* o = out + i * n + p0;
        for (int64_t j = 0; j < pn; ++j) o[j] += bias[p0 + j];
      }
    }
  }
}

// One sgemm with OpenBLAS's own threads, on w widened whole to fp32 (BF16/F16).
void GemmOpenBlasThreads(const float* x, int64_t m, int64_t k, const void* w, DType wtype, int64_t n, const float* bias,
                         float* out, int num_threads) {
  SetOpenBlasThreads(num_threads);
  thread_local std::vector<float> wide;
  const float* wf = static_cast<const float*>(w);
  if (wtype != DType::kF32) {
    wide.resize(static_cast<size_t>(n * k));
    float* dst = wide.data();  // the calling thread's buffer, filled by all threads
#pragma omp parallel for num_threads(num_threads) schedule(static)
    for (int64_t r = 0; r < n; r += 64) {
      WidenToF32(static_cast<const char*>(w) + r * k * DTypeSize(wtype), wtype, std::min<int64_t>(64, n - r) * k,
                 dst + r * k);
    }
    wf = dst;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0f, x, static_cast<int>(k), wf, static_cast<int>(k), 0.0f, out, static_cast<int>(n));
  if (bias != nullptr) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) out[i * n + j] += bias[j];
    }
  }
}

void Gemm(const float* x, int64_t m, int64_t k, const void* w, DType wtype, int64_t n, const float* bias, float* out,
          int num_threads) {
  if (g_gemm_threading.load(std::memory_order_relaxed) == GemmThreading::kOpenBlasThreads) {
    GemmOpenBlasThreads(x, m, k, w, wtype, n, bias, out, num_threads);
    return;
  }
  SetOpenBlasThreads(1);
  const int threads = static_cast<int>(std::min<int64_t>(num_threads, std::max<int64_t>(1, n / 16)));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int64_t team = omp_get_num_threads();  // as in Gemv: the team given, not the one asked
    const int64_t per = RoundUp((n + team - 1) / team, 16);
    const int64_t t = omp_get_thread_num();
    const int64_t c0 = std::min(n, t * per);
    const int64_t c1 = std::min(n, c0 + per);
    if (c0 < c1) GemmColumns(x, m, k, w, wtype, n, bias, out, c0, c1);
  }
}

}  // namespace

bool UseAvx512() {
  static const bool use = [] {
    const char* force = std::getenv("TANDEM_CPU_ISA");
    if (force != nullptr && std::strcmp(force, "avx2") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }();
  return use;
}

const char* IsaName() { return UseAvx512() ? "avx512" : "avx2"; }

int64_t GemvMaxRows() { return g_gemv_max_rows.load(std::memory_order_relaxed); }
void SetGemvMaxRowsForTesting(int64_t rows) { g_gemv_max_rows.store(rows); }
void SetGemmThreadingForBench(GemmThreading mode) { g_gemm_threading.store(mode); }

void Matmul(const float* x, int64_t m, int64_t k, const void* w, DType wtype, int64_t n, const float* bias, float* out,
            int num_threads) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: out = bias (or zero)
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) out[i * n + j] = bias ? bias[j] : 0.0f;
    }
    return;
  }
  if (m <= GemvMaxRows()) {
    Gemv(x, m, k, w, wtype, n, bias, out, num_threads);
  } else {
    Gemm(x, m, k, w, wtype, n, bias, out, num_threads);
  }
}

}  // namespace tandem::cpu
