// Which bytes: the byte layout of a KV block pool, the contract between a prefill node's pool
// and a decode node's pool.
//
// A pool is ONE contiguous allocation (so it is registered with the transport once):
//
//   [num_layers][2 (K, V)][num_blocks][num_kv_heads][block_size][head_dim]  of dtype
//
// so that for each layer the K region and the V region are exactly the `k` and `v` arrays of a
// `KvCacheView` (kernels/backend.h): [num_blocks][num_kv_heads][block_size][head_dim].
// A block of one layer's K (or V) is therefore one contiguous run of bytes_per_block_per_kv()
// bytes, and blocks with consecutive ids are adjacent, which is what lets BuildDescriptors
// merge runs of blocks into single transfers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "kernels/dtype.h"
#include "kv_transfer/transfer_descriptor.h"

namespace tandem {

enum class KvKind : uint8_t { kKey = 0, kValue = 1 };

struct KvLayout {
  // Bumped whenever the meaning of the fields or the order of the dimensions changes, so that
  // nodes built from different versions refuse each other instead of exchanging garbage.
  static constexpr uint32_t kFormatVersion = 1;

  int num_layers = 0;
  int num_blocks = 0;  // capacity of THIS pool; may differ between prefill and decode
  int num_kv_heads = 0;
  int block_size = 0;  // tokens per block
  int head_dim = 0;
  DType dtype = DType::kF32;

  // InvalidArgument naming the first non-positive field.
  Status Validate() const;

  uint64_t bytes_per_block_per_kv() const;  // num_kv_heads * block_size * head_dim * dtype size
  uint64_t bytes_per_region() const;        // one layer's K (or V): num_blocks blocks
  uint64_t bytes_per_layer() const;         // K and V of one layer
  uint64_t total_bytes() const;             // the whole pool

  // Byte offsets from the pool base. REQUIRES: arguments in range (checked by assert only;
  // BuildDescriptors validates untrusted block ids).
  uint64_t RegionOffset(int layer, KvKind kind) const;
  uint64_t BlockOffset(int layer, KvKind kind, int block) const;

  // The per-layer view the kernels read and write, for a pool allocated at `base`.
  KvCacheView LayerView(void* base, int layer) const;

  // Stable 64-bit FNV-1a over kFormatVersion and every field that defines a block's bytes:
  // num_layers, num_kv_heads, block_size, head_dim, dtype. num_blocks is deliberately left out:
  // a decode pool is usually larger than a prefill pool, and that is compatible; each side's
  // capacity travels separately (it only changes where regions start, which BuildDescriptors
  // takes from each side's own layout). Both sides compare this before any byte moves.
  uint64_t compatibility_hash() const;

  // True when a block written under `a` can be read under `b` (same hash inputs).
  static bool Compatible(const KvLayout& a, const KvLayout& b);
};

// The copies that move `layer`'s K and V of src_block_ids[i] (in the `src` pool) into
// dst_block_ids[i] (in the `dst` pool), for every i. Runs of pairs that are consecutive on BOTH
// sides (src[i+1] == src[i] + 1 and dst[i+1] == dst[i] + 1) become one descriptor. All K
// descriptors come first, then all V descriptors (K and V are separate regions, never merged).
// Errors: incompatible layouts, layer out of range, size mismatch, a block id out of its pool's
// range, or a destination block named twice (two sources racing into one block).
Result<std::vector<TransferDescriptor>> BuildDescriptors(const KvLayout& src, const KvLayout& dst,
                                                         int layer,
                                                         std::span<const int> src_block_ids,
                                                         std::span<const int> dst_block_ids);

// Same, for two pools of the same capacity.
inline Result<std::vector<TransferDescriptor>> BuildDescriptors(
    const KvLayout& layout, int layer, std::span<const int> src_block_ids,
    std::span<const int> dst_block_ids) {
  return BuildDescriptors(layout, layout, layer, src_block_ids, dst_block_ids);
}

// Sum of descriptor sizes (what a transfer moves).
uint64_t DescriptorBytes(std::span<const TransferDescriptor> descriptors);

}  // namespace tandem
