// CpuBackend: checks every op's shapes and dtypes (a precise InvalidArgument error instead of a
// crash), then runs the kernels of kernels/cpu/ (cpu_kernels.h).
#include "kernels/cpu/cpu_backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "common/logging.h"
#include "kernels/cpu/cpu_kernels.h"

namespace tandem {
namespace {

constexpr size_t kAlignment = 64;  // one cache line; also the widest vector load
constexpr size_t kDefaultKvBudgetBytes = size_t{2} << 30;

// Message building by appends (GCC 12 warns falsely on `"literal" + std::string&&`).
void Append(std::string& s, std::string_view v) { s += v; }
void Append(std::string& s, const char* v) { s += v; }
template <class N>
  requires std::is_arithmetic_v<N>
void Append(std::string& s, N v) {
  s += std::to_string(v);
}
template <class... A>
std::string Cat(const A&... parts) {
  std::string s;
  (Append(s, parts), ...);
  return s;
}

std::string Shape(const TensorView& t) {
  return Cat("[", t.rows, ", ", t.cols, "] ", DTypeName(t.dtype));
}

Status Expect(bool ok, std::string_view op, const std::string& what) {
  if (ok) return Status::Ok();
  return InvalidArgumentError(std::string(op) + ": " + what);
}

// A tensor every op requires: non-negative shape, data present unless empty, given dtype.
Status CheckTensor(std::string_view op, std::string_view name, const TensorView& t,
                   const DType* dtype) {
  if (t.rows < 0 || t.cols < 0) {
    return InvalidArgumentError(std::string(op) + ": " + std::string(name) +
                                " has a negative shape " + Shape(t));
  }
  if (t.numel() > 0 && t.data == nullptr) {
    return InvalidArgumentError(std::string(op) + ": " + std::string(name) + " " + Shape(t) +
                                " has no data");
  }
  if (dtype != nullptr && t.dtype != *dtype) {
    return InvalidArgumentError(std::string(op) + ": " + std::string(name) + " must be " +
                                std::string(DTypeName(*dtype)) + ", got " + Shape(t));
  }
  return Status::Ok();
}

constexpr DType kF32 = DType::kF32;

Status CheckSameShape(std::string_view op, std::string_view a_name, const TensorView& a,
                      std::string_view b_name, const TensorView& b) {
  if (a.rows == b.rows && a.cols == b.cols) return Status::Ok();
  return InvalidArgumentError(std::string(op) + ": " + std::string(a_name) + " " + Shape(a) +
                              " and " + std::string(b_name) + " " + Shape(b) + " differ in shape");
}

bool Overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && pa < pb + b_bytes && pb < pa + a_bytes;
}

Status CheckKvCache(std::string_view op, const KvCacheView& c) {
  if (c.dtype != DType::kF32) {
    return InvalidArgumentError(std::string(op) + ": the CPU KV cache is F32, got " +
                                std::string(DTypeName(c.dtype)));
  }
  if (c.num_blocks <= 0 || c.num_kv_heads <= 0 || c.block_size <= 0 || c.head_dim <= 0 ||
      c.k == nullptr || c.v == nullptr) {
    return InvalidArgumentError(
        std::string(op) + ": bad KV cache view (num_blocks " + std::to_string(c.num_blocks) +
        ", num_kv_heads " + std::to_string(c.num_kv_heads) + ", block_size " +
        std::to_string(c.block_size) + ", head_dim " + std::to_string(c.head_dim) +
        (c.k == nullptr || c.v == nullptr ? ", null k/v" : "") + ")");
  }
  return Status::Ok();
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& options)
      : num_threads_(options.num_threads > 0 ? options.num_threads : omp_get_num_procs()),
        kv_budget_bytes_(options.kv_cache_bytes > 0 ? options.kv_cache_bytes
                                                    : kDefaultKvBudgetBytes) {
    GetLogger("kernels")->debug("cpu backend: {} threads, {} kernels, KV budget {} MiB",
                                num_threads_, cpu::IsaName(), kv_budget_bytes_ >> 20);
  }

  std::string_view name() const override { return "cpu"; }
  DType activation_dtype() const override { return DType::kF32; }
  DType kv_cache_dtype() const override { return DType::kF32; }
  size_t kv_cache_budget_bytes() const override { return kv_budget_bytes_; }
  int host_threads() const override { return num_threads_; }

