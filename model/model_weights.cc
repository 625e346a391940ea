#include "model/model_weights.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <set>

#include "common/logging.h"
#include "common/progress.h"
#include "model/safetensors.h"

namespace tandem {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// "8.03B", "494.03M", "19.62K", "812": readable at every model size in the summary line.
std::string HumanCount(double n) {
  struct Unit {
    double scale;
    const char* suffix;
  };
  for (const Unit& u : {Unit{1e9, "B"}, Unit{1e6, "M"}, Unit{1e3, "K"}}) {
    if (n >= u.scale) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.2f%s", n / u.scale, u.suffix);
      return buf;
    }
  }
  return std::to_string(static_cast<int64_t>(n));
}

// Looks tensors up, checks them against the config and uploads them, remembering what it used
// and which dtypes it saw for the summary line.
class WeightLoader {
 public:
  WeightLoader(const SafetensorsCheckpoint& ckpt, Backend& backend) : ckpt_(ckpt), backend_(backend) {}

  Result<DeviceWeight> Load(const std::string& name, std::vector<int64_t> expected) {
    Result<TensorInfo> found = ckpt_.Find(name);
    if (!found.ok()) {
      if (found.status().code() == StatusCode::kNotFound) {
        return NotFoundError(ckpt_.source() + ": missing tensor '" + name + "' (expected shape " +
                             ShapeString(expected) + ")");
      }
      return found.status();
    }
    const TensorInfo& t = *found;
    if (t.shape != expected) {
      return InvalidArgumentError(name + " in " + t.file + ": expected shape " + ShapeString(expected) + ", got " +
                                  t.ShapeString());
    }
    // Kernels read elements through typed pointers; a misaligned tensor (possible in files
    // written by other tools) would be undefined behaviour there.
    if (reinterpret_cast<uintptr_t>(t.data) % DTypeSize(t.dtype) != 0) {
      return InvalidArgumentError(name + " in " + t.file + ": data is not aligned to its " +
                                  std::to_string(DTypeSize(t.dtype)) + "-byte elements");
    }
    const int64_t cols = expected.back();
    const int64_t rows = expected.size() == 2 ? expected[0] : 1;  // 1-D tensors are [1, n]
    // The mapping is read-only; TensorView is the backend's mutable view type, but weights are
    // never written through it.
    TensorView view{const_cast<void*>(t.data), t.dtype, rows, cols};
    Result<DeviceWeight> uploaded = backend_.UploadWeight(view);
    if (!uploaded.ok()) {
      return uploaded.status().WithContext("uploading " + name + " from " + t.file);
    }
    used_.insert(name);
    dtypes_.insert(t.dtype);
    bytes_ += t.bytes;
    return uploaded;
  }

  void MarkUsed(const std::string& name) { used_.insert(name); }
  const std::set<std::string>& used() const { return used_; }
  size_t bytes() const { return bytes_; }
  std::string DTypeSummary() const {
    std::string s;
    for (DType d : dtypes_) {
      if (!s.empty()) s += "+";
      s += DTypeName(d);
    }
    return s;
  }

 private:
  const SafetensorsCheckpoint& ckpt_;
  Backend& backend_;
  std::set<std::string> used_;
  std::set<DType> dtypes_;
  size_t bytes_ = 0;
};

Status LoadLayer(WeightLoader& w, const ModelConfig& c, int64_t i, LayerWeights& layer) {
  const std::string p = "model.layers." + std::to_string(i) + ".";
  const int64_t h = c.hidden_size;
  const int64_t q_out = c.num_heads * c.head_dim;
  const int64_t kv_out = c.num_kv_heads * c.head_dim;
  const int64_t inter = c.intermediate_size;
  ASSIGN_OR_RETURN(layer.input_norm, w.Load(p + "input_layernorm.weight", {h}));
  ASSIGN_OR_RETURN(layer.q_proj, w.Load(p + "self_attn.q_proj.weight", {q_out, h}));
  ASSIGN_OR_RETURN(layer.k_proj, w.Load(p + "self_attn.k_proj.weight", {kv_out, h}));
  ASSIGN_OR_RETURN(layer.v_proj, w.Load(p + "self_attn.v_proj.weight", {kv_out, h}));
  if (c.attention_bias) {
    ASSIGN_OR_RETURN(layer.q_bias, w.Load(p + "self_attn.q_proj.bias", {q_out}));
    ASSIGN_OR_RETURN(layer.k_bias, w.Load(p + "self_attn.k_proj.bias", {kv_out}));
    ASSIGN_OR_RETURN(layer.v_bias, w.Load(p + "self_attn.v_proj.bias", {kv_out}));
  }
  ASSIGN_OR_RETURN(layer.o_proj, w.Load(p + "self_attn.o_proj.weight", {h, q_out}));
  ASSIGN_OR_RETURN(layer.post_attn_norm, w.Load(p + "post_attention_layernorm.weight", {h}));
  ASSIGN_OR_RETURN(layer.gate_proj, w.Load(p + "mlp.gate_proj.weight", {inter, h}));
  ASSIGN_OR_RETURN(layer.up_proj, w.Load(p + "mlp.up_proj.weight", {inter, h}));
  ASSIGN_OR_RETURN(layer.down_proj, w.Load(p + "mlp.down_proj.weight", {h, inter}));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ModelWeights>> LoadModelWeights(const std::string& model_dir, Backend& backend) {
  const auto start = std::chrono::steady_clock::now();
  auto weights = std::make_unique<ModelWeights>();
  ASSIGN_OR_RETURN(weights->config, LoadModelConfig(model_dir));
  const ModelConfig& c = weights->config;
  ASSIGN_OR_RETURN(weights->checkpoint, SafetensorsCheckpoint::Open(model_dir));
  const SafetensorsCheckpoint& ckpt = *weights->checkpoint;

  WeightLoader w(ckpt, backend);
  ASSIGN_OR_RETURN(weights->embed_tokens, w.Load("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}));
  weights->layers.resize(static_cast<size_t>(c.num_layers));
  TerminalProgress progress("loading " + model_dir, c.num_layers, "layers");
  for (int64_t i = 0; i < c.num_layers; ++i) {
    RETURN_IF_ERROR(LoadLayer(w, c, i, weights->layers[static_cast<size_t>(i)]));
    progress.Update(i + 1);
  }
  progress.Done();
  ASSIGN_OR_RETURN(weights->final_norm, w.Load("model.norm.weight", {c.hidden_size}));
  if (c.tie_word_embeddings) {
    // HF ties the two even when an exporter also saved lm_head.weight; the storage stays owned
    // by embed_tokens.
    weights->lm_head.view = weights->embed_tokens.view;
    w.MarkUsed("lm_head.weight");
  } else {
    ASSIGN_OR_RETURN(weights->lm_head, w.Load("lm_head.weight", {c.vocab_size, c.hidden_size}));
  }

  auto log = GetLogger("model");
  size_t unused = 0;
  for (const std::string& name : ckpt.TensorNames()) {
    if (w.used().count(name)) continue;
    if (++unused <= 3) log->debug("unused tensor in {}: {}", ckpt.source(), name);
  }
  if (unused > 0) log->warn("{}: {} tensor(s) in the checkpoint are not used", model_dir, unused);

  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  log->info("loaded {} from {}: {} params, {}, {:.2f} MiB in {} file(s), {:.1f} ms", c.architecture, model_dir,
            HumanCount(static_cast<double>(c.NumParameters())), w.DTypeSummary(),
            static_cast<double>(w.bytes()) / (1024.0 * 1024.0), ckpt.files().size(), ms);
  return weights;
}

}  // namespace tandem
