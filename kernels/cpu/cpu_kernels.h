// Internal entry points of the CPU kernels (raw pointers, no validation: cpu_backend.cc checks
// shapes and dtypes first). Not part of the Backend interface.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace tandem::cpu {

// True when the AVX-512 kernels may run (checked once; TANDEM_CPU_ISA=avx2 forces baseline).
bool UseAvx512();
const char* IsaName();

// out[i, j] = x[i, :] . w[j, :] + bias[j] for i < m, j in [n0, n1). x: [m, k] F32 contiguous;
// w: [n, k] of wtype; bias: F32 [n] or null; out row stride ldo. Single-threaded.
using GemvRowsFn = void (*)(const float* x, int64_t m, int64_t k, const void* w,
                            const float* bias, float* out, int64_t ldo, int64_t n0, int64_t n1);
GemvRowsFn GemvRowsAvx2(DType wtype);
GemvRowsFn GemvRowsAvx512(DType wtype);  // REQUIRES: UseAvx512()

// Matmul as the backend runs it: GEMV kernel for small m, OpenBLAS sgemm on fp32 panels of w
// for large m. bias: F32 [n] or null. Uses up to num_threads OpenMP threads.
void Matmul(const float* x, int64_t m, int64_t k, const void* w, DType wtype, int64_t n,
            const float* bias, float* out, int num_threads);
// The m at and below which Matmul uses the GEMV kernel.
int64_t GemvMaxRows();
void SetGemvMaxRowsForTesting(int64_t rows);
// How the sgemm path uses the cores: our OpenMP threads each running a single-threaded
// OpenBLAS on a column range (the default), or one call with OpenBLAS's own threads. The bench
// measures both; see matmul.cc for why the default won.
enum class GemmThreading { kOmpPanels, kOpenBlasThreads };
void SetGemmThreadingForBench(GemmThreading mode);

// Paged causal attention over an F32 cache (see Backend::Attention).
void Attention(const float* q, const KvCacheView& cache, const AttentionPlanView& plan,
               int num_heads, float scale, float* out, int num_threads);

// Row-wise ops. x, out: [n, dim] F32. weight: [dim] of wtype.
void RmsNorm(const float* x, const void* weight, DType wtype, int64_t n, int64_t dim, float eps,
             float* out, int num_threads);
// residual += x; out = RmsNorm(residual).
void AddRmsNorm(float* residual, const float* x, const void* weight, DType wtype, int64_t n,
                int64_t dim, float eps, float* out, int num_threads);
void SiluMul(const float* gate, const float* up, int64_t count, float* out, int num_threads);
void Rope(float* q, int64_t q_heads, float* k, int64_t k_heads, int64_t n,
          const int32_t* positions, const float* inv_freq, int head_dim, int num_threads);
// Widens rows of a table (F32/F16/BF16) into F32 rows: out[i] = table[ids[i]].
void EmbeddingRows(const void* table, DType wtype, int64_t dim, const int32_t* ids, int64_t n,
                   float* out, int num_threads);
// Widens count elements of src (wtype) into dst.
void WidenToF32(const void* src, DType wtype, int64_t count, float* dst);

}  // namespace tandem::cpu
