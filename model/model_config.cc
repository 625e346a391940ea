#include "model/model_config.h"

#include <cmath>
#include <numbers>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/file_io.h"

namespace tandem {
namespace {

using nlohmann::json;

constexpr std::string_view kSupportedArchitectures =
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM";

struct Architecture {
  std::string_view name;
  std::string_view model_type;
};
constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
};

std::string_view JsonTypeName(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number_float()) return "number";
  return v.type_name();
}

// Typed field readers. Every error names the file and the field ("rope_scaling.factor"), so a
// user can fix the config without reading our code. A JSON null counts as absent: HF writes
// `"head_dim": null` and `"rope_scaling": null` for "use the default".
class FieldReader {
 public:
  FieldReader(const json& obj, const std::string& source, std::string prefix = "")
      : obj_(obj), source_(source), prefix_(std::move(prefix)) {}

  bool Has(const char* key) const {
    auto it = obj_.find(key);
    return it != obj_.end() && !it->is_null();
  }
  const json& Raw(const char* key) const { return obj_.at(key); }
  std::string Name(const char* key) const { return prefix_ + key; }

  Status Error(const char* key, const std::string& what) const {
    return InvalidArgumentError(source_ + ": field '" + Name(key) + "' " + what);
  }

  Result<int64_t> Int(const char* key) const {
    if (!Has(key)) return Error(key, "is missing");
    const json& v = obj_.at(key);
    if (v.is_number_integer()) {
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        return Error(key, "is out of range");
      }
      return v.get<int64_t>();
    }
    // Some exporters write integral values as floats (4096.0); accept those exactly.
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) {
        return static_cast<int64_t>(d);
      }
    }
    return Error(key, "must be an integer, got " + std::string(JsonTypeName(v)));
  }
  Result<int64_t> Int(const char* key, int64_t fallback) const {
    if (!Has(key)) return fallback;
    return Int(key);
  }

  Result<double> Double(const char* key) const {
    if (!Has(key)) return Error(key, "is missing");
    const json& v = obj_.at(key);
    if (!v.is_number()) {
      return Error(key, "must be a number, got " + std::string(JsonTypeName(v)));
    }
    const double d = v.get<double>();
    if (!std::isfinite(d)) return Error(key, "must be finite");
    return d;
  }
  Result<double> Double(const char* key, double fallback) const {
    if (!Has(key)) return fallback;
    return Double(key);
  }

  Result<bool> Bool(const char* key, bool fallback) const {
    if (!Has(key)) return fallback;
    const json& v = obj_.at(key);
    if (!v.is_boolean()) {
      return Error(key, "must be true or false, got " + std::string(JsonTypeName(v)));
    }
    return v.get<bool>();
  }

  Result<std::string> String(const char* key, const std::string& fallback) const {
    if (!Has(key)) return fallback;
    const json& v = obj_.at(key);
    if (!v.is_string()) return Error(key, "must be a string, got " + std::string(JsonTypeName(v)));
    return v.get<std::string>();
  }

  // An integer or a list of integers (eos_token_id); empty when absent.
  Result<std::vector<int64_t>> IntOrIntList(const char* key) const {
    std::vector<int64_t> out;
    if (!Has(key)) return out;
    const json& v = obj_.at(key);
    if (v.is_number_integer()) {
      ASSIGN_OR_RETURN(int64_t one, Int(key));
      out.push_back(one);
      return out;
    }
    if (!v.is_array()) {
      return Error(key,
                   "must be an integer or a list of integers, got " + std::string(JsonTypeName(v)));
    }
    for (const json& e : v) {
      if (!e.is_number_integer() || (e.is_number_unsigned() && e.get<uint64_t>() > INT64_MAX)) {
        return Error(key, "must be an integer or a list of integers");
      }
      out.push_back(e.get<int64_t>());
    }
    return out;
  }

 private:
  const json& obj_;
  const std::string& source_;
  std::string prefix_;
};

Result<json> ParseJsonObject(const std::string& text, const std::string& source) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    return InvalidArgumentError(source + ": not valid JSON: " + e.what());
  }
  if (!doc.is_object()) {
    return InvalidArgumentError(source + ": expected a JSON object at the top level, got " +
                                std::string(doc.type_name()));
  }
  return doc;
}

