// Embedding gather: out[i] = table[ids[i]] (bf16 rows).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tandem::cuda {

// Ids outside [0, vocab) produce a zero row and raise kErrTokenId in *error_flags.
cudaError_t LaunchEmbedding(const __nv_bfloat16* table,  // [vocab, hidden]
                            int64_t vocab, int64_t hidden,
                            const int32_t* ids,  // [n]
                            int64_t n,
                            __nv_bfloat16* out,  // [n, out_stride]
                            int64_t out_stride, unsigned int* error_flags, cudaStream_t stream);

}  // namespace tandem::cuda
