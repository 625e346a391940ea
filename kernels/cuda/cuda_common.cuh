// Device helpers shared by the kernels in this folder: 16-byte bf16 vectors, warp reductions,
// and the device-side error flags (bad indices found by kernels are reported by the backend at
// the next Synchronize(), since a kernel cannot return a Status).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_errors.h"

namespace tandem::cuda {

using bf16 = __nv_bfloat16;

inline __device__ void RaiseDeviceError(unsigned int* flags, unsigned int bit) {
  if (flags != nullptr) atomicOr(flags, bit);
}

// Eight bf16 values moved as one 16-byte access (held as a uint4 so that copies compile to
// 128-bit loads and stores; a struct of four bfloat162 is copied member by member).
struct alignas(16) Bf16x8 {
  uint4 u;
};

inline __device__ void Bf16x8ToFloat(const Bf16x8& v, float (&f)[8]) {
  const uint32_t w[4] = {v.u.x, v.u.y, v.u.z, v.u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

inline __device__ uint32_t PackBf16Pair(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return static_cast<uint32_t>(__bfloat16_as_ushort(h.x)) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(h.y)) << 16);
}

inline __device__ Bf16x8 FloatToBf16x8(const float (&f)[8]) {
  Bf16x8 v;
  v.u = make_uint4(PackBf16Pair(f[0], f[1]), PackBf16Pair(f[2], f[3]), PackBf16Pair(f[4], f[5]),
                   PackBf16Pair(f[6], f[7]));
  return v;
}

inline __device__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

inline __device__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block in a fixed order (deterministic). REQUIRES: blockDim.x % 32 == 0,
// blockDim.x <= 1024, every thread calls it. `scratch` holds at least 32 floats.
inline __device__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int num_warps = blockDim.x >> 5;
  float total = lane < num_warps ? scratch[lane] : 0.0f;
  return WarpSum(total);
}

inline __device__ float BlockMax(float v, float* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int num_warps = blockDim.x >> 5;
  float m = lane < num_warps ? scratch[lane] : -INFINITY;
  return WarpMax(m);
}

inline bool IsAligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

inline unsigned int CeilDiv(int64_t a, int64_t b) {
  return static_cast<unsigned int>((a + b - 1) / b);
}

}  // namespace tandem::cuda
