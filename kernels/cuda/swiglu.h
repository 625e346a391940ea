// SwiGLU activation: out = silu(gate) * up, bf16 in and out, fp32 math.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tandem::cuda {

cudaError_t LaunchSiluMul(const __nv_bfloat16* gate, int64_t gate_stride,  // [n, inter]
                          const __nv_bfloat16* up, int64_t up_stride,      // [n, inter]
                          int64_t n, int64_t inter, __nv_bfloat16* out,
                          int64_t out_stride,  // [n, inter]
                          cudaStream_t stream);

}  // namespace tandem::cuda
