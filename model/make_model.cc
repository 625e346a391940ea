#include "model/make_model.h"

#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <system_error>

#include <nlohmann/json.hpp>

#include "common/file_io.h"
#include "common/logging.h"
#include "kernels/dtype.h"
#include "model/builtin_assets.h"
#include "model/safetensors_writer.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

// --- Deterministic random numbers ------------------------------------------------------------
// splitmix64 seeds xoshiro256** (Vigna's recommendation); both are defined bit for bit, unlike
// std:: distributions, whose outputs differ between standard libraries.
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) {
    for (uint64_t& w : s_) w = SplitMix64(seed);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform integer in [-2^23, 2^23): the top 24 bits, so that k * step is exact in double.
  int32_t NextInt24() { return static_cast<int32_t>(Next() >> 40) - (1 << 23); }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// FNV-1a, so that each tensor's stream depends on its name, not on the order of generation.
uint64_t HashName(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Gains relative to 1/sqrt(fan_in). Chosen with transformers on both presets (random prompts,
// bf16 weights, fp32 compute): the residual stream grows from RMS 1 to ~3 over 12 layers, the
// logits have std ~5 (lm_head gain 5 on a unit-RMS normed hidden state), the median top-1
// probability is ~0.3 and the median top-1/top-2 gap ~0.7 nats, and the argmax depends on the
// context, not only on the last token.
constexpr double kMatrixGain = 1.0;
constexpr double kLmHeadGain = 5.0;
constexpr double kEmbeddingStd = 1.0;  // rows of RMS ~1, the scale of a normed hidden state
constexpr double kNormNoise = 0.1;     // norm weights uniform in [0.9, 1.1]

// Fills `out` with uniform values of mean `mean` and standard deviation `std` (half-width
// sqrt(3)*std), rounded to bf16. The arithmetic is platform-independent: `step` is a float, so
// k * step (24-bit times 24-bit mantissas) is exact in double and mean + k * step has exactly one
// rounding whether or not the compiler contracts it into an FMA.
void FillUniformBf16(uint64_t seed, std::string_view name, double mean, double std,
                     std::vector<uint16_t>& out) {
  Xoshiro256 rng(seed ^ HashName(name));
  const float step = static_cast<float>(std::sqrt(3.0) * std / static_cast<double>(1 << 23));
  for (uint16_t& v : out) {
    const double x = mean + static_cast<double>(rng.NextInt24()) * static_cast<double>(step);
    v = F32ToBf16(static_cast<float>(x));
  }
}

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  double mean;
  double std;
};

std::vector<TensorSpec> TensorSpecs(const ModelPreset& p) {
  const int64_t h = p.hidden_size, hd = p.head_dim(), q = p.num_heads * hd;
  const int64_t kv = p.num_kv_heads * hd, inter = p.intermediate_size;
  auto matrix = [](std::string name, int64_t rows, int64_t cols, double gain) {
    return TensorSpec{std::move(name), {rows, cols}, 0.0,
                      gain / std::sqrt(static_cast<double>(cols))};
  };
  auto norm = [h](std::string name) {
    return TensorSpec{std::move(name), {h}, 1.0, kNormNoise / std::sqrt(3.0)};
  };

  std::vector<TensorSpec> specs;
  specs.push_back({"model.embed_tokens.weight", {p.vocab_size, h}, 0.0, kEmbeddingStd});
  for (int64_t i = 0; i < p.num_layers; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    specs.push_back(norm(l + "input_layernorm.weight"));
    specs.push_back(matrix(l + "self_attn.q_proj.weight", q, h, kMatrixGain));
    specs.push_back(matrix(l + "self_attn.k_proj.weight", kv, h, kMatrixGain));
    specs.push_back(matrix(l + "self_attn.v_proj.weight", kv, h, kMatrixGain));
    specs.push_back(matrix(l + "self_attn.o_proj.weight", h, q, kMatrixGain));
    specs.push_back(norm(l + "post_attention_layernorm.weight"));
    specs.push_back(matrix(l + "mlp.gate_proj.weight", inter, h, kMatrixGain));
    specs.push_back(matrix(l + "mlp.up_proj.weight", inter, h, kMatrixGain));
    specs.push_back(matrix(l + "mlp.down_proj.weight", h, inter, kMatrixGain));
  }
  specs.push_back(norm("model.norm.weight"));
  specs.push_back(matrix("lm_head.weight", p.vocab_size, h, kLmHeadGain));
  return specs;
}

// Makes `dir` ready to receive a model: created when missing, refused when non-empty without
// `force`, cleared of other safetensors files with it.
Status PrepareOutDir(const fs::path& dir, bool force) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) {
      return InvalidArgumentError("--out " + dir.string() + " exists and is not a directory");
    }
    const bool empty = fs::is_empty(dir, ec);
    if (ec) return InvalidArgumentError("--out " + dir.string() + ": " + ec.message());
    if (!empty && !force) {
      return AlreadyExistsError("--out " + dir.string() +
                                " is a non-empty directory; pass --force to overwrite the model "
                                "in it, or choose another directory");
    }
    if (!empty) {
      // Collected first: removing entries while iterating leaves the iteration unspecified.
      std::vector<fs::path> stale;
      for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        const bool shard = name.size() > 12 && name.ends_with(".safetensors");
        if (e.is_regular_file() && (shard || name == "model.safetensors.index.json")) {
          stale.push_back(e.path());
        }
      }
      if (ec) return InvalidArgumentError("--out " + dir.string() + ": " + ec.message());
      for (const fs::path& path : stale) {
        if (!fs::remove(path, ec) && ec) {
          return InvalidArgumentError(path.string() + ": cannot remove: " + ec.message());
        }
      }
    }
    return Status::Ok();
  }
  fs::create_directories(dir, ec);
  if (ec) return InvalidArgumentError("--out " + dir.string() + ": cannot create: " + ec.message());
  return Status::Ok();
}

}  // namespace