  Result<DeviceBuffer> Allocate(size_t bytes) override {
    // aligned_alloc needs a size that is a multiple of the alignment (and non-zero).
    const size_t rounded = std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (p == nullptr) {
      return ResourceExhaustedError("cpu: cannot allocate " + std::to_string(bytes) + " bytes");
    }
    std::memset(p, 0, rounded);
    return DeviceBuffer(p, bytes, [](void* q) { std::free(q); });
  }
  Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    if (bytes != 0) std::memcpy(dst, src, bytes);
    return Status::Ok();
  }
  Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (bytes != 0) std::memcpy(dst, src, bytes);
    return Status::Ok();
  }
  Status Synchronize() override { return Status::Ok(); }
  // Zero-copy: the kernels read F32/F16/BF16 weights in place (the mmapped checkpoint).
  Result<DeviceWeight> UploadWeight(const TensorView& host) override {
    RETURN_IF_ERROR(CheckTensor("UploadWeight", "host", host, nullptr));
    DeviceWeight w;
    w.view = host;
    return w;
  }

  Status Embedding(const TensorView& table, const int32_t* ids, TensorView out) override;
  Status RmsNorm(const TensorView& x, const TensorView& weight, float eps,
                 TensorView out) override;
  Status AddRmsNorm(TensorView residual, const TensorView& x, const TensorView& weight, float eps,
                    TensorView out) override;
  Status Matmul(const TensorView& x, const TensorView& w, const TensorView* bias,
                TensorView out) override;
  Status Rope(TensorView q, TensorView k, const int32_t* positions, const float* inv_freq,
              int head_dim) override;
  Status WriteKv(const TensorView& k, const TensorView& v, const int64_t* slot_mapping,
                 const KvCacheView& cache) override;
  Status Attention(const TensorView& q, const KvCacheView& cache, const AttentionPlanView& plan,
                   int num_heads, float scale, TensorView out) override;
  Status SiluMul(const TensorView& gate, const TensorView& up, TensorView out) override;
  Status GatherRows(const TensorView& x, const int32_t* indices, TensorView out) override;

 private:
  Status CheckNorm(std::string_view op, const TensorView& x, const TensorView& weight,
                   const TensorView& out) const;

  int num_threads_;
  size_t kv_budget_bytes_;
  std::vector<float> bias_f32_;  // a widened F16/BF16 bias (one thread uses the backend)
};

Status CpuBackend::Embedding(const TensorView& table, const int32_t* ids, TensorView out) {
  constexpr std::string_view op = "Embedding";
  RETURN_IF_ERROR(CheckTensor(op, "table", table, nullptr));
  RETURN_IF_ERROR(CheckTensor(op, "out", out, &kF32));
  RETURN_IF_ERROR(Expect(out.cols == table.cols, op,
                         "out " + Shape(out) + " and table " + Shape(table) + " differ in width"));
  if (out.rows == 0) return Status::Ok();
  RETURN_IF_ERROR(Expect(ids != nullptr, op, "ids is null"));
  for (int64_t i = 0; i < out.rows; ++i) {
    if (ids[i] < 0 || ids[i] >= table.rows) {
      return InvalidArgumentError("Embedding: ids[" + std::to_string(i) + "] = " +
                                  std::to_string(ids[i]) + " is outside the vocabulary [0, " +
                                  std::to_string(table.rows) + ")");
    }
  }
  cpu::EmbeddingRows(table.data, table.dtype, table.cols, ids, out.rows,
                     static_cast<float*>(out.data), num_threads_);
  return Status::Ok();
}

Status CpuBackend::CheckNorm(std::string_view op, const TensorView& x, const TensorView& weight,
                             const TensorView& out) const {
  RETURN_IF_ERROR(CheckTensor(op, "x", x, &kF32));
  RETURN_IF_ERROR(CheckTensor(op, "weight", weight, nullptr));
  RETURN_IF_ERROR(CheckTensor(op, "out", out, &kF32));
  RETURN_IF_ERROR(CheckSameShape(op, "x", x, "out", out));
  return Expect(weight.numel() == x.cols && x.cols > 0, op,
                "weight " + Shape(weight) + " does not match x " + Shape(x));
}

Status CpuBackend::RmsNorm(const TensorView& x, const TensorView& weight, float eps,
                           TensorView out) {
  RETURN_IF_ERROR(CheckNorm("RmsNorm", x, weight, out));
  cpu::RmsNorm(static_cast<const float*>(x.data), weight.data, weight.dtype, x.rows, x.cols, eps,
               static_cast<float*>(out.data), num_threads_);
  return Status::Ok();
}

