#include <algorithm>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gather.h"

namespace tandem::cuda {
namespace {

// One block per output row; T is the widest unit that divides the row and the alignment.
template <typename T>
__global__ void GatherRowsKernel(const char* __restrict__ x, int64_t rows, int64_t row_bytes,
                                 const int32_t* __restrict__ indices, char* __restrict__ out,
                                 unsigned int* error_flags) {
  const int64_t i = blockIdx.x;
  const int32_t src_row = indices[i];
  const bool valid = src_row >= 0 && src_row < rows;
  if (!valid && threadIdx.x == 0) RaiseDeviceError(error_flags, kErrGatherIndex);
  const T* src =
      reinterpret_cast<const T*>(x + static_cast<int64_t>(valid ? src_row : 0) * row_bytes);
  T* dst = reinterpret_cast<T*>(out + i * row_bytes);
  const int64_t units = row_bytes / static_cast<int64_t>(sizeof(T));
  for (int64_t u = threadIdx.x; u < units; u += blockDim.x) dst[u] = valid ? src[u] : T{};
}

template <typename O, typename B>
__global__ void AddBiasKernel(O* __restrict__ out, int64_t m, int64_t n,
                              const B* __restrict__ bias) {
  const int64_t total = m * n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float b;
    if constexpr (sizeof(B) == 4) {
      b = bias[i % n];
    } else {
      b = __bfloat162float(bias[i % n]);
    }
    if constexpr (sizeof(O) == 4) {
      out[i] += b;
    } else {
      out[i] = __float2bfloat16(__bfloat162float(out[i]) + b);
    }
  }
}

template <typename O>
void LaunchAddBiasTyped(O* out, int64_t m, int64_t n, const void* bias, bool bias_is_f32,
                        cudaStream_t stream) {
  const unsigned int blocks =
      static_cast<unsigned int>(std::min<int64_t>((m * n + 255) / 256, 65536));
  if (bias_is_f32) {
    AddBiasKernel<O, float><<<blocks, 256, 0, stream>>>(out, m, n, static_cast<const float*>(bias));
  } else {
    AddBiasKernel<O, bf16><<<blocks, 256, 0, stream>>>(out, m, n, static_cast<const bf16*>(bias));
  }
}

}  // namespace

cudaError_t LaunchGatherRows(const void* x, int64_t rows, int64_t row_bytes, const int32_t* indices,
                             int64_t m, void* out, unsigned int* error_flags, cudaStream_t stream) {
  if (m == 0) return cudaSuccess;
  const char* xc = static_cast<const char*>(x);
  char* oc = static_cast<char*>(out);
  const unsigned int grid = static_cast<unsigned int>(m);
  if (row_bytes % 16 == 0 && IsAligned16(x) && IsAligned16(out)) {
    GatherRowsKernel<uint4>
        <<<grid, 128, 0, stream>>>(xc, rows, row_bytes, indices, oc, error_flags);
  } else if (row_bytes % 4 == 0 && (reinterpret_cast<uintptr_t>(x) & 3u) == 0 &&
             (reinterpret_cast<uintptr_t>(out) & 3u) == 0) {
    GatherRowsKernel<uint32_t>
        <<<grid, 256, 0, stream>>>(xc, rows, row_bytes, indices, oc, error_flags);
  } else {
    GatherRowsKernel<uint8_t>
        <<<grid, 256, 0, stream>>>(xc, rows, row_bytes, indices, oc, error_flags);
  }
  return cudaGetLastError();
}

cudaError_t LaunchAddBias(void* out, bool out_is_f32, int64_t m, int64_t n, const void* bias,
                          bool bias_is_f32, cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  if (out_is_f32) {
    LaunchAddBiasTyped(static_cast<float*>(out), m, n, bias, bias_is_f32, stream);
  } else {
    LaunchAddBiasTyped(static_cast<bf16*>(out), m, n, bias, bias_is_f32, stream);
  }
  return cudaGetLastError();
}

}  // namespace tandem::cuda
