// Element-type conversion to bf16 on the device (weights uploaded as F32 or F16).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tandem::cuda {

// dst[i] = bf16(src[i]) for i < n; src holds F32 (src_is_f32) or IEEE F16 values.
cudaError_t LaunchConvertToBf16(const void* src, bool src_is_f32, int64_t n, __nv_bfloat16* dst,
                                cudaStream_t stream);

}  // namespace tandem::cuda
