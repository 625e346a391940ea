// out[m, n] = x[m, k] @ w[n, k]^T (+ bias[n]) through cuBLASLt: bf16 operands, fp32 compute,
// bf16 or fp32 output. The bias rides the BIAS epilogue when its dtype matches the output's
// (cuBLASLt's default bias type), else a separate kernel adds it.
//
// Threading: one thread at a time (the owning backend's). Plans are cached per shape.
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "common/status.h"
#include "kernels/dtype.h"

namespace tandem::cuda {

class CublasLtMatmul {
 public:
  static constexpr size_t kDefaultWorkspaceBytes = size_t{32} << 20;  // Hopper's recommendation

  static Result<std::unique_ptr<CublasLtMatmul>> Create(
      size_t workspace_bytes = kDefaultWorkspaceBytes);
  ~CublasLtMatmul();
  CublasLtMatmul(const CublasLtMatmul&) = delete;
  CublasLtMatmul& operator=(const CublasLtMatmul&) = delete;

  // REQUIRES: out_dtype and bias_dtype are F32 or BF16; rows of x, w and out are contiguous.
  Status Run(const __nv_bfloat16* x,              // [m, k]
             const __nv_bfloat16* w,              // [n, k]
             const void* bias, DType bias_dtype,  // [n] or nullptr
             void* out, DType out_dtype,          // [m, n]
             int64_t m, int64_t n, int64_t k, cudaStream_t stream);

 private:
  struct Plan;
  // (m, n, k, out dtype, fused bias, alignment of x, w, out in bytes)
  using Key = std::tuple<int64_t, int64_t, int64_t, int, bool, int, int, int>;

  CublasLtMatmul() = default;
  Result<Plan*> GetPlan(const Key& key, DType out_dtype);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace tandem::cuda
