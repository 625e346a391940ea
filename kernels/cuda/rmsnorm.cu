#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rmsnorm.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 256;

template <typename W>
__device__ inline void LoadWeight8(const W* w, int64_t i, float (&f)[8]) {
  if constexpr (sizeof(W) == 4) {
    const float4 a = reinterpret_cast<const float4*>(w)[2 * i];
    const float4 b = reinterpret_cast<const float4*>(w)[2 * i + 1];
    f[0] = a.x;
    f[1] = a.y;
    f[2] = a.z;
    f[3] = a.w;
    f[4] = b.x;
    f[5] = b.y;
    f[6] = b.z;
    f[7] = b.w;
  } else {
    Bf16x8ToFloat(reinterpret_cast<const Bf16x8*>(w)[i], f);
  }
}

template <typename W>
__device__ inline float LoadWeight1(const W* w, int64_t i) {
  if constexpr (sizeof(W) == 4) {
    return w[i];
  } else {
    return __bfloat162float(w[i]);
  }
}

// One block per row. Pass 1 (optionally) updates the residual and sums squares; pass 2 reads
// the row again (from L1/L2) and scales it. The norm reads the bf16-rounded residual so that
// what the next layer adds to is exactly what was normalised.
template <bool kVec, typename W>
__global__ void __launch_bounds__(kThreads)
    RmsNormKernel(const bf16* __restrict__ x, int64_t x_stride, bf16* __restrict__ residual,
                  int64_t residual_stride, const W* __restrict__ weight, int64_t dim, float eps,
                  bf16* __restrict__ out, int64_t out_stride) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const bf16* xr = x + row * x_stride;
  bf16* rr = residual != nullptr ? residual + row * residual_stride : nullptr;
  const bf16* src = rr != nullptr ? rr : xr;
  bf16* dst = out + row * out_stride;
  float ss = 0.0f;
  if constexpr (kVec) {
    const int64_t nvec = dim / 8;
    for (int64_t i = threadIdx.x; i < nvec; i += kThreads) {
      float v[8];
      Bf16x8ToFloat(reinterpret_cast<const Bf16x8*>(xr)[i], v);
      if (rr != nullptr) {
        float r[8];
        Bf16x8ToFloat(reinterpret_cast<const Bf16x8*>(rr)[i], r);
#pragma unroll
        for (int j = 0; j < 8; ++j) r[j] += v[j];
        const Bf16x8 stored = FloatToBf16x8(r);
        reinterpret_cast<Bf16x8*>(rr)[i] = stored;
        Bf16x8ToFloat(stored, v);
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) ss += v[j] * v[j];
    }
  } else {
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
      float v = __bfloat162float(xr[i]);
      if (rr != nullptr) {
        const bf16 stored = __float2bfloat16(__bfloat162float(rr[i]) + v);
        rr[i] = stored;
        v = __bfloat162float(stored);
      }
      ss += v * v;
    }
  }
  const float inv_rms = rsqrtf(BlockSum(ss, scratch) / static_cast<float>(dim) + eps);
  // Each thread re-reads only elements it wrote itself, so no barrier is needed for the
  // residual; BlockSum already synchronised the block.
  if constexpr (kVec) {
    const int64_t nvec = dim / 8;
    for (int64_t i = threadIdx.x; i < nvec; i += kThreads) {
      float v[8], w[8];
      Bf16x8ToFloat(reinterpret_cast<const Bf16x8*>(src)[i], v);
      LoadWeight8(weight, i, w);
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = v[j] * inv_rms * w[j];
      reinterpret_cast<Bf16x8*>(dst)[i] = FloatToBf16x8(v);
    }
  } else {
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
      dst[i] = __float2bfloat16(__bfloat162float(src[i]) * inv_rms * LoadWeight1(weight, i));
    }
  }
}

template <typename W>
void Launch(bool vec, const bf16* x, int64_t x_stride, bf16* residual, int64_t residual_stride,
            const void* weight, int64_t n, int64_t dim, float eps, bf16* out, int64_t out_stride,
            cudaStream_t stream) {
  const W* w = static_cast<const W*>(weight);
  const unsigned int grid = static_cast<unsigned int>(n);
  if (vec) {
    RmsNormKernel<true, W><<<grid, kThreads, 0, stream>>>(x, x_stride, residual, residual_stride, w,
                                                          dim, eps, out, out_stride);
  } else {
    RmsNormKernel<false, W><<<grid, kThreads, 0, stream>>>(x, x_stride, residual, residual_stride,
                                                           w, dim, eps, out, out_stride);
  }
}

}  // namespace

cudaError_t LaunchRmsNorm(const bf16* x, int64_t x_stride, bf16* residual, int64_t residual_stride,
                          const void* weight, bool weight_is_f32, int64_t n, int64_t dim, float eps,
                          bf16* out, int64_t out_stride, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec = dim % 8 == 0 && x_stride % 8 == 0 && out_stride % 8 == 0 &&
                   (residual == nullptr || (residual_stride % 8 == 0 && IsAligned16(residual))) &&
                   IsAligned16(x) && IsAligned16(out) && IsAligned16(weight);
  if (weight_is_f32) {
    Launch<float>(vec, x, x_stride, residual, residual_stride, weight, n, dim, eps, out, out_stride,
                  stream);
  } else {
    Launch<bf16>(vec, x, x_stride, residual, residual_stride, weight, n, dim, eps, out, out_stride,
                 stream);
  }
  return cudaGetLastError();
}

}  // namespace tandem::cuda
