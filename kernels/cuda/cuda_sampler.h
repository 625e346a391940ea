// Token sampling on the GPU from fp32 logits: greedy, temperature, top-k, top-p, min-p, with a
// per-request seed. Kept apart from Backend (which has no sampling op yet).
//
// Semantics (per row, in this order, as vLLM): temperature == 0 is greedy (argmax, the lowest
// index on ties). Otherwise p_i ∝ exp(logit_i / T); top-k keeps the k largest (ties at the
// boundary are kept); top-p keeps the smallest top set whose mass, within the top-k set, reaches
// top_p of it; min-p keeps p_i >= min_p * max p. One token is then drawn from the kept set.
//
// Reproducibility: the uniform number of a row is Philox4x32-10(key = seed, counter = step),
// and every reduction runs in a fixed order inside one block per row, so the same logits, seed
// and step give the same token whatever else is in the batch and on every run.
//
// Threading: one thread at a time; work runs on the stream given at creation.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <span>

#include "common/status.h"

namespace tandem::cuda {

struct GpuSamplingParams {
  float temperature = 1.0f;  // 0: greedy
  int32_t top_k = 0;         // <= 0 or >= vocab: off
  float top_p = 1.0f;        // in (0, 1]; 1: off
  float min_p = 0.0f;        // in [0, 1]; 0: off
  uint64_t seed = 0;
  uint64_t step = 0;  // e.g. tokens generated so far by the request
};

class CudaSampler {
 public:
  static Result<std::unique_ptr<CudaSampler>> Create(cudaStream_t stream);
  ~CudaSampler();
  CudaSampler(const CudaSampler&) = delete;
  CudaSampler& operator=(const CudaSampler&) = delete;

  // Samples one token per row and copies them to tokens (host memory) before returning.
  // REQUIRES: logits is device memory [batch, row_stride] with vocab <= row_stride;
  // params.size() == batch.
  Status Sample(const float* logits, int batch, int vocab, int64_t row_stride,
                std::span<const GpuSamplingParams> params, int32_t* tokens);

 private:
  explicit CudaSampler(cudaStream_t stream) : stream_(stream) {}
  Status Reserve(int batch);

  cudaStream_t stream_;
  int capacity_ = 0;
  GpuSamplingParams* host_params_ = nullptr;  // pinned
  GpuSamplingParams* device_params_ = nullptr;
  int32_t* device_tokens_ = nullptr;
  int32_t* host_tokens_ = nullptr;  // pinned
};

}  // namespace tandem::cuda
