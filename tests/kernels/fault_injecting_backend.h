// A Backend that forwards to another one and fails on demand: Matmul answers Internal
// ("injected device fault") while the shared flag is set. Tests use it to make an engine step
// fail the way a device fault would (the forward pass returns an error mid-way).
#pragma once

#include <atomic>
#include <memory>
#include <string_view>

#include "kernels/backend.h"

namespace tandem::testing {

class FaultInjectingBackend : public Backend {
 public:
  explicit FaultInjectingBackend(std::unique_ptr<Backend> inner, std::shared_ptr<std::atomic<bool>> fail)
      : inner_(std::move(inner)), fail_(std::move(fail)) {}
  std::string_view name() const override { return inner_->name(); }
  DType activation_dtype() const override { return inner_->activation_dtype(); }
  DType kv_cache_dtype() const override { return inner_->kv_cache_dtype(); }
  size_t kv_cache_budget_bytes() const override { return inner_->kv_cache_budget_bytes(); }
  Result<DeviceBuffer> Allocate(size_t bytes) override { return inner_->Allocate(bytes); }
  Status CopyToDevice(void* d, const void* s, size_t n) override { return inner_->CopyToDevice(d, s, n); }
  Status CopyToHost(void* d, const void* s, size_t n) override { return inner_->CopyToHost(d, s, n); }
  Status Synchronize() override { return inner_->Synchronize(); }
  Result<DeviceWeight> UploadWeight(const TensorView& host) override { return inner_->UploadWeight(host); }
  Status Embedding(const TensorView& t, const int32_t* ids, TensorView out) override {
    return inner_->Embedding(t, ids, out);
  }
  Status RmsNorm(const TensorView& x, const TensorView& w, float eps, TensorView out) override {
    return inner_->RmsNorm(x, w, eps, out);
  }
  Status AddRmsNorm(TensorView r, const TensorView& x, const TensorView& w, float eps, TensorView out) override {
    return inner_->AddRmsNorm(r, x, w, eps, out);
  }
  Status Matmul(const TensorView& x, const TensorView& w, const TensorView* b, TensorView out) override {
    if (fail_->load()) return InternalError("injected device fault");
    return inner_->Matmul(x, w, b, out);
  }
  Status Rope(TensorView q, TensorView k, const int32_t* pos, const float* inv_freq, int head_dim) override {
    return inner_->Rope(q, k, pos, inv_freq, head_dim);
  }
  Status WriteKv(const TensorView& k, const TensorView& v, const int64_t* slots, const KvCacheView& c) override {
    return inner_->WriteKv(k, v, slots, c);
  }
  Status Attention(const TensorView& q, const KvCacheView& c, const AttentionPlanView& p, int heads, float scale,
                   TensorView out) override {
    return inner_->Attention(q, c, p, heads, scale, out);
  }
  Status SiluMul(const TensorView& g, const TensorView& u, TensorView out) override {
    return inner_->SiluMul(g, u, out);
  }
  Status GatherRows(const TensorView& x, const int32_t* idx, TensorView out) override {
    return inner_->GatherRows(x, idx, out);
  }

 private:
  std::unique_ptr<Backend> inner_;
  std::shared_ptr<std::atomic<bool>> fail_;
};

}  // namespace tandem::testing
