#include <algorithm>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/decode_attention.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 128;        // 4 warps
constexpr int kMaxGroup = 8;         // query heads per block
constexpr int kUnroll = 4;           // independent 16-byte loads in flight per thread
constexpr int kMaxPartition = 1024;  // tokens; bounds the shared logits buffer
constexpr float kLog2e = 1.4426950408889634f;
// Shared memory: the logits [kMaxGroup][partition] and, reused afterwards, the per-slot
// partial outputs [slots][kMaxGroup][head_dim]; slots * head_dim == kThreads * 8 either way.
constexpr size_t kSmemFloats = kMaxGroup * std::max(kMaxPartition, kThreads * 8);

__device__ inline const bf16* RowPtr(const bf16* cache, const int32_t* block_table, int t,
                                     const PagedAttentionParams& p, int kv_head, int col,
                                     bool& ok) {
  const int block = block_table[t / p.block_size];
  ok = block >= 0 && block < p.num_blocks;
  const int64_t row =
      (static_cast<int64_t>(ok ? block : 0) * p.num_kv_heads + kv_head) * p.block_size +
      t % p.block_size;
  return cache + row * p.head_dim + col;
}

// Writes out (one partition) or partial results (several) for one sequence, KV head and
// partition. Scores are kept in base 2: s = q.k * scale * log2(e), so exp2 is the softmax.
template <int kHeadDim>
__global__ void __launch_bounds__(kThreads)
    DecodeAttentionKernel(PagedAttentionParams p, int partition_size, int max_partitions,
                          float* __restrict__ part_out, float* __restrict__ part_ml) {
  constexpr int kLanes = kHeadDim / 8;       // threads per K/V row (one 16-byte piece each)
  constexpr int kSlots = kThreads / kLanes;  // rows processed at once by the block
  extern __shared__ __align__(16) float smem[];
  __shared__ float m_s[kMaxGroup];
  __shared__ float l_s[kMaxGroup];

  const int s = blockIdx.z;
  const int partition = blockIdx.x;
  const int group = p.num_heads / p.num_kv_heads;
  const int chunks = (group + kMaxGroup - 1) / kMaxGroup;
  const int kv_head = blockIdx.y / chunks;
  const int chunk = blockIdx.y - kv_head * chunks;
  const int h0 = kv_head * group + chunk * kMaxGroup;
  const int gh = min(kMaxGroup, group - chunk * kMaxGroup);

  const int token = p.query_start[s];
  if (p.query_start[s + 1] - token != 1) return;  // the prefill kernel owns this sequence
  const int ctx = p.positions[token] + 1;
  const int num_partitions = (ctx + partition_size - 1) / partition_size;
  if (num_partitions > max_partitions) {
    if (partition == 0 && threadIdx.x == 0) RaiseDeviceError(p.error_flags, kErrPartitions);
    return;
  }
  if (partition >= num_partitions) return;
  const int t_begin = partition * partition_size;
  const int n = min(ctx, t_begin + partition_size) - t_begin;

  const int tid = threadIdx.x;
  const int sub = tid % kLanes;   // which 8 columns of the row
  const int slot = tid / kLanes;  // which row of the kSlots in flight
  const int col = sub * 8;
  const int32_t* block_table = p.block_tables + static_cast<int64_t>(s) * p.max_blocks_per_seq;

  float q[kMaxGroup][8];
  const float qscale = p.scale * kLog2e;
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g < gh) {
      Bf16x8ToFloat(*reinterpret_cast<const Bf16x8*>(p.q + token * p.q_stride +
                                                     static_cast<int64_t>(h0 + g) * kHeadDim + col),
                    q[g]);
#pragma unroll
      for (int i = 0; i < 8; ++i) q[g][i] *= qscale;
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) q[g][i] = 0.0f;
    }
  }

  // Phase 1: logits[g][t] for every row of the partition.
  float* logits = smem;  // [kMaxGroup][partition_size]
  bool bad_block = false;
  for (int base = 0; base < n; base += kSlots * kUnroll) {
    float k[kUnroll][8];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int t = base + u * kSlots + slot;
      bool ok = false;
      if (t < n) {
        const bf16* src = RowPtr(p.k_cache, block_table, t_begin + t, p, kv_head, col, ok);
        if (ok) Bf16x8ToFloat(*reinterpret_cast<const Bf16x8*>(src), k[u]);
        bad_block |= !ok;
      }
      if (!ok) {
#pragma unroll
        for (int i = 0; i < 8; ++i) k[u][i] = 0.0f;
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int t = base + u * kSlots + slot;
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g >= gh) break;  // uniform across the block
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) dot = fmaf(q[g][i], k[u][i], dot);
#pragma unroll
        for (int o = kLanes / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        if (sub == 0 && t < n) logits[g * partition_size + t] = dot;
      }
    }
  }
  if (bad_block) RaiseDeviceError(p.error_flags, kErrBlockTable);
  __syncthreads();

  // Phase 2: per-head max and sum; logits become exp2(logit - max).
  const int warp = tid >> 5;
  const int lane = tid & 31;
  for (int g = warp; g < gh; g += kThreads / 32) {
    float* row = logits + g * partition_size;
    float m = -INFINITY;
    for (int i = lane; i < n; i += 32) m = fmaxf(m, row[i]);
    m = WarpMax(m);
    float sum = 0.0f;
    for (int i = lane; i < n; i += 32) {
      const float e = exp2f(row[i] - m);
      row[i] = e;
      sum += e;
    }
    sum = WarpSum(sum);
    if (lane == 0) {
      m_s[g] = m;
      l_s[g] = sum;
    }
  }
  __syncthreads();

  // Phase 3: acc[g] = sum_t p[g][t] * v[t] over this thread's rows and columns.
  float acc[kMaxGroup][8];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g)
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[g][i] = 0.0f;
  for (int base = 0; base < n; base += kSlots * kUnroll) {
    float v[kUnroll][8];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int t = base + u * kSlots + slot;
      bool ok = false;
      if (t < n) {
        const bf16* src = RowPtr(p.v_cache, block_table, t_begin + t, p, kv_head, col, ok);
        if (ok) Bf16x8ToFloat(*reinterpret_cast<const Bf16x8*>(src), v[u]);
      }
      if (!ok) {
#pragma unroll
        for (int i = 0; i < 8; ++i) v[u][i] = 0.0f;
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int t = base + u * kSlots + slot;
      if (t >= n) continue;
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g >= gh) break;
        const float w = logits[g * partition_size + t];
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[g][i] = fmaf(w, v[u][i], acc[g][i]);
      }
    }
  }
  __syncthreads();  // every thread is done with the logits; reuse the buffer

  float* red = smem;  // [kSlots][kMaxGroup][kHeadDim]
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g >= gh) break;
#pragma unroll
    for (int i = 0; i < 8; ++i) red[(slot * kMaxGroup + g) * kHeadDim + col + i] = acc[g][i];
  }
  __syncthreads();

  const int num_heads = p.num_heads;
  for (int idx = tid; idx < gh * kHeadDim; idx += kThreads) {
    const int g = idx / kHeadDim;
    const int d = idx - g * kHeadDim;
    float sum = 0.0f;
#pragma unroll 4
    for (int r = 0; r < kSlots; ++r) sum += red[(r * kMaxGroup + g) * kHeadDim + d];
    const float o = sum / l_s[g];
    const int h = h0 + g;
    if (num_partitions == 1) {
      p.out[token * p.out_stride + static_cast<int64_t>(h) * kHeadDim + d] = __float2bfloat16(o);
    } else {
      const int64_t base = (static_cast<int64_t>(s) * num_heads + h) * max_partitions + partition;
      part_out[base * kHeadDim + d] = o;
      if (d == 0) {
        part_ml[base * 2] = m_s[g];
        part_ml[base * 2 + 1] = l_s[g];
      }
    }
  }
}

