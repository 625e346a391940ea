#include "model/transformer.h"

#include <cmath>

namespace tandem {

Result<std::unique_ptr<Transformer>> Transformer::Create(Backend& backend, const ModelWeights& weights) {
  std::unique_ptr<Transformer> t(new Transformer(backend, weights));
  const std::vector<float> inv_freq = weights.config.RopeInvFreq();
  ASSIGN_OR_RETURN(t->inv_freq_, backend.Allocate(inv_freq.size() * sizeof(float)));
  RETURN_IF_ERROR(backend.CopyToDevice(t->inv_freq_.data(), inv_freq.data(), inv_freq.size() * sizeof(float)));
  return t;
}

Status Transformer::EnsureWorkspace(int64_t num_tokens, int64_t num_logits) {
  const ModelConfig& c = weights_.config;
  const DType act = backend_.activation_dtype();
  if (num_tokens > capacity_tokens_) {
    const int64_t cap = std::max<int64_t>(num_tokens, 2 * capacity_tokens_);
    const int64_t q_cols = c.num_heads * c.head_dim;
    const int64_t kv_cols = c.num_kv_heads * c.head_dim;
    // Widths of the per-token buffers, in elements; each becomes a [cap, width] view.
    const int64_t widths[] = {c.hidden_size, c.hidden_size, q_cols, kv_cols, kv_cols,
                              q_cols,        c.hidden_size, c.intermediate_size, c.intermediate_size};
    int64_t total = 0;
    for (int64_t w : widths) total += w;
    ASSIGN_OR_RETURN(ws_tokens_, backend_.Allocate(static_cast<size_t>(cap * total) * DTypeSize(act)));
    char* p = static_cast<char*>(ws_tokens_.data());
    TensorView* views[] = {&residual_, &normed_, &q_, &k_, &v_, &attn_, &proj_, &gate_, &up_};
    for (int i = 0; i < 9; ++i) {
      *views[i] = TensorView{p, act, cap, widths[i]};
      p += static_cast<size_t>(cap * widths[i]) * DTypeSize(act);
    }
    capacity_tokens_ = cap;
  }
  if (num_logits > capacity_logits_) {
    const int64_t cap = std::max<int64_t>(num_logits, 2 * capacity_logits_);
    const size_t hidden_bytes = static_cast<size_t>(cap * c.hidden_size) * DTypeSize(act);
    ASSIGN_OR_RETURN(ws_logits_,
                     backend_.Allocate(3 * hidden_bytes + static_cast<size_t>(cap * c.vocab_size) * 4));
    char* p = static_cast<char*>(ws_logits_.data());
    last_residual_ = TensorView{p, act, cap, c.hidden_size};
    last_mlp_ = TensorView{p + hidden_bytes, act, cap, c.hidden_size};
    last_normed_ = TensorView{p + 2 * hidden_bytes, act, cap, c.hidden_size};
    logits_ = TensorView{p + 3 * hidden_bytes, DType::kF32, cap, c.vocab_size};
    capacity_logits_ = cap;
  }
  return Status::Ok();
}

namespace {
const TensorView* OptionalBias(const DeviceWeight& w) { return w.view.data ? &w.view : nullptr; }
}  // namespace

Status Transformer::RunLayer(int layer, const DevicePlan& dplan, KvCache& cache, int64_t n) {
  const ModelConfig& c = weights_.config;
  const LayerWeights& w = weights_.layers[layer];
  const float eps = static_cast<float>(c.rms_norm_eps);
  TensorView residual = residual_.RowSlice(0, n), normed = normed_.RowSlice(0, n);
  TensorView q = q_.RowSlice(0, n), k = k_.RowSlice(0, n), v = v_.RowSlice(0, n);
  TensorView attn = attn_.RowSlice(0, n), proj = proj_.RowSlice(0, n);
  TensorView gate = gate_.RowSlice(0, n), up = up_.RowSlice(0, n);

  // proj holds the previous sub-layer's output (the MLP of layer-1); layer 0 starts from the
  // embeddings already in `residual`.
  if (layer == 0) {
    RETURN_IF_ERROR(backend_.RmsNorm(residual, w.input_norm.view, eps, normed));
  } else {
    RETURN_IF_ERROR(backend_.AddRmsNorm(residual, proj, w.input_norm.view, eps, normed));
  }
  RETURN_IF_ERROR(backend_.Matmul(normed, w.q_proj.view, OptionalBias(w.q_bias), q));
  RETURN_IF_ERROR(backend_.Matmul(normed, w.k_proj.view, OptionalBias(w.k_bias), k));
  RETURN_IF_ERROR(backend_.Matmul(normed, w.v_proj.view, OptionalBias(w.v_bias), v));
  RETURN_IF_ERROR(backend_.Rope(q, k, dplan.positions(), static_cast<const float*>(inv_freq_.data()),
                                static_cast<int>(c.head_dim)));
  const KvCacheView kv = cache.Layer(layer);
  RETURN_IF_ERROR(backend_.WriteKv(k, v, dplan.slot_mapping(), kv));
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  RETURN_IF_ERROR(backend_.Attention(q, kv, dplan.attention(), static_cast<int>(c.num_heads), scale, attn));
  RETURN_IF_ERROR(backend_.Matmul(attn, w.o_proj.view, nullptr, proj));
  RETURN_IF_ERROR(backend_.AddRmsNorm(residual, proj, w.post_attn_norm.view, eps, normed));
  RETURN_IF_ERROR(backend_.Matmul(normed, w.gate_proj.view, nullptr, gate));
  RETURN_IF_ERROR(backend_.Matmul(normed, w.up_proj.view, nullptr, up));
  RETURN_IF_ERROR(backend_.SiluMul(gate, up, gate));
  RETURN_IF_ERROR(backend_.Matmul(gate, w.down_proj.view, nullptr, proj));
  return Status::Ok();
}

Status Transformer::Forward(const BatchPlan& plan, KvCache& cache, std::vector<float>* logits,
                            const LayerDoneFn& on_layer_done) {
  const ModelConfig& c = weights_.config;
  const int64_t n = plan.num_tokens();
  const int64_t m = plan.num_logits();
  if (n == 0) return InvalidArgumentError("empty batch plan");
  if (plan.block_size != cache.block_size()) {
    return InvalidArgumentError("plan block size " + std::to_string(plan.block_size) +
                                " != cache block size " + std::to_string(cache.block_size()));
  }
  for (int32_t id : plan.token_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return InvalidArgumentError("token id " + std::to_string(id) + " outside the vocabulary [0, " +
                                  std::to_string(c.vocab_size) + ")");
    }
  }
  for (int32_t b : plan.block_tables) {
    if (b < 0 || b >= cache.num_blocks()) {
      return InvalidArgumentError("block id " + std::to_string(b) + " outside the KV cache");
    }
  }
  RETURN_IF_ERROR(EnsureWorkspace(n, std::max<int64_t>(m, 1)));
  RETURN_IF_ERROR(device_plan_.Upload(backend_, plan));

