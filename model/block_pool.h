// Fixed-size KV blocks: a free list and per-block reference counts (for prefix sharing).
// "Can I?" (CanAllocate) is separate from "do it" (Allocate), as the schedulers ask first and
// commit later. Allocation is all-or-nothing: a request never holds half of what it asked for.
//
// Invariants: a block is either on the free list with ref count 0, or off it with count >= 1;
// num_free() + (blocks with count >= 1) == num_blocks().
// Threading: not thread-safe; owned by the engine thread of its node.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "model/kv_blocks.h"

namespace tandem {

class BlockPool {
 public:
  explicit BlockPool(int32_t num_blocks);

  int32_t num_blocks() const { return static_cast<int32_t>(ref_counts_.size()); }
  int32_t num_free() const { return static_cast<int32_t>(free_list_.size()); }
  bool CanAllocate(int32_t count) const { return count >= 0 && count <= num_free(); }

  // Takes `count` blocks, each with ref count 1. ResourceExhausted (and nothing taken) when
  // fewer than `count` are free.
  Result<std::vector<int32_t>> Allocate(int32_t count);

  // Adds a reference to a block in use (a second sequence sharing it).
  Status AddRef(int32_t block);

  // Drops one reference to each block; blocks reaching 0 return to the free list. Checks all
  // blocks before changing any, so a bad id or a double free changes nothing.
  Status Free(std::span<const int32_t> blocks);

  int32_t RefCount(int32_t block) const;

 private:
  Status CheckInUse(int32_t block) const;

  std::vector<int32_t> ref_counts_;  // [num_blocks]
  std::vector<int32_t> free_list_;   // LIFO: recently freed blocks are reused first (warm caches)
};

}  // namespace tandem
