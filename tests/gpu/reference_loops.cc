// Plain fp32 loops behind the Backend interface: the reference of the standalone GPU build.
// Host memory, F32 activations and KV cache, weights read in their stored dtype.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tests/gpu/reference_backend.h"

namespace tandem::gpu_test {
namespace {

float At(const TensorView& t, int64_t r, int64_t c) {
  return LoadAsF32(t.data, t.dtype, static_cast<size_t>(r * t.cols + c));
}
void Set(TensorView& t, int64_t r, int64_t c, float v) {
  const size_t i = static_cast<size_t>(r * t.cols + c);
  switch (t.dtype) {
    case DType::kF32: static_cast<float*>(t.data)[i] = v; break;
    case DType::kF16: static_cast<uint16_t*>(t.data)[i] = F32ToF16(v); break;
    case DType::kBF16: static_cast<uint16_t*>(t.data)[i] = F32ToBf16(v); break;
  }
}

class LoopBackend final : public Backend {
 public:
  std::string_view name() const override { return "loops"; }
  DType activation_dtype() const override { return DType::kF32; }
  DType kv_cache_dtype() const override { return DType::kF32; }
  size_t kv_cache_budget_bytes() const override { return size_t{1} << 30; }
  Result<DeviceBuffer> Allocate(size_t bytes) override {
    void* p = std::calloc(bytes == 0 ? 1 : bytes, 1);
    if (p == nullptr) return ResourceExhaustedError("loops: out of memory");
    return DeviceBuffer(p, bytes, [](void* q) { std::free(q); });
  }
  Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
    return Status::Ok();
  }
  Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
    return Status::Ok();
  }
  Status Synchronize() override { return Status::Ok(); }
  Result<DeviceWeight> UploadWeight(const TensorView& host) override {
    DeviceWeight w;
    w.view = host;
    return w;
  }
  Status Embedding(const TensorView& table, const int32_t* ids, TensorView out) override {
    for (int64_t i = 0; i < out.rows; ++i) {
      if (ids[i] < 0 || ids[i] >= table.rows) return InvalidArgumentError("loops: bad id");
      for (int64_t c = 0; c < out.cols; ++c) Set(out, i, c, At(table, ids[i], c));
    }
    return Status::Ok();
  }
  Status RmsNorm(const TensorView& x, const TensorView& w, float eps, TensorView out) override {
    for (int64_t r = 0; r < x.rows; ++r) {
      double ss = 0;
      for (int64_t c = 0; c < x.cols; ++c) ss += double(At(x, r, c)) * At(x, r, c);
      const float inv = 1.0f / std::sqrt(float(ss / x.cols) + eps);
      for (int64_t c = 0; c < x.cols; ++c) Set(out, r, c, At(x, r, c) * inv * At(w, 0, c));
    }
    return Status::Ok();
  }
  Status AddRmsNorm(TensorView residual, const TensorView& x, const TensorView& w, float eps,
                    TensorView out) override {
    for (int64_t r = 0; r < x.rows; ++r)
      for (int64_t c = 0; c < x.cols; ++c) Set(residual, r, c, At(residual, r, c) + At(x, r, c));
    return RmsNorm(residual, w, eps, out);
  }
  Status Matmul(const TensorView& x, const TensorView& w, const TensorView* bias,
                TensorView out) override {
    for (int64_t i = 0; i < x.rows; ++i)
      for (int64_t j = 0; j < w.rows; ++j) {
        double acc = bias != nullptr ? At(*bias, 0, j) : 0.0;
        for (int64_t k = 0; k < x.cols; ++k) acc += double(At(x, i, k)) * At(w, j, k);
        Set(out, i, j, float(acc));
      }
    return Status::Ok();
  }
  Status Rope(TensorView q, TensorView k, const int32_t* positions, const float* inv_freq,
              int head_dim) override {
    const int half = head_dim / 2;
    for (TensorView* t : {&q, &k})
      for (int64_t r = 0; r < t->rows; ++r)
        for (int64_t h = 0; h < t->cols / head_dim; ++h)
          for (int j = 0; j < half; ++j) {
            const float a = float(positions[r]) * inv_freq[j];
            const float c = std::cos(a), s = std::sin(a);
            const int64_t c1 = h * head_dim + j, c2 = c1 + half;
            const float x1 = At(*t, r, c1), x2 = At(*t, r, c2);
            Set(*t, r, c1, x1 * c - x2 * s);
            Set(*t, r, c2, x2 * c + x1 * s);
          }
    return Status::Ok();
  }
  Status WriteKv(const TensorView& k, const TensorView& v, const int64_t* slots,
                 const KvCacheView& cache) override {
    for (int64_t t = 0; t < k.rows; ++t) {
      if (slots[t] < 0) continue;
      const int64_t block = slots[t] / cache.block_size, off = slots[t] % cache.block_size;
      for (int h = 0; h < cache.num_kv_heads; ++h)
        for (int d = 0; d < cache.head_dim; ++d) {
          const size_t i = size_t(
              ((block * cache.num_kv_heads + h) * cache.block_size + off) * cache.head_dim + d);
          static_cast<float*>(cache.k)[i] = At(k, t, h * cache.head_dim + d);
          static_cast<float*>(cache.v)[i] = At(v, t, h * cache.head_dim + d);
        }
    }
    return Status::Ok();
  }
  Status Attention(const TensorView& q, const KvCacheView& cache, const AttentionPlanView& plan,
                   int num_heads, float scale, TensorView out) override {
    const int group = num_heads / cache.num_kv_heads, dim = cache.head_dim;
    const float* kc = static_cast<const float*>(cache.k);
    const float* vc = static_cast<const float*>(cache.v);
    for (int s = 0; s < plan.num_seqs; ++s)
      for (int i = plan.query_start[s]; i < plan.query_start[s + 1]; ++i)
        for (int h = 0; h < num_heads; ++h) {
          const int kvh = h / group, n = plan.positions[i] + 1;
          std::vector<double> w(n);
          double mx = -INFINITY;
          auto row = [&](const float* c, int t) {
            const int block = plan.block_tables[s * plan.max_blocks_per_seq + t / cache.block_size];
            return c + (size_t(block) * cache.num_kv_heads + kvh) * cache.block_size * dim +
                   size_t(t % cache.block_size) * dim;
          };
          for (int t = 0; t < n; ++t) {
            double dot = 0;
            for (int d = 0; d < dim; ++d) dot += double(At(q, i, h * dim + d)) * row(kc, t)[d];
            w[t] = dot * scale;
            mx = std::max(mx, w[t]);
          }
          double sum = 0;
          for (int t = 0; t < n; ++t) sum += (w[t] = std::exp(w[t] - mx));
          for (int d = 0; d < dim; ++d) {
            double acc = 0;
            for (int t = 0; t < n; ++t) acc += w[t] * row(vc, t)[d];
            Set(out, i, h * dim + d, float(acc / sum));
          }
        }
    return Status::Ok();
  }
  Status SiluMul(const TensorView& gate, const TensorView& up, TensorView out) override {
    for (int64_t r = 0; r < gate.rows; ++r)
      for (int64_t c = 0; c < gate.cols; ++c) {
        const float g = At(gate, r, c);
        Set(out, r, c, g / (1.0f + std::exp(-g)) * At(up, r, c));
      }
    return Status::Ok();
  }
  Status GatherRows(const TensorView& x, const int32_t* idx, TensorView out) override {
    for (int64_t i = 0; i < out.rows; ++i)
      for (int64_t c = 0; c < out.cols; ++c) Set(out, i, c, At(x, idx[i], c));
    return Status::Ok();
  }
};

}  // namespace

Result<std::unique_ptr<Backend>> CreateReferenceBackend() {
  return std::unique_ptr<Backend>(new LoopBackend());
}
std::string ReferenceName() {
  return "fp32 loops";
}

}  // namespace tandem::gpu_test
