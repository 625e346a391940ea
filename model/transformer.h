// The Llama-family forward pass over one BatchPlan: any number of sequences, each with any
// number of new tokens (prefill, chunked prefill and decode mixed freely).
//   embed -> [RMSNorm -> QKV (+bias) -> RoPE -> write KV -> paged attention -> O ->
//             add+RMSNorm -> gate/up -> SwiGLU -> down -> add] x L -> RMSNorm -> lm_head
// Threading: one thread at a time (the engine thread), like its Backend.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "model/batch_plan.h"
#include "model/kv_cache.h"
#include "model/model_weights.h"

namespace tandem {

class Transformer {
 public:
  // Called after layer `layer` has written its K/V for the step: the prefill node starts that
  // layer's transfer here, so the transfer overlaps the remaining layers' compute.
  using LayerDoneFn = std::function<void(int layer)>;

  static Result<std::unique_ptr<Transformer>> Create(Backend& backend, const ModelWeights& weights);

  // Runs one step. `logits` receives [plan.num_logits(), vocab] fp32 rows, on the host.
  // REQUIRES: every block in the plan's tables belongs to `cache` and is held by the caller.
  Status Forward(const BatchPlan& plan, KvCache& cache, std::vector<float>* logits,
                 const LayerDoneFn& on_layer_done = nullptr);

  const ModelConfig& config() const { return weights_.config; }
  Backend& backend() { return backend_; }

 private:
  Transformer(Backend& backend, const ModelWeights& weights) : backend_(backend), weights_(weights) {}
  Status EnsureWorkspace(int64_t num_tokens, int64_t num_logits);
  Status RunLayer(int layer, const DevicePlan& dplan, KvCache& cache, int64_t n);

  Backend& backend_;
  const ModelWeights& weights_;
  DeviceBuffer inv_freq_;  // [head_dim / 2] F32

  // Workspace, sized for the largest step seen so far.
  int64_t capacity_tokens_ = 0;
  int64_t capacity_logits_ = 0;
  DeviceBuffer ws_tokens_;  // per-token activations, carved into the views below
  DeviceBuffer ws_logits_;
  TensorView residual_, normed_, q_, k_, v_, attn_, proj_, gate_, up_;
  TensorView last_residual_, last_mlp_, last_normed_, logits_;  // [num_logits, ...]
  DevicePlan device_plan_;
};

}  // namespace tandem
