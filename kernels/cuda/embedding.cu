#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/embedding.h"

namespace tandem::cuda {
namespace {

// One block per token. kVec = 8 moves 16 bytes per access; kVec = 1 is the unaligned fallback.
template <int kVec>
__global__ void EmbeddingKernel(const bf16* __restrict__ table, int64_t vocab, int64_t hidden,
                                const int32_t* __restrict__ ids, bf16* __restrict__ out,
                                int64_t out_stride, unsigned int* error_flags) {
  const int64_t row = blockIdx.x;
  const int32_t id = ids[row];
  bf16* dst = out + row * out_stride;
  const bool valid = id >= 0 && id < vocab;
  if (!valid && threadIdx.x == 0) RaiseDeviceError(error_flags, kErrTokenId);
  const bf16* src = table + static_cast<int64_t>(valid ? id : 0) * hidden;
  if constexpr (kVec == 8) {
    const int64_t nvec = hidden / 8;
    for (int64_t i = threadIdx.x; i < nvec; i += blockDim.x) {
      Bf16x8 v;
      if (valid) {
        v = reinterpret_cast<const Bf16x8*>(src)[i];
      } else {
        const float zero[8] = {};
        v = FloatToBf16x8(zero);
      }
      reinterpret_cast<Bf16x8*>(dst)[i] = v;
    }
  } else {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
      dst[i] = valid ? src[i] : __float2bfloat16(0.0f);
    }
  }
}

}  // namespace

cudaError_t LaunchEmbedding(const bf16* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                            int64_t n, bf16* out, int64_t out_stride, unsigned int* error_flags,
                            cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool vec = hidden % 8 == 0 && out_stride % 8 == 0 && IsAligned16(table) && IsAligned16(out);
  if (vec) {
    EmbeddingKernel<8><<<static_cast<unsigned int>(n), 128, 0, stream>>>(
        table, vocab, hidden, ids, out, out_stride, error_flags);
  } else {
    EmbeddingKernel<1><<<static_cast<unsigned int>(n), 256, 0, stream>>>(
        table, vocab, hidden, ids, out, out_stride, error_flags);
  }
  return cudaGetLastError();
}

}  // namespace tandem::cuda
