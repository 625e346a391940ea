#include <mutex>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/prefill_attention.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 128;  // 4 warps, 16 query rows each
constexpr int kBlockM = 64;
constexpr int kBlockN = 64;
constexpr float kLog2e = 1.4426950408889634f;

template <int kHeadDim>
__host__ __device__ constexpr int SmemStride() {
  return kHeadDim + 8;  // +16 bytes per row: ldmatrix rows fall in distinct banks
}

template <int kHeadDim>
constexpr size_t SmemBytes() {
  // Q tile + double-buffered K and V tiles.
  return static_cast<size_t>(kBlockM + 4 * kBlockN) * SmemStride<kHeadDim>() * sizeof(bf16);
}

__device__ inline uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy; src_bytes == 0 writes zeros (rows past the context).
__device__ inline void CpAsync16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddr(dst)), "l"(src),
               "r"(src_bytes));
}
__device__ inline void CpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int kPending>
__device__ inline void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

__device__ inline void LdMatrixX4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(p)));
}
__device__ inline void LdMatrixX4Trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(p)));
}

// c += a (16x16, row-major) * b (16x8, column-major), bf16 in, fp32 accumulate.
__device__ inline void Mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ inline uint32_t PackBf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Fragment layouts (PTX ISA, mma.m16n8k16): with g = lane / 4 and c = lane % 4, an accumulator
// holds rows g and g + 8, columns 2c and 2c + 1; that is also the A layout of the next product,
// so P never leaves registers.
template <int kHeadDim>
__global__ void __launch_bounds__(kThreads) PrefillAttentionKernel(PagedAttentionParams p) {
  constexpr int kStride = SmemStride<kHeadDim>();
  constexpr int kChunks = kHeadDim / 8;  // 16-byte pieces per row
  constexpr int kKSteps = kHeadDim / 16;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* q_s = reinterpret_cast<bf16*>(smem_raw);  // [kBlockM][kStride]
  bf16* k_s = q_s + kBlockM * kStride;            // [2][kBlockN][kStride]
  bf16* v_s = k_s + 2 * kBlockN * kStride;        // [2][kBlockN][kStride]
  __shared__ int pos_s[kBlockM];
  __shared__ int kv_end_s;

  const int h = blockIdx.x;
  const int s = blockIdx.z;
  const int q_begin = p.query_start[s];
  const int qlen = p.query_start[s + 1] - q_begin;
  if (qlen < 2) return;  // decode kernel's
  const int num_tiles = (qlen + kBlockM - 1) / kBlockM;
  const int tile = num_tiles - 1 - static_cast<int>(blockIdx.y);  // longest rows start first
  if (tile < 0) return;
  const int m0 = tile * kBlockM;
  const int rows = min(kBlockM, qlen - m0);
  const int kv_head = h / (p.num_heads / p.num_kv_heads);
  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;

  if (tid == 0) kv_end_s = 0;
  __syncthreads();
  if (tid < kBlockM) {
    const int pos = tid < rows ? p.positions[q_begin + m0 + tid] : -1;
    pos_s[tid] = pos;
    if (pos >= 0) atomicMax(&kv_end_s, pos + 1);
  }
  for (int i = tid; i < kBlockM * kChunks; i += kThreads) {
    const int r = i / kChunks;
    const int c = i - r * kChunks;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < rows) {
      val = *reinterpret_cast<const uint4*>(p.q + (q_begin + m0 + r) * p.q_stride +
                                            static_cast<int64_t>(h) * kHeadDim + c * 8);
    }
    *reinterpret_cast<uint4*>(q_s + r * kStride + c * 8) = val;
  }
  __syncthreads();
  const int kv_end = kv_end_s;
  const int num_kv_tiles = (kv_end + kBlockN - 1) / kBlockN;
  const int32_t* block_table = p.block_tables + static_cast<int64_t>(s) * p.max_blocks_per_seq;

  auto load_kv = [&](int kv_tile, int buf) {
    const int n0 = kv_tile * kBlockN;
    bf16* kd = k_s + buf * kBlockN * kStride;
    bf16* vd = v_s + buf * kBlockN * kStride;
    for (int i = tid; i < kBlockN * kChunks; i += kThreads) {
      const int r = i / kChunks;
      const int c = i - r * kChunks;
      const int t = n0 + r;
      const bf16* ksrc = p.k_cache;
      const bf16* vsrc = p.v_cache;
      int bytes = 0;
      if (t < kv_end) {
        const int block = block_table[t / p.block_size];
        if (block >= 0 && block < p.num_blocks) {
          const int64_t off =
              ((static_cast<int64_t>(block) * p.num_kv_heads + kv_head) * p.block_size +
               t % p.block_size) *
                  kHeadDim +
              c * 8;
          ksrc += off;
          vsrc += off;
          bytes = 16;
        } else {
          RaiseDeviceError(p.error_flags, kErrBlockTable);
        }
      }
      CpAsync16(kd + r * kStride + c * 8, ksrc, bytes);
      CpAsync16(vd + r * kStride + c * 8, vsrc, bytes);
    }
    CpAsyncCommit();
  };

  if (num_kv_tiles > 0) load_kv(0, 0);

  // This warp's 16 query rows as A fragments, kept in registers for the whole loop.
  uint32_t qa[kKSteps][4];
  {
    const int mi = lane >> 3;
    const int r = warp * 16 + (lane & 7) + (mi & 1) * 8;
#pragma unroll
    for (int kc = 0; kc < kKSteps; ++kc) {
      LdMatrixX4(qa[kc], q_s + r * kStride + kc * 16 + (mi >> 1) * 8);
    }
  }

  const int row0 = warp * 16 + (lane >> 2);
  const int pos_r[2] = {pos_s[row0], pos_s[row0 + 8]};
  const float scale_log2 = p.scale * kLog2e;
  float o[kHeadDim / 8][4];