  RETURN_IF_ERROR(backend_.Embedding(weights_.embed_tokens.view, device_plan_.token_ids(), residual_.RowSlice(0, n)));
  for (int layer = 0; layer < c.num_layers; ++layer) {
    RETURN_IF_ERROR(RunLayer(layer, device_plan_, cache, n));
    if (on_layer_done) on_layer_done(layer);
  }
  if (m == 0) {
    logits->clear();
    return backend_.Synchronize();
  }
  // Only the rows that need logits go through the final norm and lm_head.
  TensorView last_in = last_residual_.RowSlice(0, m);
  RETURN_IF_ERROR(backend_.GatherRows(residual_.RowSlice(0, n), device_plan_.logits_indices(), last_in));
  TensorView last_mlp = last_mlp_.RowSlice(0, m);
  RETURN_IF_ERROR(backend_.GatherRows(proj_.RowSlice(0, n), device_plan_.logits_indices(), last_mlp));
  TensorView last_normed = last_normed_.RowSlice(0, m);
  RETURN_IF_ERROR(backend_.AddRmsNorm(last_in, last_mlp, weights_.final_norm.view,
                                      static_cast<float>(c.rms_norm_eps), last_normed));
  TensorView out = logits_.RowSlice(0, m);
  RETURN_IF_ERROR(backend_.Matmul(last_normed, weights_.lm_head.view, nullptr, out));
  logits->resize(static_cast<size_t>(m * c.vocab_size));
  RETURN_IF_ERROR(backend_.CopyToHost(logits->data(), out.data, out.bytes()));
  return backend_.Synchronize();
}

}  // namespace tandem
