#include "kv_transfer/kv_layout.h"

#include <cassert>
#include <string>

namespace tandem {
namespace {

constexpr uint64_t kFnvOffset = 14695981039346656037ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

// Hashes the value's bytes in little-endian order so the hash is the same on every host.
void FnvMix(uint64_t& h, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    h ^= (value >> (8 * i)) & 0xffu;
    h *= kFnvPrime;
  }
}

std::string LayoutString(const KvLayout& l) {
  return "layers=" + std::to_string(l.num_layers) + " kv_heads=" + std::to_string(l.num_kv_heads) +
         " block_size=" + std::to_string(l.block_size) + " head_dim=" + std::to_string(l.head_dim) +
         " dtype=" + std::string(DTypeName(l.dtype));
}

}  // namespace

Status KvLayout::Validate() const {
  auto positive = [](int v, const char* name) -> Status {
    if (v <= 0) return InvalidArgumentError(std::string("KvLayout.") + name + " must be > 0, got " +
                                            std::to_string(v));
    return Status::Ok();
  };
  RETURN_IF_ERROR(positive(num_layers, "num_layers"));
  RETURN_IF_ERROR(positive(num_blocks, "num_blocks"));
  RETURN_IF_ERROR(positive(num_kv_heads, "num_kv_heads"));
  RETURN_IF_ERROR(positive(block_size, "block_size"));
  RETURN_IF_ERROR(positive(head_dim, "head_dim"));
  return Status::Ok();
}

uint64_t KvLayout::bytes_per_block_per_kv() const {
  return static_cast<uint64_t>(num_kv_heads) * block_size * head_dim * DTypeSize(dtype);
}
uint64_t KvLayout::bytes_per_region() const {
  return bytes_per_block_per_kv() * static_cast<uint64_t>(num_blocks);
}
uint64_t KvLayout::bytes_per_layer() const { return 2 * bytes_per_region(); }
uint64_t KvLayout::total_bytes() const {
  return bytes_per_layer() * static_cast<uint64_t>(num_layers);
}

uint64_t KvLayout::RegionOffset(int layer, KvKind kind) const {
  assert(layer >= 0 && layer < num_layers);
  return static_cast<uint64_t>(layer) * bytes_per_layer() +
         (kind == KvKind::kValue ? bytes_per_region() : 0);
}

uint64_t KvLayout::BlockOffset(int layer, KvKind kind, int block) const {
  assert(block >= 0 && block < num_blocks);
  return RegionOffset(layer, kind) + static_cast<uint64_t>(block) * bytes_per_block_per_kv();
}

KvCacheView KvLayout::LayerView(void* base, int layer) const {
  auto* bytes = static_cast<uint8_t*>(base);
  KvCacheView view;
  view.k = bytes + RegionOffset(layer, KvKind::kKey);
  view.v = bytes + RegionOffset(layer, KvKind::kValue);
  view.dtype = dtype;
  view.num_blocks = num_blocks;
  view.num_kv_heads = num_kv_heads;
  view.block_size = block_size;
  view.head_dim = head_dim;
  return view;
}

uint64_t KvLayout::compatibility_hash() const {
  uint64_t h = kFnvOffset;
  FnvMix(h, kFormatVersion, 4);
  FnvMix(h, static_cast<uint32_t>(num_layers), 4);
  FnvMix(h, static_cast<uint32_t>(num_kv_heads), 4);
  FnvMix(h, static_cast<uint32_t>(block_size), 4);
  FnvMix(h, static_cast<uint32_t>(head_dim), 4);
  FnvMix(h, static_cast<uint8_t>(dtype), 1);
  return h;
}

bool KvLayout::Compatible(const KvLayout& a, const KvLayout& b) {
  return a.num_layers == b.num_layers && a.num_kv_heads == b.num_kv_heads &&
         a.block_size == b.block_size && a.head_dim == b.head_dim && a.dtype == b.dtype;
}

Result<std::vector<TransferDescriptor>> BuildDescriptors(const KvLayout& src, const KvLayout& dst,
                                                         int layer,
                                                         std::span<const int> src_block_ids,
                                                         std::span<const int> dst_block_ids) {
  RETURN_IF_ERROR(src.Validate().WithContext("source layout"));
  RETURN_IF_ERROR(dst.Validate().WithContext("destination layout"));
  if (!KvLayout::Compatible(src, dst)) {
    return FailedPreconditionError("incompatible KV layouts: source " + LayoutString(src) +
                                   ", destination " + LayoutString(dst));
  }
  if (layer < 0 || layer >= src.num_layers) {
    return OutOfRangeError("layer " + std::to_string(layer) + " not in [0, " +
                           std::to_string(src.num_layers) + ")");
  }
  if (src_block_ids.size() != dst_block_ids.size()) {
    return InvalidArgumentError("source names " + std::to_string(src_block_ids.size()) +
                                " blocks but destination names " +
                                std::to_string(dst_block_ids.size()));
  }
  std::vector<bool> dst_seen(static_cast<size_t>(dst.num_blocks), false);
  for (size_t i = 0; i < src_block_ids.size(); ++i) {
    const int s = src_block_ids[i];
    const int d = dst_block_ids[i];
    if (s < 0 || s >= src.num_blocks) {
      return OutOfRangeError("source block id " + std::to_string(s) + " at index " +
                             std::to_string(i) + " not in [0, " + std::to_string(src.num_blocks) +
                             ")");
    }
    if (d < 0 || d >= dst.num_blocks) {
      return OutOfRangeError("destination block id " + std::to_string(d) + " at index " +
                             std::to_string(i) + " not in [0, " + std::to_string(dst.num_blocks) +
                             ")");
    }
    if (dst_seen[static_cast<size_t>(d)]) {
      return InvalidArgumentError("destination block id " + std::to_string(d) +
                                  " named twice (index " + std::to_string(i) + ")");
    }
    dst_seen[static_cast<size_t>(d)] = true;
  }

  const uint64_t block_bytes = src.bytes_per_block_per_kv();
  std::vector<TransferDescriptor> out;
  for (KvKind kind : {KvKind::kKey, KvKind::kValue}) {
    const size_t first_of_kind = out.size();
    for (size_t i = 0; i < src_block_ids.size(); ++i) {
      const bool extends = out.size() > first_of_kind && i > 0 &&
                           src_block_ids[i] == src_block_ids[i - 1] + 1 &&
                           dst_block_ids[i] == dst_block_ids[i - 1] + 1;
      if (extends) {
        out.back().bytes += block_bytes;
      } else {
        out.push_back({src.BlockOffset(layer, kind, src_block_ids[i]),
                       dst.BlockOffset(layer, kind, dst_block_ids[i]), block_bytes});
      }
    }
  }
  return out;
}

uint64_t DescriptorBytes(std::span<const TransferDescriptor> descriptors) {
  uint64_t total = 0;
  for (const auto& d : descriptors) total += d.bytes;
  return total;
}

}  // namespace tandem
