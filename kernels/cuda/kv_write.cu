#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/kv_write.h"

namespace tandem::cuda {
namespace {

// One block per token; each thread moves kVec elements of K and of V.
template <int kVec>
__global__ void WriteKvKernel(const bf16* __restrict__ k, int64_t k_stride,
                              const bf16* __restrict__ v, int64_t v_stride,
                              const int64_t* __restrict__ slot_mapping, bf16* __restrict__ k_cache,
                              bf16* __restrict__ v_cache, int num_blocks, int num_kv_heads,
                              int block_size, int head_dim, unsigned int* error_flags) {
  const int64_t t = blockIdx.x;
  const int64_t slot = slot_mapping[t];
  if (slot < 0) return;
  if (slot >= static_cast<int64_t>(num_blocks) * block_size) {
    if (threadIdx.x == 0) RaiseDeviceError(error_flags, kErrSlot);
    return;
  }
  const int64_t block = slot / block_size;
  const int64_t offset = slot - block * block_size;
  const int row_vecs = head_dim / kVec;
  const int items = num_kv_heads * row_vecs;
  for (int i = threadIdx.x; i < items; i += blockDim.x) {
    const int head = i / row_vecs;
    const int c = i - head * row_vecs;
    const int64_t dst = ((block * num_kv_heads + head) * block_size + offset) * head_dim +
                        static_cast<int64_t>(c) * kVec;
    const int64_t src_col = static_cast<int64_t>(head) * head_dim + static_cast<int64_t>(c) * kVec;
    if constexpr (kVec == 8) {
      *reinterpret_cast<Bf16x8*>(k_cache + dst) =
          *reinterpret_cast<const Bf16x8*>(k + t * k_stride + src_col);
      *reinterpret_cast<Bf16x8*>(v_cache + dst) =
          *reinterpret_cast<const Bf16x8*>(v + t * v_stride + src_col);
    } else {
      k_cache[dst] = k[t * k_stride + src_col];
      v_cache[dst] = v[t * v_stride + src_col];
    }
  }
}

}  // namespace

cudaError_t LaunchWriteKv(const bf16* k, int64_t k_stride, const bf16* v, int64_t v_stride,
                          const int64_t* slot_mapping, int64_t n, bf16* k_cache, bf16* v_cache,
                          int num_blocks, int num_kv_heads, int block_size, int head_dim,
                          unsigned int* error_flags, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec = head_dim % 8 == 0 && k_stride % 8 == 0 && v_stride % 8 == 0 && IsAligned16(k) &&
                   IsAligned16(v) && IsAligned16(k_cache) && IsAligned16(v_cache);
  const unsigned int grid = static_cast<unsigned int>(n);
  if (vec) {
    WriteKvKernel<8><<<grid, 128, 0, stream>>>(k, k_stride, v, v_stride, slot_mapping, k_cache,
                                               v_cache, num_blocks, num_kv_heads, block_size,
                                               head_dim, error_flags);
  } else {
    WriteKvKernel<1><<<grid, 256, 0, stream>>>(k, k_stride, v, v_stride, slot_mapping, k_cache,
                                               v_cache, num_blocks, num_kv_heads, block_size,
                                               head_dim, error_flags);
  }
  return cudaGetLastError();
}

}  // namespace tandem::cuda
