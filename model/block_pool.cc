#include "model/block_pool.h"

#include <string>
#include <unordered_map>

namespace tandem {

BlockPool::BlockPool(int32_t num_blocks) : ref_counts_(num_blocks, 0) {
  free_list_.reserve(num_blocks);
  // Pushed in reverse so that a fresh pool hands out 0, 1, 2, ... (contiguous runs make
  // fewer transfer descriptors).
  for (int32_t b = num_blocks - 1; b >= 0; --b) free_list_.push_back(b);
}

Result<std::vector<int32_t>> BlockPool::Allocate(int32_t count) {
  if (count < 0) return InvalidArgumentError("cannot allocate " + std::to_string(count) + " blocks");
  if (!CanAllocate(count)) {
    return ResourceExhaustedError("KV block pool exhausted: asked for " + std::to_string(count) +
                                  " blocks, " + std::to_string(num_free()) + " of " +
                                  std::to_string(num_blocks()) + " free");
  }
  std::vector<int32_t> blocks(count);
  for (int32_t i = 0; i < count; ++i) {
    blocks[i] = free_list_.back();
    free_list_.pop_back();
    ref_counts_[blocks[i]] = 1;
  }
  return blocks;
}

Status BlockPool::CheckInUse(int32_t block) const {
  if (block < 0 || block >= num_blocks()) {
    return InvalidArgumentError("block id " + std::to_string(block) + " out of range [0, " +
                                std::to_string(num_blocks()) + ")");
  }
  if (ref_counts_[block] == 0) {
    return FailedPreconditionError("block " + std::to_string(block) + " is not in use (double free?)");
  }
  return Status::Ok();
}

Status BlockPool::AddRef(int32_t block) {
  RETURN_IF_ERROR(CheckInUse(block));
  ++ref_counts_[block];
  return Status::Ok();
}

Status BlockPool::Free(std::span<const int32_t> blocks) {
  // Validate the whole list first, counting repeats, so a failure leaves the pool untouched.
  std::unordered_map<int32_t, int32_t> drops;
  for (int32_t b : blocks) {
    RETURN_IF_ERROR(CheckInUse(b));
    if (++drops[b] > ref_counts_[b]) {
      return FailedPreconditionError("block " + std::to_string(b) +
                                     " freed more times than it is referenced (double free)");
    }
  }
  for (int32_t b : blocks) {
    if (--ref_counts_[b] == 0) free_list_.push_back(b);
  }
  return Status::Ok();
}

int32_t BlockPool::RefCount(int32_t block) const {
  if (block < 0 || block >= num_blocks()) return 0;
  return ref_counts_[block];
}

}  // namespace tandem
