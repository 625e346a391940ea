#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/swiglu.h"

namespace tandem::cuda {
namespace {

__device__ inline float Silu(float g) {
  return g / (1.0f + __expf(-g));
}

// grid.y walks rows, grid.x and the threads walk the row in kVec-element pieces.
template <int kVec>
__global__ void SiluMulKernel(const bf16* __restrict__ gate, int64_t gate_stride,
                              const bf16* __restrict__ up, int64_t up_stride, int64_t inter,
                              bf16* __restrict__ out, int64_t out_stride) {
  const int64_t row = blockIdx.y;
  const int64_t pieces = inter / kVec;
  const bf16* g = gate + row * gate_stride;
  const bf16* u = up + row * up_stride;
  bf16* o = out + row * out_stride;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < pieces;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if constexpr (kVec == 8) {
      float gf[8], uf[8];
      Bf16x8ToFloat(reinterpret_cast<const Bf16x8*>(g)[i], gf);
      Bf16x8ToFloat(reinterpret_cast<const Bf16x8*>(u)[i], uf);
#pragma unroll
      for (int j = 0; j < 8; ++j) gf[j] = Silu(gf[j]) * uf[j];
      reinterpret_cast<Bf16x8*>(o)[i] = FloatToBf16x8(gf);
    } else {
      o[i] = __float2bfloat16(Silu(__bfloat162float(g[i])) * __bfloat162float(u[i]));
    }
  }
}

}  // namespace

cudaError_t LaunchSiluMul(const bf16* gate, int64_t gate_stride, const bf16* up, int64_t up_stride,
                          int64_t n, int64_t inter, bf16* out, int64_t out_stride,
                          cudaStream_t stream) {
  if (n == 0 || inter == 0) return cudaSuccess;
  if (n > 65535) return cudaErrorInvalidConfiguration;
  const bool vec = inter % 8 == 0 && gate_stride % 8 == 0 && up_stride % 8 == 0 &&
                   out_stride % 8 == 0 && IsAligned16(gate) && IsAligned16(up) && IsAligned16(out);
  constexpr int kThreads = 256;
  if (vec) {
    const dim3 grid(CeilDiv(inter / 8, kThreads), static_cast<unsigned int>(n));
    SiluMulKernel<8>
        <<<grid, kThreads, 0, stream>>>(gate, gate_stride, up, up_stride, inter, out, out_stride);
  } else {
    const dim3 grid(CeilDiv(inter, kThreads), static_cast<unsigned int>(n));
    SiluMulKernel<1>
        <<<grid, kThreads, 0, stream>>>(gate, gate_stride, up, up_stride, inter, out, out_stride);
  }
  return cudaGetLastError();
}

}  // namespace tandem::cuda