// out = sum_p w_p * o_p / sum_p w_p with w_p = l_p * 2^(m_p - max m): the log-sum-exp merge.
template <int kHeadDim>
__global__ void __launch_bounds__(kHeadDim)
    MergePartitionsKernel(PagedAttentionParams p, int partition_size, int max_partitions,
                          const float* __restrict__ part_out, const float* __restrict__ part_ml) {
  const int h = blockIdx.x;
  const int s = blockIdx.y;
  const int token = p.query_start[s];
  if (p.query_start[s + 1] - token != 1) return;
  const int ctx = p.positions[token] + 1;
  const int num_partitions = (ctx + partition_size - 1) / partition_size;
  if (num_partitions <= 1 || num_partitions > max_partitions) return;
  const int64_t base = (static_cast<int64_t>(s) * p.num_heads + h) * max_partitions;
  float m = -INFINITY;
  for (int i = 0; i < num_partitions; ++i) m = fmaxf(m, part_ml[(base + i) * 2]);
  const int d = threadIdx.x;
  float num = 0.0f, den = 0.0f;
  for (int i = 0; i < num_partitions; ++i) {
    const float w = exp2f(part_ml[(base + i) * 2] - m) * part_ml[(base + i) * 2 + 1];
    num = fmaf(w, part_out[(base + i) * kHeadDim + d], num);
    den += w;
  }
  p.out[token * p.out_stride + static_cast<int64_t>(h) * kHeadDim + d] =
      __float2bfloat16(num / den);
}