Status CpuBackend::AddRmsNorm(TensorView residual, const TensorView& x, const TensorView& weight,
                              float eps, TensorView out) {
  constexpr std::string_view op = "AddRmsNorm";
  RETURN_IF_ERROR(CheckNorm(op, x, weight, out));
  RETURN_IF_ERROR(CheckTensor(op, "residual", residual, &kF32));
  RETURN_IF_ERROR(CheckSameShape(op, "residual", residual, "x", x));
  cpu::AddRmsNorm(static_cast<float*>(residual.data), static_cast<const float*>(x.data),
                  weight.data, weight.dtype, x.rows, x.cols, eps, static_cast<float*>(out.data),
                  num_threads_);
  return Status::Ok();
}

Status CpuBackend::Matmul(const TensorView& x, const TensorView& w, const TensorView* bias,
                          TensorView out) {
  constexpr std::string_view op = "Matmul";
  RETURN_IF_ERROR(CheckTensor(op, "x", x, &kF32));
  RETURN_IF_ERROR(CheckTensor(op, "w", w, nullptr));
  RETURN_IF_ERROR(CheckTensor(op, "out", out, &kF32));
  RETURN_IF_ERROR(Expect(x.cols == w.cols, op,
                         "x " + Shape(x) + " and w " + Shape(w) + " differ in k"));
  RETURN_IF_ERROR(Expect(out.rows == x.rows && out.cols == w.rows, op,
                         "out " + Shape(out) + " is not [x.rows, w.rows] for x " + Shape(x) +
                             " and w " + Shape(w)));
  RETURN_IF_ERROR(Expect(!Overlap(out.data, out.bytes(), x.data, x.bytes()), op,
                         "out overlaps x"));
  const float* bias_f32 = nullptr;
  if (bias != nullptr) {
    RETURN_IF_ERROR(CheckTensor(op, "bias", *bias, nullptr));
    RETURN_IF_ERROR(Expect(bias->numel() == w.rows, op,
                           "bias " + Shape(*bias) + " does not match w " + Shape(w)));
    if (bias->dtype == DType::kF32) {
      bias_f32 = static_cast<const float*>(bias->data);
    } else {
      bias_f32_.resize(static_cast<size_t>(w.rows));
      cpu::WidenToF32(bias->data, bias->dtype, w.rows, bias_f32_.data());
      bias_f32 = bias_f32_.data();
    }
  }
  cpu::Matmul(static_cast<const float*>(x.data), x.rows, x.cols, w.data, w.dtype, w.rows, bias_f32,
              static_cast<float*>(out.data), num_threads_);
  return Status::Ok();
}

Status CpuBackend::Rope(TensorView q, TensorView k, const int32_t* positions,
                        const float* inv_freq, int head_dim) {
  constexpr std::string_view op = "Rope";
  RETURN_IF_ERROR(CheckTensor(op, "q", q, &kF32));
  RETURN_IF_ERROR(CheckTensor(op, "k", k, &kF32));
  RETURN_IF_ERROR(Expect(head_dim > 0 && head_dim % 2 == 0, op,
                         "head_dim must be positive and even, got " + std::to_string(head_dim)));
  RETURN_IF_ERROR(Expect(q.cols % head_dim == 0, op,
                         "q " + Shape(q) + " is not a whole number of heads of " +
                             std::to_string(head_dim)));
  const bool has_k = k.numel() > 0;
  if (has_k) {
    RETURN_IF_ERROR(Expect(k.rows == q.rows && k.cols % head_dim == 0, op,
                           "k " + Shape(k) + " does not fit q " + Shape(q) + " and head_dim " +
                               std::to_string(head_dim)));
  }
  if (q.rows == 0) return Status::Ok();
  RETURN_IF_ERROR(Expect(positions != nullptr && inv_freq != nullptr, op,
                         "positions or inv_freq is null"));
  for (int64_t t = 0; t < q.rows; ++t) {
    if (positions[t] < 0) {
      return InvalidArgumentError("Rope: positions[" + std::to_string(t) + "] = " +
                                  std::to_string(positions[t]) + " is negative");
    }
  }
  cpu::Rope(static_cast<float*>(q.data), q.cols / head_dim,
            has_k ? static_cast<float*>(k.data) : nullptr, has_k ? k.cols / head_dim : 0, q.rows,
            positions, inv_freq, head_dim, num_threads_);
  return Status::Ok();
}

