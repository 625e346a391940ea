// The paged KV cache of one node: one backend allocation for all layers, laid out
//   [num_layers][2 (K, V)][num_blocks][num_kv_heads][block_size][head_dim]
// (the contract with kv_transfer/), plus the BlockPool that hands its blocks out.
// Threading: owned by the engine thread of its node.
#pragma once

#include <cstdint>
#include <memory>

#include "common/status.h"
#include "kernels/backend.h"
#include "model/block_pool.h"
#include "model/model_config.h"

namespace tandem {

struct KvCacheOptions {
  int32_t block_size = 16;
  int32_t num_blocks = 0;     // 0: as many as the backend's KV budget allows
  size_t max_bytes = 0;       // 0: backend->kv_cache_budget_bytes()
};

class KvCache {
 public:
  static Result<std::unique_ptr<KvCache>> Create(Backend& backend, const ModelConfig& config,
                                                 const KvCacheOptions& options);
  // The same cache laid over caller-owned memory (e.g. a pool the KV transport allocated and
  // registered, so that peers write it zero-copy). The memory must be in the backend's address
  // space (host memory for the CPU backend) and outlive the cache; it is not freed here.
  // options.num_blocks 0 means as many blocks as `bytes` holds. ResourceExhausted when `bytes`
  // is smaller than the blocks asked for.
  static Result<std::unique_ptr<KvCache>> CreateOver(void* memory, size_t bytes, DType dtype,
                                                     const ModelConfig& config,
                                                     const KvCacheOptions& options);

  KvCacheView Layer(int layer) const;
  BlockPool& pool() { return pool_; }
  const BlockPool& pool() const { return pool_; }
  int32_t block_size() const { return block_size_; }
  int32_t num_blocks() const { return num_blocks_; }
  int num_layers() const { return num_layers_; }
  DType dtype() const { return dtype_; }
  size_t bytes_per_block() const;  // one block, one layer, K or V
  void* data() const { return buffer_.data(); }
  size_t total_bytes() const { return buffer_.bytes(); }

 private:
  KvCache(DeviceBuffer buffer, int num_layers, int32_t num_blocks, int32_t block_size,
          int num_kv_heads, int head_dim, DType dtype);

  DeviceBuffer buffer_;
  int num_layers_;
  int32_t num_blocks_;
  int32_t block_size_;
  int num_kv_heads_;
  int head_dim_;
  DType dtype_;
  BlockPool pool_;
};

}  // namespace tandem
