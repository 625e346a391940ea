// The one table of operations that every compute backend implements. CpuBackend is the
// reference; CudaBackend must agree with it within dtype tolerance (tests/kernels/).
//
// Conventions (FlashInfer-style): ops take non-owning views of backend memory and return a
// Status; shapes are written in trailing comments; tensors are row-major with contiguous rows.
// Activations use activation_dtype() (CPU: F32; CUDA: BF16) except where an op says F32.
// Weights may be F32, F16 or BF16; every op accumulates in fp32.
//
// Threading: a Backend is used by one thread at a time (the engine thread of its node).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "kernels/dtype.h"

namespace tandem {

// A non-owning 2-D view; vectors are [1, n].
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;

  int64_t numel() const { return rows * cols; }
  size_t bytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype); }
  // Rows [first, first + count) as a view of the same memory.
  TensorView RowSlice(int64_t first, int64_t count) const {
    return {static_cast<char*>(data) + static_cast<size_t>(first * cols) * DTypeSize(dtype), dtype,
            count, cols};
  }
};

// One layer's paged KV cache. Layout (the contract with kv_transfer/):
//   k, v: [num_blocks, num_kv_heads, block_size, head_dim]
// Token `t` of a sequence lives in block block_table[t / block_size], slot t % block_size.
struct KvCacheView {
  void* k = nullptr;
  void* v = nullptr;
  DType dtype = DType::kF32;
  int num_blocks = 0;
  int num_kv_heads = 0;
  int block_size = 0;
  int head_dim = 0;
};

// The per-step batch plan as seen by kernels (all arrays in backend memory). Built once per
// step on the host (model/batch_plan.h) and shared by every layer.
// Token i belongs to the sequence s with query_start[s] <= i < query_start[s+1]; it sits at
// position positions[i] and attends causally to cache positions [0, positions[i]] of s.
struct AttentionPlanView {
  int num_tokens = 0;
  int num_seqs = 0;
  const int32_t* positions = nullptr;     // [num_tokens]
  const int64_t* slot_mapping = nullptr;  // [num_tokens]  block_id * block_size + slot
  const int32_t* query_start = nullptr;   // [num_seqs + 1]
  const int32_t* context_lens = nullptr;  // [num_seqs]  tokens in the cache after this step
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  int max_blocks_per_seq = 0;
  int max_query_len = 0;    // host-side hints for launch shapes
  int max_context_len = 0;
};

// Owned backend memory; freed by the backend that made it.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(void* data, size_t bytes, std::function<void(void*)> free_fn)
      : data_(data, std::move(free_fn)), bytes_(bytes) {}
  void* data() const { return data_.get(); }
  size_t bytes() const { return bytes_; }
  explicit operator bool() const { return data_ != nullptr; }

 private:
  std::unique_ptr<void, std::function<void(void*)>> data_{nullptr, [](void*) {}};
  size_t bytes_ = 0;
};

// A weight placed in backend memory; `view` points into `storage` or, when the backend can
// use host memory as is (CPU), straight into the memory-mapped checkpoint.
struct DeviceWeight {
  TensorView view;
  DeviceBuffer storage;
};

struct BackendOptions {
  int num_threads = 0;  // CPU: 0 means all cores
  size_t kv_cache_bytes = 0;  // CPU: KV pool budget; 0 means the backend's default (2 GiB)
  int device_index = 0;
  double gpu_memory_utilization = 0.9;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;  // "cpu", "cuda"
  virtual DType activation_dtype() const = 0;
  virtual DType kv_cache_dtype() const = 0;
  // Bytes the KV pool may use; CPU answers a fixed budget, CUDA a fraction of free memory.
  virtual size_t kv_cache_budget_bytes() const = 0;
  // Host threads the caller may use for its own per-sequence work (sampling) between ops.
  virtual int host_threads() const { return 1; }

  // --- memory ---
  virtual Result<DeviceBuffer> Allocate(size_t bytes) = 0;
  virtual Status CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual Status CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  virtual Status Synchronize() = 0;
  // REQUIRES: host.data stays valid for the backend's lifetime if the backend keeps it.
  virtual Result<DeviceWeight> UploadWeight(const TensorView& host) = 0;

  // --- ops ---
  // out[i] = table[ids[i]]
  virtual Status Embedding(const TensorView& table,  // [vocab, hidden]
                           const int32_t* ids,       // [n]
                           TensorView out) = 0;      // [n, hidden]
  // out = x / rms(x) * weight
  virtual Status RmsNorm(const TensorView& x,       // [n, dim]
                         const TensorView& weight,  // [1, dim]
                         float eps, TensorView out) = 0;  // [n, dim]
  // residual += x; out = RmsNorm(residual)
  virtual Status AddRmsNorm(TensorView residual,     // [n, dim] in/out
                            const TensorView& x,     // [n, dim]
                            const TensorView& weight, float eps,
                            TensorView out) = 0;     // [n, dim]
  // out = x @ w^T (+ bias). out may be F32 or activation_dtype().
  virtual Status Matmul(const TensorView& x,     // [m, k]
                        const TensorView& w,     // [n, k]
                        const TensorView* bias,  // [1, n] or nullptr
                        TensorView out) = 0;     // [m, n]
  // Rotary embedding in place, HF "rotate half" convention: for each head, pairs
  // (j, j + head_dim/2) rotate by positions[t] * inv_freq[j].
  virtual Status Rope(TensorView q,  // [n, num_heads * head_dim]
                      TensorView k,  // [n, num_kv_heads * head_dim]
                      const int32_t* positions,  // [n]
                      const float* inv_freq,     // [head_dim / 2], F32
                      int head_dim) = 0;
  // cache[slot_mapping[t]] = k[t], v[t]
  virtual Status WriteKv(const TensorView& k,  // [n, num_kv_heads * head_dim]
                         const TensorView& v,  // [n, num_kv_heads * head_dim]
                         const int64_t* slot_mapping,  // [n]
                         const KvCacheView& cache) = 0;
  // Causal attention of every query token over its sequence's paged cache (prefill, decode
  // and mixed batches alike). GQA: query head h reads kv head h / (num_heads / num_kv_heads).
  virtual Status Attention(const TensorView& q,  // [n, num_heads * head_dim]
                           const KvCacheView& cache, const AttentionPlanView& plan,
                           int num_heads, float scale,
                           TensorView out) = 0;  // [n, num_heads * head_dim]
  // out = silu(gate) * up
  virtual Status SiluMul(const TensorView& gate,  // [n, inter]
                         const TensorView& up,    // [n, inter]
                         TensorView out) = 0;     // [n, inter]
  // out[i] = x[indices[i]]
  virtual Status GatherRows(const TensorView& x,     // [n, d]
                            const int32_t* indices,  // [m]
                            TensorView out) = 0;     // [m, d]
};

// "cpu" always; "cuda" when the build has the CUDA backend and a GPU is present.
Result<std::unique_ptr<Backend>> CreateBackend(std::string_view device,
                                               const BackendOptions& options = {});

}  // namespace tandem
