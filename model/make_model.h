// Writes a complete Hugging Face-format LlamaForCausalLM checkpoint with seeded random weights
// and the built-in tokenizer: config.json, generation_config.json, model.safetensors (BF16),
// tokenizer.json, tokenizer_config.json. Used by `tandem make-model` and by tests and demos
// that need a real model without downloading one.
//
// Determinism: the weights come from our own xoshiro256** stream per tensor (seeded from the
// seed and the tensor's name) and integer -> float arithmetic that is exact in double, so the
// same (preset, seed) gives byte-identical files with any compiler, standard library and CPU.
//
// Scale: every matrix is uniform with std gain/sqrt(fan_in); the lm_head has a larger gain so
// that logits have a std of ~5 and greedy decoding has clear top-1/top-2 gaps instead of a
// near-uniform distribution; norm weights are 1 +- small noise.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tandem {

struct ModelPreset {
  std::string name;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;

  int64_t head_dim() const { return hidden_size / num_heads; }
  // Every parameter (the lm_head is untied, so it counts separately).
  int64_t NumParameters() const;
};

// "tiny" (hidden 128, 2 layers, ~8.6M parameters, for tests) and "small" (the 125M shape of the
// llama.cpp comparison model: hidden 768, 12 layers, 12 heads, 4 kv heads, inter 2048).
const std::vector<ModelPreset>& ModelPresets();
// InvalidArgument listing the known presets when `name` is not one of them.
Result<ModelPreset> FindModelPreset(std::string_view name);

struct MakeModelOptions {
  std::string preset = "tiny";
  std::string out_dir;
  uint64_t seed = 0;
  // Allow a non-empty out_dir: our five files are overwritten and any other *.safetensors or
  // model.safetensors.index.json there is removed, so that no stale shard shadows the new model.
  bool force = false;
  // Stored weight dtype: "bf16" (default), "f16" or "f32". The values are drawn as bf16 and
  // widened, so all three hold the same model (exactly for f32; f16 rounds only the rare values
  // below its normal range, 2^-14).
  std::string dtype = "bf16";
};

// The config.json / generation_config.json texts written for `preset` (exposed for tests).
std::string MakeConfigJson(const ModelPreset& preset, std::string_view torch_dtype = "bfloat16");
std::string MakeGenerationConfigJson();

// Special token ids of the built-in tokenizer (model/assets/tokenizer.json).
inline constexpr int64_t kBuiltinBosTokenId = 0;  // <|begin_of_text|>
inline constexpr int64_t kBuiltinEndOfTextTokenId = 1;  // <|end_of_text|>
inline constexpr int64_t kBuiltinImEndTokenId = 3;  // <|im_end|>, the eos of a chat turn
inline constexpr int64_t kBuiltinPadTokenId = 4;  // <|pad|>

// Creates out_dir (and parents) if needed and writes the model. Errors: InvalidArgument for an
// unknown preset or an out_dir that is a file; AlreadyExists for a non-empty out_dir without
// `force`; the writer's error (naming the file) when a write fails.
Status MakeModel(const MakeModelOptions& options);

}  // namespace tandem
