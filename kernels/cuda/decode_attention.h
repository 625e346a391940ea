// Decode attention over the paged cache (flash-decoding). Handles exactly the sequences whose
// query length is 1 and leaves the rows of other sequences alone, so that a mixed batch runs
// this kernel and the prefill kernel over the same plan.
//
// Each block takes one sequence, one KV head with up to 8 of its query heads (so a K/V row is
// read once per group), and one partition of the context. Partitions are merged with their
// log-sum-exp by a second kernel when a context spans more than one.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/attention_params.h"

namespace tandem::cuda {

struct DecodeLaunchShape {
  int partition_size = 0;  // tokens per partition, a multiple of 64 in [64, 1024]
  int max_partitions = 0;  // ceil(max_context_len / partition_size)
  size_t workspace_bytes = 0;
};

// Chooses the split so that the grid has about two blocks per SM, and sizes the workspace.
DecodeLaunchShape PlanDecode(const PagedAttentionParams& p, int max_context_len, int num_sms);

// REQUIRES: head_dim is 64 or 128; every sequence's context <= max_context_len used in
// PlanDecode (else kErrPartitions); workspace holds shape.workspace_bytes.
cudaError_t LaunchDecodeAttention(const PagedAttentionParams& p, const DecodeLaunchShape& shape,
                                  void* workspace, cudaStream_t stream);

}  // namespace tandem::cuda