Status ResolveArchitecture(const FieldReader& f, const std::string& source, ModelConfig& c) {
  ASSIGN_OR_RETURN(c.model_type, f.String("model_type", ""));
  std::string arch;
  if (f.Has("architectures")) {
    const json& list = f.Raw("architectures");
    if (!list.is_array() || (!list.empty() && !list[0].is_string())) {
      return f.Error("architectures", "must be a list of strings");
    }
    if (!list.empty()) arch = list[0].get<std::string>();
  }
  if (arch.empty()) {
    if (c.model_type.empty()) {
      return InvalidArgumentError(source +
                                  ": neither 'architectures' nor 'model_type' says which model "
                                  "this is (supported: " +
                                  std::string(kSupportedArchitectures) + ")");
    }
    for (const Architecture& a : kArchitectures) {
      if (a.model_type == c.model_type) arch = std::string(a.name);
    }
    if (arch.empty()) {
      return UnimplementedError(
          source + ": model_type '" + c.model_type +
          "' is not supported (supported: " + std::string(kSupportedArchitectures) + ")");
    }
  }
  for (const Architecture& a : kArchitectures) {
    if (a.name == arch) {
      c.architecture = arch;
      if (c.model_type.empty()) c.model_type = std::string(a.model_type);
      return Status::Ok();
    }
  }
  return UnimplementedError(source + ": architecture '" + arch + "' is not supported (supported: " +
                            std::string(kSupportedArchitectures) + ")");
}

// Reads one RoPE parameter dict: the old `rope_scaling` or the newer `rope_parameters` (which
// also carries rope_theta). `max_positions` is the fallback for llama3's original context, as
// HF's standardize_rope_params does.
Status ParseRopeDict(const json& dict, const std::string& source, const std::string& name,
                     int64_t max_positions, RopeScaling& out) {
  if (!dict.is_object()) {
    return InvalidArgumentError(source + ": field '" + name + "' must be an object or null, got " +
                                std::string(JsonTypeName(dict)));
  }
  FieldReader f(dict, source, name + ".");
  std::string type;
  if (f.Has("rope_type")) {
    ASSIGN_OR_RETURN(type, f.String("rope_type", ""));
  } else {
    ASSIGN_OR_RETURN(type, f.String("type", "default"));
  }
  ASSIGN_OR_RETURN(double partial, f.Double("partial_rotary_factor", 1.0));
  if (partial != 1.0) {
    return UnimplementedError(source + ": field '" + name +
                              ".partial_rotary_factor' != 1 (partial rotary embeddings) is not "
                              "supported");
  }
  out = RopeScaling{};
  if (type == "default") return Status::Ok();
  if (type != "linear" && type != "llama3") {
    return UnimplementedError(source + ": rope type '" + type + "' in '" + name +
                              "' is not supported (supported: default, linear, llama3)");
  }
  ASSIGN_OR_RETURN(out.factor, f.Double("factor"));
  if (!(out.factor > 0)) return f.Error("factor", "must be positive");
  if (type == "linear") {
    out.type = RopeScalingType::kLinear;
    return Status::Ok();
  }
  out.type = RopeScalingType::kLlama3;
  ASSIGN_OR_RETURN(out.low_freq_factor, f.Double("low_freq_factor"));
  ASSIGN_OR_RETURN(out.high_freq_factor, f.Double("high_freq_factor"));
  ASSIGN_OR_RETURN(out.original_max_position_embeddings,
                   f.Int("original_max_position_embeddings", max_positions));
  if (!(out.low_freq_factor > 0)) return f.Error("low_freq_factor", "must be positive");
  if (!(out.high_freq_factor > out.low_freq_factor)) {
    return f.Error("high_freq_factor", "must be greater than low_freq_factor");
  }
  if (out.original_max_position_embeddings <= 0) {
    return f.Error("original_max_position_embeddings", "must be positive");
  }
  return Status::Ok();
}

