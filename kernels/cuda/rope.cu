#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rope.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxHalfDim = 256;  // head_dim <= 512

// One block per token: the angles of the token are computed once into shared memory and used
// by every head of Q and K.
__global__ void __launch_bounds__(kThreads)
    RopeKernel(bf16* __restrict__ q, int64_t q_stride, int num_heads, bf16* __restrict__ k,
               int64_t k_stride, int num_kv_heads, const int32_t* __restrict__ positions,
               const float* __restrict__ inv_freq, int head_dim) {
  __shared__ float cos_s[kMaxHalfDim];
  __shared__ float sin_s[kMaxHalfDim];
  const int64_t t = blockIdx.x;
  const int half = head_dim / 2;
  const float pos = static_cast<float>(positions[t]);
  for (int j = threadIdx.x; j < half; j += kThreads) {
    float s, c;
    sincosf(pos * inv_freq[j], &s, &c);
    cos_s[j] = c;
    sin_s[j] = s;
  }
  __syncthreads();
  const int q_items = q != nullptr ? num_heads * half : 0;
  const int k_items = k != nullptr ? num_kv_heads * half : 0;
  for (int item = threadIdx.x; item < q_items + k_items; item += kThreads) {
    bf16* base;
    int local;
    if (item < q_items) {
      local = item;
      base = q + t * q_stride;
    } else {
      local = item - q_items;
      base = k + t * k_stride;
    }
    const int head = local / half;
    const int j = local - head * half;
    bf16* x = base + static_cast<int64_t>(head) * head_dim;
    const float x1 = __bfloat162float(x[j]);
    const float x2 = __bfloat162float(x[j + half]);
    x[j] = __float2bfloat16(x1 * cos_s[j] - x2 * sin_s[j]);
    x[j + half] = __float2bfloat16(x2 * cos_s[j] + x1 * sin_s[j]);
  }
}

}  // namespace

cudaError_t LaunchRope(bf16* q, int64_t q_stride, int num_heads, bf16* k, int64_t k_stride,
                       int num_kv_heads, const int32_t* positions, const float* inv_freq, int64_t n,
                       int head_dim, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (head_dim % 2 != 0 || head_dim / 2 > kMaxHalfDim) return cudaErrorInvalidValue;
  RopeKernel<<<static_cast<unsigned int>(n), kThreads, 0, stream>>>(
      q, q_stride, num_heads, k, k_stride, num_kv_heads, positions, inv_freq, head_dim);
  return cudaGetLastError();
}

}  // namespace tandem::cuda
