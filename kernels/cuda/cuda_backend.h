// The CUDA backend: bf16 activations and KV cache, fp32 accumulation, one cudaStream per
// backend on which every op and copy is ordered. Kernels live one family per file beside this
// one; matrix products go through cuBLASLt.
//
// Errors: every CUDA/cuBLAS call is checked (CUDA_RETURN_IF_ERROR, cuda_status.h). Kernels that
// find bad indices on the device (token ids, gather indices, slots, block ids) set a flag that
// Synchronize() turns into an INVALID_ARGUMENT/OUT_OF_RANGE Status.
//
// Threading: one thread at a time, like every Backend.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_status.h"

namespace tandem::cuda {

class CublasLtMatmul;

class CudaBackend final : public Backend {
 public:
  static Result<std::unique_ptr<CudaBackend>> Create(const BackendOptions& options);
  ~CudaBackend() override;

  // The stream every op runs on; other CUDA code (the sampler) may order its work after it.
  cudaStream_t stream() const { return stream_; }
  int device() const { return device_; }
  int num_sms() const { return num_sms_; }

  std::string_view name() const override { return "cuda"; }
  DType activation_dtype() const override { return DType::kBF16; }
  DType kv_cache_dtype() const override { return DType::kBF16; }
  // gpu_memory_utilization * free device memory now, minus a margin for activations and
  // workspaces. Ask after the weights are uploaded.
  size_t kv_cache_budget_bytes() const override;

  Result<DeviceBuffer> Allocate(size_t bytes) override;
  // Both copies complete before returning (the host buffer may be reused at once).
  Status CopyToDevice(void* dst, const void* src, size_t bytes) override;
  Status CopyToHost(void* dst, const void* src, size_t bytes) override;
  Status Synchronize() override;
  // F32, F16 or BF16 in; BF16 on the device, same shape.
  Result<DeviceWeight> UploadWeight(const TensorView& host) override;

  Status Embedding(const TensorView& table, const int32_t* ids, TensorView out) override;
  Status RmsNorm(const TensorView& x, const TensorView& weight, float eps, TensorView out) override;
  Status AddRmsNorm(TensorView residual, const TensorView& x, const TensorView& weight, float eps,
                    TensorView out) override;
  Status Matmul(const TensorView& x, const TensorView& w, const TensorView* bias,
                TensorView out) override;
  Status Rope(TensorView q, TensorView k, const int32_t* positions, const float* inv_freq,
              int head_dim) override;
  Status WriteKv(const TensorView& k, const TensorView& v, const int64_t* slot_mapping,
                 const KvCacheView& cache) override;
  Status Attention(const TensorView& q, const KvCacheView& cache, const AttentionPlanView& plan,
                   int num_heads, float scale, TensorView out) override;
  Status SiluMul(const TensorView& gate, const TensorView& up, TensorView out) override;
  Status GatherRows(const TensorView& x, const int32_t* indices, TensorView out) override;

 private:
  explicit CudaBackend(const BackendOptions& options) : options_(options) {}
  Status Init();
  // Grows the attention workspace; synchronises first when it must free the old one.
  Status EnsureWorkspace(size_t bytes);

  BackendOptions options_;
  int device_ = 0;
  int num_sms_ = 0;
  cudaStream_t stream_ = nullptr;
  unsigned int* error_flags_ = nullptr;       // device word, kErr* bits (cuda_common.cuh)
  unsigned int* host_error_flags_ = nullptr;  // pinned mirror read by Synchronize()
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::unique_ptr<CublasLtMatmul> matmul_;
};

}  // namespace tandem::cuda
