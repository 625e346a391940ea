#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/cuda/convert.h"
#include "kernels/cuda/cuda_common.cuh"

namespace tandem::cuda {
namespace {

template <typename T>
__global__ void ConvertKernel(const T* __restrict__ src, int64_t n, bf16* __restrict__ dst) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if constexpr (sizeof(T) == 4) {
      dst[i] = __float2bfloat16(src[i]);
    } else {
      dst[i] = __float2bfloat16(__half2float(src[i]));
    }
  }
}

}  // namespace

cudaError_t LaunchConvertToBf16(const void* src, bool src_is_f32, int64_t n, bf16* dst,
                                cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const unsigned int blocks = static_cast<unsigned int>(std::min<int64_t>((n + 255) / 256, 65536));
  if (src_is_f32) {
    ConvertKernel<float><<<blocks, 256, 0, stream>>>(static_cast<const float*>(src), n, dst);
  } else {
    ConvertKernel<__half><<<blocks, 256, 0, stream>>>(static_cast<const __half*>(src), n, dst);
  }
  return cudaGetLastError();
}

}  // namespace tandem::cuda