int64_t ModelPreset::NumParameters() const {
  const int64_t hd = head_dim();
  const int64_t attn = hidden_size * (num_heads * hd) * 2 + hidden_size * (num_kv_heads * hd) * 2;
  const int64_t mlp = 3 * hidden_size * intermediate_size;
  const int64_t per_layer = attn + mlp + 2 * hidden_size;
  return 2 * vocab_size * hidden_size + num_layers * per_layer + hidden_size;
}

const std::vector<ModelPreset>& ModelPresets() {
  // name, hidden, layers, heads, kv heads, intermediate, vocab, max positions.
  static const std::vector<ModelPreset> presets = {
      {"tiny", 128, 2, 4, 2, 384, 32000, 2048},
      {"small", 768, 12, 12, 4, 2048, 32000, 2048},
  };
  return presets;
}

Result<ModelPreset> FindModelPreset(std::string_view name) {
  std::string known;
  for (const ModelPreset& p : ModelPresets()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  return InvalidArgumentError("unknown preset '" + std::string(name) + "' (known presets: " +
                              known + ")");
}

std::string MakeConfigJson(const ModelPreset& p, std::string_view torch_dtype) {
  nlohmann::ordered_json c;
  c["architectures"] = {"LlamaForCausalLM"};
  c["attention_bias"] = false;
  c["attention_dropout"] = 0.0;
  c["bos_token_id"] = kBuiltinBosTokenId;
  c["eos_token_id"] = kBuiltinImEndTokenId;
  c["head_dim"] = p.head_dim();
  c["hidden_act"] = "silu";
  c["hidden_size"] = p.hidden_size;
  c["initializer_range"] = 0.02;
  c["intermediate_size"] = p.intermediate_size;
  c["max_position_embeddings"] = p.max_position_embeddings;
  c["mlp_bias"] = false;
  c["model_type"] = "llama";
  c["num_attention_heads"] = p.num_heads;
  c["num_hidden_layers"] = p.num_layers;
  c["num_key_value_heads"] = p.num_kv_heads;
  c["pad_token_id"] = kBuiltinPadTokenId;
  c["pretraining_tp"] = 1;
  c["rms_norm_eps"] = p.rms_norm_eps;
  c["rope_scaling"] = nullptr;
  c["rope_theta"] = p.rope_theta;
  c["tie_word_embeddings"] = false;
  c["torch_dtype"] = std::string(torch_dtype);
  c["use_cache"] = true;
  c["vocab_size"] = p.vocab_size;
  return c.dump(2) + "\n";
}

std::string MakeGenerationConfigJson() {
  nlohmann::ordered_json g;
  g["bos_token_id"] = kBuiltinBosTokenId;
  // A chat turn ends with <|im_end|>; plain-text continuations may end with <|end_of_text|>.
  g["eos_token_id"] = {kBuiltinImEndTokenId, kBuiltinEndOfTextTokenId};
  g["pad_token_id"] = kBuiltinPadTokenId;
  g["do_sample"] = false;
  return g.dump(2) + "\n";
}

Status MakeModel(const MakeModelOptions& options) {
  ASSIGN_OR_RETURN(ModelPreset preset, FindModelPreset(options.preset));
  if (options.out_dir.empty()) return InvalidArgumentError("--out is required");
  DType dtype;
  std::string torch_dtype;
  if (options.dtype == "bf16") {
    dtype = DType::kBF16, torch_dtype = "bfloat16";
  } else if (options.dtype == "f16") {
    dtype = DType::kF16, torch_dtype = "float16";
  } else if (options.dtype == "f32") {
    dtype = DType::kF32, torch_dtype = "float32";
  } else {
    return InvalidArgumentError("unknown --dtype '" + options.dtype + "' (expected bf16, f16 or f32)");
  }
  const fs::path dir(options.out_dir);
  RETURN_IF_ERROR(PrepareOutDir(dir, options.force));

  auto log = GetLogger("model");
  log->info("make-model: preset {} ({} parameters), seed {}, writing {}", preset.name,
            preset.NumParameters(), options.seed, dir.string());

  // All tensors live once, as bf16, until the single write (~250 MB for `small`).
  const std::vector<TensorSpec> specs = TensorSpecs(preset);
  std::vector<std::vector<uint16_t>> data(specs.size());
  std::vector<std::vector<uint8_t>> widened(dtype == DType::kBF16 ? 0 : specs.size());
  std::vector<TensorToWrite> tensors;
  tensors.reserve(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    int64_t numel = 1;
    for (int64_t d : specs[i].shape) numel *= d;
    data[i].resize(static_cast<size_t>(numel));
    FillUniformBf16(options.seed, specs[i].name, specs[i].mean, specs[i].std, data[i]);
    if (dtype == DType::kBF16) {
      tensors.push_back({specs[i].name, DType::kBF16, specs[i].shape, data[i].data()});
      continue;
    }
    widened[i].resize(data[i].size() * DTypeSize(dtype));
    for (size_t j = 0; j < data[i].size(); ++j) {
      const float f = Bf16ToF32(data[i][j]);
      if (dtype == DType::kF32) {
        std::memcpy(widened[i].data() + 4 * j, &f, 4);
      } else {
        const uint16_t h = F32ToF16(f);
        std::memcpy(widened[i].data() + 2 * j, &h, 2);
      }
    }
    std::vector<uint16_t>().swap(data[i]);  // keep one copy per tensor
    tensors.push_back({specs[i].name, dtype, specs[i].shape, widened[i].data()});
  }
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},  // transformers refuses files without it
      {"tandem.preset", preset.name},
      {"tandem.seed", std::to_string(options.seed)},
  };
  RETURN_IF_ERROR(WriteSafetensors((dir / "model.safetensors").string(), tensors, metadata));
  RETURN_IF_ERROR(WriteTextFile((dir / "config.json").string(), MakeConfigJson(preset, torch_dtype)));
  RETURN_IF_ERROR(WriteTextFile((dir / "generation_config.json").string(), MakeGenerationConfigJson()));
  RETURN_IF_ERROR(WriteTextFile((dir / "tokenizer.json").string(), BuiltinTokenizerJson()));
  RETURN_IF_ERROR(WriteTextFile((dir / "tokenizer_config.json").string(), BuiltinTokenizerConfigJson()));
  return Status::Ok();
}

}  // namespace tandem
