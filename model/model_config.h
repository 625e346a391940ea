// A Llama-family model's hyper-parameters, read from a Hugging Face config.json (and
// generation_config.json for BOS/EOS). Supported: LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

enum class RopeScalingType { kNone, kLinear, kLlama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  // llama3 only
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  std::string model_type;    // e.g. "llama", "qwen2", "mistral"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // defaults to hidden_size / num_heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (always true for Qwen2)
  // Sliding-window attention span in tokens; 0 when the model attends to its whole context
  // (Mistral's `sliding_window`, Qwen2's when `use_sliding_window` is true).
  int64_t sliding_window = 0;
  std::string torch_dtype;      // as written, informational
  int64_t bos_token_id = -1;    // -1: none
  std::vector<int64_t> eos_token_ids;

  // Per-pair inverse frequencies [head_dim / 2] with rope_scaling applied, as HF computes them.
  std::vector<float> RopeInvFreq() const;
  // Number of parameters implied by the shapes (embeddings counted once when tied).
  int64_t NumParameters() const;
};

// Parses config.json text. `source` names the file in error messages.
Result<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& source);
// Reads DIR/config.json and, if present, DIR/generation_config.json (its bos/eos win).
Result<ModelConfig> LoadModelConfig(const std::string& model_dir);

}  // namespace tandem