Status CpuBackend::WriteKv(const TensorView& k, const TensorView& v, const int64_t* slot_mapping,
                           const KvCacheView& cache) {
  constexpr std::string_view op = "WriteKv";
  RETURN_IF_ERROR(CheckKvCache(op, cache));
  RETURN_IF_ERROR(CheckTensor(op, "k", k, &kF32));
  RETURN_IF_ERROR(CheckTensor(op, "v", v, &kF32));
  RETURN_IF_ERROR(CheckSameShape(op, "k", k, "v", v));
  const int64_t width = static_cast<int64_t>(cache.num_kv_heads) * cache.head_dim;
  RETURN_IF_ERROR(Expect(k.cols == width, op,
                         "k " + Shape(k) + " is not [n, num_kv_heads * head_dim = " +
                             std::to_string(width) + "]"));
  if (k.rows == 0) return Status::Ok();
  RETURN_IF_ERROR(Expect(slot_mapping != nullptr, op, "slot_mapping is null"));
  const int64_t slots = static_cast<int64_t>(cache.num_blocks) * cache.block_size;
  for (int64_t t = 0; t < k.rows; ++t) {
    if (slot_mapping[t] < 0 || slot_mapping[t] >= slots) {
      return InvalidArgumentError("WriteKv: slot_mapping[" + std::to_string(t) + "] = " +
                                  std::to_string(slot_mapping[t]) + " is outside the cache [0, " +
                                  std::to_string(slots) + ")");
    }
  }
  const int hd = cache.head_dim, bs = cache.block_size;
  const size_t row_bytes = static_cast<size_t>(hd) * sizeof(float);
  for (int64_t t = 0; t < k.rows; ++t) {
    const int64_t block = slot_mapping[t] / bs, offset = slot_mapping[t] % bs;
    for (int h = 0; h < cache.num_kv_heads; ++h) {
      const int64_t dst = ((block * cache.num_kv_heads + h) * bs + offset) * hd;
      const int64_t src = t * width + static_cast<int64_t>(h) * hd;
      std::memcpy(static_cast<float*>(cache.k) + dst, static_cast<const float*>(k.data) + src,
                  row_bytes);
      std::memcpy(static_cast<float*>(cache.v) + dst, static_cast<const float*>(v.data) + src,
                  row_bytes);
    }
  }
  return Status::Ok();
}

Status CpuBackend::Attention(const TensorView& q, const KvCacheView& cache,
                             const AttentionPlanView& plan, int num_heads, float scale,
                             TensorView out) {
  constexpr std::string_view op = "Attention";
  RETURN_IF_ERROR(CheckKvCache(op, cache));
  RETURN_IF_ERROR(CheckTensor(op, "q", q, &kF32));
  RETURN_IF_ERROR(CheckTensor(op, "out", out, &kF32));
  RETURN_IF_ERROR(CheckSameShape(op, "q", q, "out", out));
  RETURN_IF_ERROR(Expect(num_heads > 0 && num_heads % cache.num_kv_heads == 0, op,
                         "num_heads " + std::to_string(num_heads) +
                             " is not a positive multiple of num_kv_heads " +
                             std::to_string(cache.num_kv_heads)));
  RETURN_IF_ERROR(Expect(q.cols == static_cast<int64_t>(num_heads) * cache.head_dim, op,
                         "q " + Shape(q) + " is not [n, num_heads * head_dim = " +
                             std::to_string(num_heads * cache.head_dim) + "]"));
  RETURN_IF_ERROR(Expect(std::isfinite(scale), op, "scale is not finite"));
  RETURN_IF_ERROR(Expect(!Overlap(out.data, out.bytes(), q.data, q.bytes()), op,
                         "out overlaps q"));
  RETURN_IF_ERROR(Expect(plan.num_tokens == q.rows && plan.num_seqs >= 0, op,
                         "plan.num_tokens " + std::to_string(plan.num_tokens) + " but q has " +
                             std::to_string(q.rows) + " rows"));
  if (plan.num_tokens == 0) return Status::Ok();
  RETURN_IF_ERROR(Expect(plan.positions != nullptr && plan.query_start != nullptr &&
                             plan.context_lens != nullptr && plan.block_tables != nullptr &&
                             plan.max_blocks_per_seq > 0,
                         op, "plan has a null array or max_blocks_per_seq <= 0"));
  RETURN_IF_ERROR(Expect(plan.query_start[0] == 0 && plan.query_start[plan.num_seqs] == q.rows,
                         op, "plan.query_start must run from 0 to num_tokens"));
  for (int s = 0; s < plan.num_seqs; ++s) {
    const std::string seq = "sequence " + std::to_string(s);
    const int32_t t0 = plan.query_start[s], t1 = plan.query_start[s + 1];
    const int32_t ctx = plan.context_lens[s];
    RETURN_IF_ERROR(Expect(t0 <= t1, op, seq + ": query_start is not ascending"));
    RETURN_IF_ERROR(Expect(
        ctx >= 0 && static_cast<int64_t>(ctx) <=
                        static_cast<int64_t>(plan.max_blocks_per_seq) * cache.block_size,
        op, seq + ": context_len " + std::to_string(ctx) + " does not fit its block table"));
    int32_t max_pos = -1;
    for (int32_t t = t0; t < t1; ++t) {
      if (plan.positions[t] < 0 || plan.positions[t] >= ctx) {
        return InvalidArgumentError("Attention: token " + std::to_string(t) + " of " + seq +
                                    " has position " + std::to_string(plan.positions[t]) +
                                    " outside its context [0, " + std::to_string(ctx) + ")");
      }
      max_pos = std::max(max_pos, plan.positions[t]);
    }
    const int32_t* table = plan.block_tables + static_cast<int64_t>(s) * plan.max_blocks_per_seq;
    for (int32_t b = 0; b * cache.block_size <= max_pos; ++b) {
      if (table[b] < 0 || table[b] >= cache.num_blocks) {
        return InvalidArgumentError("Attention: " + seq + " block_tables[" + std::to_string(b) +
                                    "] = " + std::to_string(table[b]) +
                                    " is outside the cache [0, " +
                                    std::to_string(cache.num_blocks) + ")");
      }
    }
  }
  cpu::Attention(static_cast<const float*>(q.data), cache, plan, num_heads, scale,
                 static_cast<float*>(out.data), num_threads_);
  return Status::Ok();
}

