#include "model/kv_cache.h"

#include <algorithm>
#include <string>

#include "common/logging.h"

namespace tandem {

KvCache::KvCache(DeviceBuffer buffer, int num_layers, int32_t num_blocks, int32_t block_size,
                 int num_kv_heads, int head_dim, DType dtype)
    : buffer_(std::move(buffer)),
      num_layers_(num_layers),
      num_blocks_(num_blocks),
      block_size_(block_size),
      num_kv_heads_(num_kv_heads),
      head_dim_(head_dim),
      dtype_(dtype),
      pool_(num_blocks) {}

size_t KvCache::bytes_per_block() const {
  return static_cast<size_t>(num_kv_heads_) * block_size_ * head_dim_ * DTypeSize(dtype_);
}

Result<std::unique_ptr<KvCache>> KvCache::Create(Backend& backend, const ModelConfig& config,
                                                 const KvCacheOptions& options) {
  if (options.block_size <= 0) {
    return InvalidArgumentError("block size must be positive, got " + std::to_string(options.block_size));
  }
  const DType dtype = backend.kv_cache_dtype();
  const size_t per_block_all_layers = 2 * static_cast<size_t>(config.num_layers) * config.num_kv_heads *
                                      options.block_size * config.head_dim * DTypeSize(dtype);
  int64_t num_blocks = options.num_blocks;
  if (num_blocks <= 0) {
    size_t budget = options.max_bytes ? options.max_bytes : backend.kv_cache_budget_bytes();
    num_blocks = static_cast<int64_t>(budget / per_block_all_layers);
  }
  if (num_blocks <= 0) {
    return ResourceExhaustedError("KV cache budget too small for a single block of " +
                                  std::to_string(per_block_all_layers) + " bytes");
  }
  if (num_blocks > INT32_MAX / options.block_size) {
    num_blocks = INT32_MAX / options.block_size;
  }
  ASSIGN_OR_RETURN(DeviceBuffer buffer, backend.Allocate(per_block_all_layers * num_blocks));
  GetLogger("model")->debug("KV cache: {} blocks x {} tokens, {:.1f} MiB ({})", num_blocks,
                            options.block_size, buffer.bytes() / 1048576.0, DTypeName(dtype));
  return std::unique_ptr<KvCache>(new KvCache(std::move(buffer), static_cast<int>(config.num_layers),
                                              static_cast<int32_t>(num_blocks), options.block_size,
                                              static_cast<int>(config.num_kv_heads),
                                              static_cast<int>(config.head_dim), dtype));
}

Result<std::unique_ptr<KvCache>> KvCache::CreateOver(void* memory, size_t bytes, DType dtype,
                                                     const ModelConfig& config,
                                                     const KvCacheOptions& options) {
  if (memory == nullptr) return InvalidArgumentError("KV cache memory is null");
  if (options.block_size <= 0) {
    return InvalidArgumentError("block size must be positive, got " + std::to_string(options.block_size));
  }
  const size_t per_block_all_layers = 2 * static_cast<size_t>(config.num_layers) * config.num_kv_heads *
                                      options.block_size * config.head_dim * DTypeSize(dtype);
  int64_t num_blocks = options.num_blocks > 0 ? options.num_blocks
                                              : static_cast<int64_t>(bytes / per_block_all_layers);
  if (num_blocks <= 0 || static_cast<size_t>(num_blocks) * per_block_all_layers > bytes) {
    return ResourceExhaustedError("KV cache memory of " + std::to_string(bytes) + " bytes cannot hold " +
                                  std::to_string(std::max<int64_t>(num_blocks, 1)) + " blocks of " +
                                  std::to_string(per_block_all_layers) + " bytes");
  }
  if (num_blocks > INT32_MAX / options.block_size) num_blocks = INT32_MAX / options.block_size;
  DeviceBuffer borrowed(memory, static_cast<size_t>(num_blocks) * per_block_all_layers, [](void*) {});
  return std::unique_ptr<KvCache>(new KvCache(std::move(borrowed), static_cast<int>(config.num_layers),
                                              static_cast<int32_t>(num_blocks), options.block_size,
                                              static_cast<int>(config.num_kv_heads),
                                              static_cast<int>(config.head_dim), dtype));
}

KvCacheView KvCache::Layer(int layer) const {
  const size_t kv_bytes = bytes_per_block() * num_blocks_;  // one of K or V, one layer
  char* base = static_cast<char*>(buffer_.data()) + 2 * kv_bytes * layer;
  KvCacheView view;
  view.k = base;
  view.v = base + kv_bytes;
  view.dtype = dtype_;
  view.num_blocks = num_blocks_;
  view.num_kv_heads = num_kv_heads_;
  view.block_size = block_size_;
  view.head_dim = head_dim_;
  return view;
}

}  // namespace tandem