template <int kHeadDim>
cudaError_t Launch(const PagedAttentionParams& p, const DecodeLaunchShape& shape, void* workspace,
                   cudaStream_t stream) {
  const int group = p.num_heads / p.num_kv_heads;
  const int chunks = (group + kMaxGroup - 1) / kMaxGroup;
  float* part_out = static_cast<float*>(workspace);
  float* part_ml = part_out == nullptr ? nullptr
                                       : part_out + static_cast<size_t>(p.num_seqs) * p.num_heads *
                                                        shape.max_partitions * kHeadDim;
  const dim3 grid(shape.max_partitions, p.num_kv_heads * chunks, p.num_seqs);
  DecodeAttentionKernel<kHeadDim><<<grid, kThreads, kSmemFloats * sizeof(float), stream>>>(
      p, shape.partition_size, shape.max_partitions, part_out, part_ml);
  if (shape.max_partitions > 1) {
    MergePartitionsKernel<kHeadDim><<<dim3(p.num_heads, p.num_seqs), kHeadDim, 0, stream>>>(
        p, shape.partition_size, shape.max_partitions, part_out, part_ml);
  }
  return cudaGetLastError();
}

}  // namespace

DecodeLaunchShape PlanDecode(const PagedAttentionParams& p, int max_context_len, int num_sms) {
  DecodeLaunchShape shape;
  const int group = std::max(1, p.num_heads / std::max(1, p.num_kv_heads));
  const int chunks = (group + kMaxGroup - 1) / kMaxGroup;
  const int64_t base_blocks = std::max<int64_t>(1, int64_t{p.num_seqs} * p.num_kv_heads * chunks);
  const int64_t target_partitions =
      std::max<int64_t>(1, (2 * int64_t{num_sms} + base_blocks - 1) / base_blocks);
  const int ctx = std::max(1, max_context_len);
  int64_t size = (ctx + target_partitions - 1) / target_partitions;
  size = (size + 63) / 64 * 64;
  shape.partition_size = static_cast<int>(std::clamp<int64_t>(size, 64, kMaxPartition));
  shape.max_partitions = (ctx + shape.partition_size - 1) / shape.partition_size;
  if (shape.max_partitions > 1) {
    shape.workspace_bytes = static_cast<size_t>(p.num_seqs) * p.num_heads * shape.max_partitions *
                            (p.head_dim + 2) * sizeof(float);
  }
  return shape;
}

cudaError_t LaunchDecodeAttention(const PagedAttentionParams& p, const DecodeLaunchShape& shape,
                                  void* workspace, cudaStream_t stream) {
  if (p.num_seqs == 0) return cudaSuccess;
  if (p.num_kv_heads <= 0 || p.num_heads % p.num_kv_heads != 0) return cudaErrorInvalidValue;
  if (shape.max_partitions > 1 && workspace == nullptr) return cudaErrorInvalidValue;
  switch (p.head_dim) {
    case 64: return Launch<64>(p, shape, workspace, stream);
    case 128: return Launch<128>(p, shape, workspace, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace tandem::cuda