Status ParseRope(const FieldReader& f, const std::string& source, ModelConfig& c) {
  // HF 5 builds its rope dict from `rope_scaling` when that is set, else `rope_parameters`
  // (newer configs), and fills a missing rope_theta from the top level (setdefault). So theta
  // is: the chosen dict's, else the top level's, else the other dict's, else 10000.
  const bool has_scaling = f.Has("rope_scaling");
  const bool has_params = f.Has("rope_parameters");
  const char* chosen = has_scaling ? "rope_scaling" : has_params ? "rope_parameters" : nullptr;
  c.rope_theta = 10000.0;
  if (has_scaling && has_params && f.Raw("rope_parameters").is_object()) {
    FieldReader params(f.Raw("rope_parameters"), source, "rope_parameters.");
    ASSIGN_OR_RETURN(c.rope_theta, params.Double("rope_theta", c.rope_theta));
  }
  ASSIGN_OR_RETURN(c.rope_theta, f.Double("rope_theta", c.rope_theta));
  if (chosen != nullptr) {
    RETURN_IF_ERROR(
        ParseRopeDict(f.Raw(chosen), source, chosen, c.max_position_embeddings, c.rope_scaling));
    FieldReader d(f.Raw(chosen), source, std::string(chosen) + ".");
    ASSIGN_OR_RETURN(c.rope_theta, d.Double("rope_theta", c.rope_theta));
  }
  if (!(c.rope_theta > 0)) return f.Error("rope_theta", "must be positive");
  return Status::Ok();
}

Status Validate(const ModelConfig& c, const FieldReader& f, const std::string& source) {
  struct Positive {
    const char* key;
    int64_t value;
  };
  const Positive sizes[] = {
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"max_position_embeddings", c.max_position_embeddings},
  };
  for (const Positive& p : sizes) {
    if (p.value <= 0) {
      return f.Error(p.key, "must be positive, got " + std::to_string(p.value));
    }
    // Products of these feed tensor byte counts; keep them far from int64 overflow.
    if (p.value > (int64_t{1} << 31)) {
      return f.Error(p.key, "is implausibly large: " + std::to_string(p.value));
    }
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return InvalidArgumentError(source + ": num_attention_heads (" + std::to_string(c.num_heads) +
                                ") must be divisible by num_key_value_heads (" +
                                std::to_string(c.num_kv_heads) + ")");
  }
  if (c.head_dim % 2 != 0) {
    return f.Error("head_dim",
                   "must be even for rotary embeddings, got " + std::to_string(c.head_dim));
  }
  if (!(c.rms_norm_eps > 0)) return f.Error("rms_norm_eps", "must be positive");
  if (c.sliding_window < 0) return f.Error("sliding_window", "must not be negative");
  for (int64_t id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return f.Error("eos_token_id", std::to_string(id) + " is outside the vocabulary [0, " +
                                         std::to_string(c.vocab_size) + ")");
    }
  }
  if (c.bos_token_id >= c.vocab_size) {
    return f.Error("bos_token_id", std::to_string(c.bos_token_id) +
                                       " is outside the vocabulary [0, " +
                                       std::to_string(c.vocab_size) + ")");
  }
  return Status::Ok();
}

Status ReadTokenIds(const FieldReader& f, ModelConfig& c) {
  if (f.Has("bos_token_id")) {
    ASSIGN_OR_RETURN(c.bos_token_id, f.Int("bos_token_id"));
    if (c.bos_token_id < 0) return f.Error("bos_token_id", "must not be negative");
  }
  if (f.Has("eos_token_id")) {
    ASSIGN_OR_RETURN(c.eos_token_ids, f.IntOrIntList("eos_token_id"));
  }
  return Status::Ok();
}

}  // namespace

