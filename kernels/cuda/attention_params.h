// What the decode and prefill attention kernels read: the query rows, the paged KV cache of one
// layer and the per-step plan (all pointers are device memory). See kernels/backend.h for the
// cache layout and the plan's invariants.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace tandem::cuda {

struct PagedAttentionParams {
  const __nv_bfloat16* q = nullptr;  // [num_tokens, q_stride]; head h at columns h * head_dim
  int64_t q_stride = 0;
  __nv_bfloat16* out = nullptr;  // [num_tokens, out_stride]
  int64_t out_stride = 0;
  const __nv_bfloat16* k_cache = nullptr;  // [num_blocks, num_kv_heads, block_size, head_dim]
  const __nv_bfloat16* v_cache = nullptr;  // same layout
  int num_blocks = 0;
  int num_kv_heads = 0;
  int block_size = 0;
  int head_dim = 0;
  int num_heads = 0;
  int num_seqs = 0;
  const int32_t* positions = nullptr;     // [num_tokens]
  const int32_t* query_start = nullptr;   // [num_seqs + 1]
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  int max_blocks_per_seq = 0;
  float scale = 1.0f;                   // softmax scale, usually 1/sqrt(head_dim)
  unsigned int* error_flags = nullptr;  // kErrBlockTable / kErrPartitions (cuda_common.cuh)
};

}  // namespace tandem::cuda
