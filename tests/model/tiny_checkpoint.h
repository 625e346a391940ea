// Test helpers: a self-deleting temp directory, raw file writing for corrupt checkpoints, and a
// complete tiny random Llama-family checkpoint (config.json + safetensors, optionally sharded)
// whose tensor list can be edited before it is written.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/dtype.h"
#include "model/safetensors_writer.h"

namespace tandem::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tandem_loader_XXXXXX").string();
    char* made = ::mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr) << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// 8-byte little-endian length + header text + data, with no validation at all.
inline std::string RawSafetensors(const std::string& header, const std::string& data,
                                  uint64_t declared_len) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((declared_len >> (8 * i)) & 0xff);
  return out + header + data;
}
inline std::string RawSafetensors(const std::string& header, const std::string& data) {
  return RawSafetensors(header, data, header.size());
}

struct TinySpec {
  std::string architecture = "LlamaForCausalLM";
  int64_t vocab = 32;
  int64_t hidden = 16;
  int64_t inter = 24;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  bool tie = false;
  bool attention_bias = false;  // Llama's flag; Qwen2 writes biases regardless
  DType dtype = DType::kBF16;
  int shards = 1;  // > 1 writes model.safetensors.index.json
  uint32_t seed = 42;
  nlohmann::json extra_config = nlohmann::json::object();  // merged into config.json last

  int64_t head_dim() const { return hidden / heads; }
  bool has_bias() const { return attention_bias || architecture == "Qwen2ForCausalLM"; }
};

struct TinyTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;
};

// The tensor list a loader expects for `spec`, in HF's order.
inline std::vector<TinyTensor> TinyTensors(const TinySpec& s) {
  const int64_t q = s.heads * s.head_dim(), kv = s.kv_heads * s.head_dim();
  std::vector<TinyTensor> t;
  t.push_back({"model.embed_tokens.weight", {s.vocab, s.hidden}, s.dtype});
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back({p + "input_layernorm.weight", {s.hidden}, s.dtype});
    t.push_back({p + "self_attn.q_proj.weight", {q, s.hidden}, s.dtype});
    t.push_back({p + "self_attn.k_proj.weight", {kv, s.hidden}, s.dtype});
    t.push_back({p + "self_attn.v_proj.weight", {kv, s.hidden}, s.dtype});
    if (s.has_bias()) {
      t.push_back({p + "self_attn.q_proj.bias", {q}, s.dtype});
      t.push_back({p + "self_attn.k_proj.bias", {kv}, s.dtype});
      t.push_back({p + "self_attn.v_proj.bias", {kv}, s.dtype});
    }
    t.push_back({p + "self_attn.o_proj.weight", {s.hidden, q}, s.dtype});
    t.push_back({p + "post_attention_layernorm.weight", {s.hidden}, s.dtype});
    t.push_back({p + "mlp.gate_proj.weight", {s.inter, s.hidden}, s.dtype});
    t.push_back({p + "mlp.up_proj.weight", {s.inter, s.hidden}, s.dtype});
    t.push_back({p + "mlp.down_proj.weight", {s.hidden, s.inter}, s.dtype});
  }
  t.push_back({"model.norm.weight", {s.hidden}, s.dtype});
  if (!s.tie) t.push_back({"lm_head.weight", {s.vocab, s.hidden}, s.dtype});
  return t;
}

inline nlohmann::json TinyConfigJson(const TinySpec& s) {
  nlohmann::json c = {
      {"architectures", {s.architecture}},
      {"vocab_size", s.vocab},
      {"hidden_size", s.hidden},
      {"intermediate_size", s.inter},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 10000.0},
      {"max_position_embeddings", 128},
      {"tie_word_embeddings", s.tie},
      {"hidden_act", "silu"},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
  };
  if (s.architecture == "LlamaForCausalLM") c["attention_bias"] = s.attention_bias;
  c.merge_patch(s.extra_config);
  return c;
}

// Random values in [-1, 1) stored as `dtype`; deterministic in `seed`.
inline std::string RandomTensorBytes(const TinyTensor& t, std::mt19937& rng) {
  int64_t numel = 1;
  for (int64_t d : t.shape) numel *= d;
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::string bytes(static_cast<size_t>(numel) * DTypeSize(t.dtype), '\0');
  for (int64_t i = 0; i < numel; ++i) {
    const float v = dist(rng);
    if (t.dtype == DType::kF32) {
      std::memcpy(&bytes[static_cast<size_t>(i) * 4], &v, 4);
    } else {
      const uint16_t h = t.dtype == DType::kBF16 ? F32ToBf16(v) : F32ToF16(v);
      std::memcpy(&bytes[static_cast<size_t>(i) * 2], &h, 2);
    }
  }
  return bytes;
}

// Writes config.json and the checkpoint into `dir`. `edit` may change the tensor list first
// (drop a tensor, change a shape or dtype) to build broken checkpoints.
inline void WriteTinyCheckpoint(const std::string& dir, const TinySpec& spec,
                                const std::function<void(std::vector<TinyTensor>&)>& edit = {}) {
  {
    std::ofstream cfg(dir + "/config.json");
    cfg << TinyConfigJson(spec).dump(2);
  }
  std::vector<TinyTensor> tensors = TinyTensors(spec);
  if (edit) edit(tensors);
  std::mt19937 rng(spec.seed);
  std::vector<std::string> data;
  for (const TinyTensor& t : tensors) data.push_back(RandomTensorBytes(t, rng));

  const int shards = std::max(1, spec.shards);
  nlohmann::json weight_map = nlohmann::json::object();
  for (int s = 0; s < shards; ++s) {
    std::vector<TensorToWrite> part;
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", s + 1, shards);
    const std::string file = shards == 1 ? "model.safetensors" : name;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (static_cast<int>(i * shards / tensors.size()) != s) continue;
      part.push_back({tensors[i].name, tensors[i].dtype, tensors[i].shape, data[i].data()});
      weight_map[tensors[i].name] = file;
    }
    Status st = WriteSafetensors(dir + "/" + file, part, {{"format", "pt"}});
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  if (shards > 1) {
    std::ofstream idx(dir + "/model.safetensors.index.json");
    idx << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2);
  }
}

}  // namespace tandem::testing
