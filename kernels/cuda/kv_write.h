// Scatter of new K/V rows into the paged cache through the slot mapping.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tandem::cuda {

// Cache layout [num_blocks, num_kv_heads, block_size, head_dim] (kernels/backend.h).
// Token t goes to block slot_mapping[t] / block_size, slot slot_mapping[t] % block_size.
// A negative slot skips the token (padding); a slot past the cache raises kErrSlot.
cudaError_t LaunchWriteKv(const __nv_bfloat16* k, int64_t k_stride,  // [n, kv_heads * head_dim]
                          const __nv_bfloat16* v, int64_t v_stride,  // [n, kv_heads * head_dim]
                          const int64_t* slot_mapping,               // [n]
                          int64_t n, __nv_bfloat16* k_cache, __nv_bfloat16* v_cache, int num_blocks,
                          int num_kv_heads, int block_size, int head_dim, unsigned int* error_flags,
                          cudaStream_t stream);

}  // namespace tandem::cuda
