// Row gather: out[i] = x[indices[i]], for any element type (rows moved as bytes), and the
// bias add used when cuBLASLt cannot fuse the bias.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace tandem::cuda {

// Indices outside [0, rows) produce a zero row and raise kErrGatherIndex.
cudaError_t LaunchGatherRows(const void* x, int64_t rows, int64_t row_bytes,  // [rows, row_bytes]
                             const int32_t* indices, int64_t m,               // [m]
                             void* out,                                       // [m, row_bytes]
                             unsigned int* error_flags, cudaStream_t stream);

// out[i, j] += bias[j]; out is F32 (out_is_f32) or BF16, bias is F32 (bias_is_f32) or BF16.
cudaError_t LaunchAddBias(void* out, bool out_is_f32, int64_t m, int64_t n,  // [m, n]
                          const void* bias, bool bias_is_f32,                // [n]
                          cudaStream_t stream);

}  // namespace tandem::cuda