Status CpuBackend::SiluMul(const TensorView& gate, const TensorView& up, TensorView out) {
  constexpr std::string_view op = "SiluMul";
  RETURN_IF_ERROR(CheckTensor(op, "gate", gate, &kF32));
  RETURN_IF_ERROR(CheckTensor(op, "up", up, &kF32));
  RETURN_IF_ERROR(CheckTensor(op, "out", out, &kF32));
  RETURN_IF_ERROR(CheckSameShape(op, "gate", gate, "up", up));
  RETURN_IF_ERROR(CheckSameShape(op, "gate", gate, "out", out));
  cpu::SiluMul(static_cast<const float*>(gate.data), static_cast<const float*>(up.data),
               gate.numel(), static_cast<float*>(out.data), num_threads_);
  return Status::Ok();
}

Status CpuBackend::GatherRows(const TensorView& x, const int32_t* indices, TensorView out) {
  constexpr std::string_view op = "GatherRows";
  RETURN_IF_ERROR(CheckTensor(op, "x", x, nullptr));
  RETURN_IF_ERROR(CheckTensor(op, "out", out, &x.dtype));
  RETURN_IF_ERROR(Expect(out.cols == x.cols, op,
                         "out " + Shape(out) + " and x " + Shape(x) + " differ in width"));
  if (out.rows == 0) return Status::Ok();
  RETURN_IF_ERROR(Expect(indices != nullptr, op, "indices is null"));
  RETURN_IF_ERROR(Expect(!Overlap(out.data, out.bytes(), x.data, x.bytes()), op,
                         "out overlaps x"));
  const size_t row_bytes = static_cast<size_t>(x.cols) * DTypeSize(x.dtype);
  for (int64_t i = 0; i < out.rows; ++i) {
    if (indices[i] < 0 || indices[i] >= x.rows) {
      return InvalidArgumentError("GatherRows: indices[" + std::to_string(i) + "] = " +
                                  std::to_string(indices[i]) + " is outside [0, " +
                                  std::to_string(x.rows) + ")");
    }
    std::memcpy(static_cast<char*>(out.data) + i * row_bytes,
                static_cast<const char*>(x.data) + indices[i] * row_bytes, row_bytes);
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Backend>> CreateCpuBackend(const BackendOptions& options) {
  if (options.num_threads < 0) {
    return InvalidArgumentError("cpu: num_threads must be >= 0 (0 = all cores), got " +
                                std::to_string(options.num_threads));
  }
  return std::unique_ptr<Backend>(new CpuBackend(options));
}

}  // namespace tandem
