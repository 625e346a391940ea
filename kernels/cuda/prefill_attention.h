// Prefill attention over the paged cache: causal, variable-length sequences, bf16 tensor cores
// (mma.sync m16n8k16) with an online softmax, FlashAttention-2 style. Keys and values are read
// from the paged cache, so a chunk of a prompt attends to the chunks already written (chunked
// prefill). Handles exactly the sequences whose query length is at least 2 and leaves the
// rows of the others (decode, see decode_attention.h) alone.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cuda/attention_params.h"

namespace tandem::cuda {

// Grid: (num_heads, ceil(max_query_len / 64), num_seqs); 64 query rows per block, key tiles
// of 64 double-buffered in shared memory through cp.async.
// REQUIRES: head_dim is 64 or 128; query rows of a sequence attend to cache positions
// [0, positions[i]] which WriteKv has already filled.
cudaError_t LaunchPrefillAttention(const PagedAttentionParams& p, int max_query_len,
                                   cudaStream_t stream);

}  // namespace tandem::cuda
