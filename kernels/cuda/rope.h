// Rotary position embedding in place on Q and K, HF "rotate half" convention.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tandem::cuda {

// For token t and every head: (x[j], x[j + d/2]) rotates by angle positions[t] * inv_freq[j],
// computed in fp32. q or k may be null (then that tensor is skipped).
cudaError_t LaunchRope(__nv_bfloat16* q, int64_t q_stride, int num_heads,     // [n, q_stride]
                       __nv_bfloat16* k, int64_t k_stride, int num_kv_heads,  // [n, k_stride]
                       const int32_t* positions,                              // [n]
                       const float* inv_freq,                                 // [head_dim / 2]
                       int64_t n, int head_dim, cudaStream_t stream);

}  // namespace tandem::cuda
