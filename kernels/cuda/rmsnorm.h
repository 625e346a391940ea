// RMSNorm and fused residual-add + RMSNorm over bf16 rows, fp32 accumulation.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tandem::cuda {

// If residual != nullptr: residual += x (stored as bf16), then the norm reads the updated
// residual; else the norm reads x. out = v / sqrt(mean(v^2) + eps) * weight.
// weight is F32 (weight_is_f32) or BF16, [dim].
cudaError_t LaunchRmsNorm(const __nv_bfloat16* x, int64_t x_stride,          // [n, dim]
                          __nv_bfloat16* residual, int64_t residual_stride,  // [n, dim] or null
                          const void* weight, bool weight_is_f32,            // [dim]
                          int64_t n, int64_t dim, float eps, __nv_bfloat16* out,
                          int64_t out_stride,  // [n, dim]
                          cudaStream_t stream);

}  // namespace tandem::cuda