#pragma unroll
  for (int d = 0; d < kHeadDim / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m_r[2] = {-INFINITY, -INFINITY};
  float l_r[2] = {0.0f, 0.0f};

  for (int j = 0; j < num_kv_tiles; ++j) {
    if (j + 1 < num_kv_tiles) {
      load_kv(j + 1, (j + 1) & 1);
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    const bf16* kb = k_s + (j & 1) * kBlockN * kStride;
    const bf16* vb = v_s + (j & 1) * kBlockN * kStride;

    // S = Q K^T for 16 rows x 64 keys.
    float sacc[kBlockN / 8][4];
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
      sacc[nt][0] = sacc[nt][1] = sacc[nt][2] = sacc[nt][3] = 0.0f;
#pragma unroll
      for (int kc = 0; kc < kKSteps; kc += 2) {
        uint32_t b[4];
        LdMatrixX4(b, kb + (nt * 8 + (lane & 7)) * kStride + kc * 16 + (lane >> 3) * 8);
        Mma16816(sacc[nt], qa[kc], b[0], b[1]);
        Mma16816(sacc[nt], qa[kc + 1], b[2], b[3]);
      }
    }

    // Causal mask, scale, online softmax (row r of this thread: row0 + 8 * r).
    const int n0 = j * kBlockN;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = n0 + nt * 8 + (lane & 3) * 2 + e;
          float& sv = sacc[nt][2 * r + e];
          sv = key <= pos_r[r] ? sv * scale_log2 : -INFINITY;
          mx = fmaxf(mx, sv);
        }
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_r[r], mx);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // fully masked so far
      const float alpha = exp2f(m_r[r] - m_use);
      m_r[r] = m_new;
      l_r[r] *= alpha;
#pragma unroll
      for (int d = 0; d < kHeadDim / 8; ++d) {
        o[d][2 * r] *= alpha;
        o[d][2 * r + 1] *= alpha;
      }
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& sv = sacc[nt][2 * r + e];
          sv = exp2f(sv - m_use);
          l_r[r] += sv;
        }
      }
    }

    // O += P V: P from the accumulators, V^T fragments through ldmatrix.trans.
#pragma unroll
    for (int kc = 0; kc < kBlockN / 16; ++kc) {
      const uint32_t pa[4] = {PackBf16x2(sacc[2 * kc][0], sacc[2 * kc][1]),
                              PackBf16x2(sacc[2 * kc][2], sacc[2 * kc][3]),
                              PackBf16x2(sacc[2 * kc + 1][0], sacc[2 * kc + 1][1]),
                              PackBf16x2(sacc[2 * kc + 1][2], sacc[2 * kc + 1][3])};
      const int mi = lane >> 3;
      const bf16* vrow = vb + (kc * 16 + (lane & 7) + (mi & 1) * 8) * kStride + (mi >> 1) * 8;
#pragma unroll
      for (int dn = 0; dn < kHeadDim / 16; ++dn) {
        uint32_t b[4];
        LdMatrixX4Trans(b, vrow + dn * 16);
        Mma16816(o[2 * dn], pa, b[0], b[1]);
        Mma16816(o[2 * dn + 1], pa, b[2], b[3]);
      }
    }
    __syncthreads();  // the next iteration's load overwrites this buffer
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = l_r[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const int row = row0 + 8 * r;
    if (row >= rows) continue;
    bf16* dst = p.out + (q_begin + m0 + row) * p.out_stride + static_cast<int64_t>(h) * kHeadDim +
                (lane & 3) * 2;
#pragma unroll
    for (int d = 0; d < kHeadDim / 8; ++d) {
      *reinterpret_cast<__nv_bfloat162*>(dst + d * 8) =
          __floats2bfloat162_rn(o[d][2 * r] * inv, o[d][2 * r + 1] * inv);
    }
  }
}

template <int kHeadDim>
cudaError_t Launch(const PagedAttentionParams& p, int max_query_len, cudaStream_t stream) {
  constexpr size_t kSmem = SmemBytes<kHeadDim>();
  static std::once_flag once;
  static cudaError_t attr_err = cudaSuccess;
  std::call_once(once, [] {
    attr_err =
        cudaFuncSetAttribute(PrefillAttentionKernel<kHeadDim>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem));
  });
  if (attr_err != cudaSuccess) return attr_err;
  const dim3 grid(p.num_heads, CeilDiv(max_query_len, kBlockM), p.num_seqs);
  PrefillAttentionKernel<kHeadDim><<<grid, kThreads, kSmem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchPrefillAttention(const PagedAttentionParams& p, int max_query_len,
                                   cudaStream_t stream) {
  if (p.num_seqs == 0 || max_query_len < 2) return cudaSuccess;
  if (p.num_kv_heads <= 0 || p.num_heads % p.num_kv_heads != 0) return cudaErrorInvalidValue;
  switch (p.head_dim) {
    case 64: return Launch<64>(p, max_query_len, stream);
    case 128: return Launch<128>(p, max_query_len, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace tandem::cuda