Result<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& source) {
  ASSIGN_OR_RETURN(json doc, ParseJsonObject(json_text, source));
  FieldReader f(doc, source);
  ModelConfig c;
  RETURN_IF_ERROR(ResolveArchitecture(f, source, c));

  ASSIGN_OR_RETURN(c.vocab_size, f.Int("vocab_size"));
  ASSIGN_OR_RETURN(c.hidden_size, f.Int("hidden_size"));
  ASSIGN_OR_RETURN(c.intermediate_size, f.Int("intermediate_size"));
  ASSIGN_OR_RETURN(c.num_layers, f.Int("num_hidden_layers"));
  ASSIGN_OR_RETURN(c.num_heads, f.Int("num_attention_heads"));
  ASSIGN_OR_RETURN(c.num_kv_heads, f.Int("num_key_value_heads", c.num_heads));
  if (c.num_heads <= 0) return f.Error("num_attention_heads", "must be positive");
  // HF: head_dim = config.head_dim or hidden_size // num_attention_heads.
  ASSIGN_OR_RETURN(c.head_dim, f.Int("head_dim", c.hidden_size / c.num_heads));
  ASSIGN_OR_RETURN(c.rms_norm_eps, f.Double("rms_norm_eps", 1e-6));
  ASSIGN_OR_RETURN(c.max_position_embeddings, f.Int("max_position_embeddings", 2048));
  RETURN_IF_ERROR(ParseRope(f, source, c));
  ASSIGN_OR_RETURN(c.tie_word_embeddings, f.Bool("tie_word_embeddings", false));
  ASSIGN_OR_RETURN(c.torch_dtype, f.String("torch_dtype", ""));
  if (c.torch_dtype.empty()) {
    ASSIGN_OR_RETURN(c.torch_dtype, f.String("dtype", ""));
  }

  ASSIGN_OR_RETURN(std::string act, f.String("hidden_act", "silu"));
  if (act != "silu") {
    return UnimplementedError(source + ": hidden_act '" + act + "' is not supported (only silu)");
  }
  if (c.model_type == "qwen2") {
    c.attention_bias = true;  // Qwen2 always has q/k/v biases; the config has no flag for it.
    ASSIGN_OR_RETURN(bool use_window, f.Bool("use_sliding_window", false));
    if (use_window) {
      ASSIGN_OR_RETURN(c.sliding_window, f.Int("sliding_window", 0));
    }
  } else {
    ASSIGN_OR_RETURN(c.attention_bias, f.Bool("attention_bias", false));
    ASSIGN_OR_RETURN(bool mlp_bias, f.Bool("mlp_bias", false));
    if (mlp_bias) {
      return UnimplementedError(source + ": mlp_bias=true (biases in the MLP) is not supported");
    }
    if (c.model_type == "mistral") {
      ASSIGN_OR_RETURN(c.sliding_window, f.Int("sliding_window", 0));
    }
  }
  RETURN_IF_ERROR(ReadTokenIds(f, c));
  RETURN_IF_ERROR(Validate(c, f, source));
  return c;
}

Result<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string config_path = JoinPath(model_dir, "config.json");
  ASSIGN_OR_RETURN(std::string text, ReadTextFile(config_path));
  ASSIGN_OR_RETURN(ModelConfig config, ParseModelConfig(text, config_path));

  // generation_config.json is what `generate` uses in HF, so its BOS/EOS win.
  const std::string gen_path = JoinPath(model_dir, "generation_config.json");
  if (!IsRegularFile(gen_path)) return config;
  ASSIGN_OR_RETURN(std::string gen_text, ReadTextFile(gen_path));
  ASSIGN_OR_RETURN(json gen, ParseJsonObject(gen_text, gen_path));
  FieldReader g(gen, gen_path);
  RETURN_IF_ERROR(ReadTokenIds(g, config));
  RETURN_IF_ERROR(Validate(config, g, gen_path));
  return config;
}

std::vector<float> ModelConfig::RopeInvFreq() const {
  const int64_t half = head_dim / 2;
  std::vector<float> out(static_cast<size_t>(half));
  const RopeScaling& s = rope_scaling;
  const double orig = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = orig / s.low_freq_factor;
  const double high_freq_wavelen = orig / s.high_freq_factor;
  for (int64_t j = 0; j < half; ++j) {
    double inv = 1.0 / std::pow(rope_theta, static_cast<double>(2 * j) / head_dim);
    if (s.type == RopeScalingType::kLinear) {
      inv /= s.factor;
    } else if (s.type == RopeScalingType::kLlama3) {
      // HF _compute_llama3_parameters: low frequencies are divided by `factor`, high ones kept,
      // and the band between is interpolated.
      const double wavelen = 2.0 * std::numbers::pi / inv;
      if (wavelen > low_freq_wavelen) {
        inv /= s.factor;
      } else if (!(wavelen < high_freq_wavelen)) {
        const double smooth =
            (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        inv = (1.0 - smooth) * inv / s.factor + smooth * inv;
      }
    }
    out[static_cast<size_t>(j)] = static_cast<float>(inv);
  }
  return out;
}

int64_t ModelConfig::NumParameters() const {
  const int64_t q_out = num_heads * head_dim;
  const int64_t kv_out = num_kv_heads * head_dim;
  int64_t per_layer = 2 * hidden_size                         // input + post-attention norms
                      + q_out * hidden_size                   // q_proj
                      + 2 * kv_out * hidden_size              // k_proj, v_proj
                      + hidden_size * q_out                   // o_proj
                      + 3 * intermediate_size * hidden_size;  // gate, up, down
  if (attention_bias) per_layer += q_out + 2 * kv_out;
  int64_t total = vocab_size * hidden_size + num_layers * per_layer + hidden_size;
  if (!tie_word_embeddings) total += vocab_size * hidden_size;
  return total;
}

}  // namespace tandem
