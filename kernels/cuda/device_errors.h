// Bits that kernels OR into the backend's device error word when they find bad input; the
// backend reports them at the next Synchronize() (a kernel cannot return a Status).
#pragma once

namespace tandem::cuda {

enum DeviceErrorBits : unsigned int {
  kErrTokenId = 1u << 0,      // Embedding: id outside [0, vocab)
  kErrGatherIndex = 1u << 1,  // GatherRows: index outside [0, rows)
  kErrSlot = 1u << 2,         // WriteKv: slot past num_blocks * block_size
  kErrBlockTable = 1u << 3,   // Attention: block id outside [0, num_blocks)
  kErrPartitions = 1u << 4,   // Attention: context longer than plan.max_context_len
};

}  // namespace tandem::cuda
