#include "model/model_config.h"

#include <cmath>
#include <fstream>
#include <numbers>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/model/tiny_checkpoint.h"

namespace tandem {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using testing::TempDir;

const std::string kFixtures = std::string(TANDEM_TEST_DATA_DIR) + "/models";

json LlamaJson() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "max_position_embeddings": 131072,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": false, "attention_bias": false, "hidden_act": "silu",
    "torch_dtype": "bfloat16", "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009]})");
}

Result<ModelConfig> Parse(const json& j) { return ParseModelConfig(j.dump(), "/m/config.json"); }

// Parses `j` and expects an error of `code` whose message names config.json and `needle`.
void ExpectError(const json& j, StatusCode code, const std::string& needle) {
  Result<ModelConfig> r = Parse(j);
  ASSERT_FALSE(r.ok()) << "expected an error mentioning " << needle;
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr("/m/config.json")) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr(needle)) << r.status().ToString();
}

// Meta's reference llama3 `apply_scaling` (llama-models repo), written independently of HF's
// vectorised form: per frequency, three cases in the other order.
std::vector<double> MetaLlama3InvFreq(double theta, int head_dim, double factor, double low,
                                      double high, double old_context) {
  std::vector<double> out;
  for (int i = 0; i < head_dim; i += 2) {
    const double freq = 1.0 / std::pow(theta, static_cast<double>(i) / head_dim);
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < old_context / high) {
      out.push_back(freq);
    } else if (wavelen > old_context / low) {
      out.push_back(freq / factor);
    } else {
      const double smooth = (old_context / wavelen - low) / (high - low);
      out.push_back((1 - smooth) * freq / factor + smooth * freq);
    }
  }
  return out;
}

TEST(ModelConfigTest, Llama31) {
  Result<ModelConfig> r = Parse(LlamaJson());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModelConfig& c = *r;
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.sliding_window, 0);
  // Llama 3.1 8B has 8,030,261,248 parameters.
  EXPECT_EQ(c.NumParameters(), 8030261248);
}

TEST(ModelConfigTest, DefaultsWhenOptionalFieldsAbsentOrNull) {
  json j = LlamaJson();
  for (const char* k : {"num_key_value_heads", "rope_theta", "rope_scaling", "tie_word_embeddings",
                        "attention_bias", "hidden_act", "torch_dtype", "bos_token_id",
                        "eos_token_id", "rms_norm_eps", "max_position_embeddings"}) {
    j.erase(k);
  }
  j["head_dim"] = nullptr;  // HF writes null for "derive it"
  Result<ModelConfig> r = Parse(j);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->num_kv_heads, 32);  // defaults to num_attention_heads
  EXPECT_EQ(r->head_dim, 128);
  EXPECT_DOUBLE_EQ(r->rope_theta, 10000.0);
  EXPECT_EQ(r->rope_scaling.type, RopeScalingType::kNone);
  EXPECT_FALSE(r->tie_word_embeddings);
  EXPECT_EQ(r->bos_token_id, -1);
  EXPECT_TRUE(r->eos_token_ids.empty());
  EXPECT_DOUBLE_EQ(r->rms_norm_eps, 1e-6);
  EXPECT_EQ(r->max_position_embeddings, 2048);
}

TEST(ModelConfigTest, ExplicitHeadDimAndIntegralFloats) {
  json j = LlamaJson();
  j["head_dim"] = 64;  // e.g. Mistral-Nemo style: heads * head_dim != hidden
  j["max_position_embeddings"] = 4096.0;
  Result<ModelConfig> r = Parse(j);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->head_dim, 64);
  EXPECT_EQ(r->max_position_embeddings, 4096);
  EXPECT_EQ(r->RopeInvFreq().size(), 32u);
}

TEST(ModelConfigTest, MistralFromModelTypeWithSlidingWindow) {
  json j = LlamaJson();
  j.erase("architectures");
  j["model_type"] = "mistral";
  j["sliding_window"] = 4096;
  j.erase("rope_scaling");
  j.erase("attention_bias");
  Result<ModelConfig> r = Parse(j);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->architecture, "MistralForCausalLM");
  EXPECT_EQ(r->sliding_window, 4096);
  EXPECT_FALSE(r->attention_bias);

  j["sliding_window"] = nullptr;
  r = Parse(j);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->sliding_window, 0);
}

TEST(ModelConfigTest, Qwen2HasBiasesAndTiedEmbeddings) {
  json j = json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true,
    "use_sliding_window": false, "sliding_window": 32768, "bos_token_id": 151643,
    "eos_token_id": 151645, "rope_scaling": null, "torch_dtype": "bfloat16"})");
  Result<ModelConfig> r = Parse(j);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(r->attention_bias);
  EXPECT_TRUE(r->tie_word_embeddings);
  EXPECT_EQ(r->head_dim, 64);
  EXPECT_EQ(r->sliding_window, 0);  // use_sliding_window is false
  EXPECT_EQ(r->eos_token_ids, std::vector<int64_t>{151645});
  // Qwen2.5-0.5B: 494,032,768 parameters (embeddings counted once).
  EXPECT_EQ(r->NumParameters(), 494032768);

  j["use_sliding_window"] = true;
  r = Parse(j);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->sliding_window, 32768);
}

TEST(ModelConfigTest, RopeParametersFormOfNewerTransformers) {
  json j = LlamaJson();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_theta", 250000.0}, {"rope_type", "default"}};
  Result<ModelConfig> r = Parse(j);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_DOUBLE_EQ(r->rope_theta, 250000.0);
  EXPECT_EQ(r->rope_scaling.type, RopeScalingType::kNone);

  j["rope_parameters"] = {{"rope_theta", 500000.0},
                          {"rope_type", "llama3"},
                          {"factor", 32.0},
                          {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}};
  r = Parse(j);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_DOUBLE_EQ(r->rope_theta, 500000.0);
  EXPECT_EQ(r->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(r->rope_scaling.factor, 32.0);
  // Missing original_max_position_embeddings falls back to max_position_embeddings, as in HF.
  EXPECT_EQ(r->rope_scaling.original_max_position_embeddings, 131072);
}

TEST(ModelConfigTest, RopeScalingWinsOverRopeParametersButThetaComesFromEither) {
  json j = LlamaJson();
  j.erase("rope_theta");
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  j["rope_parameters"] = {{"rope_theta", 123456.0}, {"rope_type", "default"}};
  Result<ModelConfig> r = Parse(j);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(r->rope_theta, 123456.0);
}

TEST(ModelConfigTest, DefaultRopeInvFreq) {
  json j = LlamaJson();
  j.erase("rope_scaling");
  j["rope_theta"] = 10000.0;
  Result<ModelConfig> r = Parse(j);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<float> inv = r->RopeInvFreq();
  ASSERT_EQ(inv.size(), 64u);
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_FLOAT_EQ(inv[1], static_cast<float>(std::pow(10000.0, -2.0 / 128)));
  EXPECT_FLOAT_EQ(inv[63], static_cast<float>(std::pow(10000.0, -126.0 / 128)));
}

TEST(ModelConfigTest, LinearRopeScalingDividesEveryFrequency) {
  json j = LlamaJson();
  j["rope_theta"] = 10000.0;
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  Result<ModelConfig> r = Parse(j);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<float> inv = r->RopeInvFreq();
  ASSERT_EQ(inv.size(), 64u);
  for (int i = 0; i < 64; ++i) {
    EXPECT_FLOAT_EQ(inv[i], static_cast<float>(std::pow(10000.0, -2.0 * i / 128) / 4.0)) << i;
  }
}

TEST(ModelConfigTest, Llama3InvFreqMatchesMetaReferenceInAllThreeBands) {
  Result<ModelConfig> r = Parse(LlamaJson());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<float> inv = r->RopeInvFreq();
  std::vector<double> want = MetaLlama3InvFreq(500000.0, 128, 8.0, 1.0, 4.0, 8192.0);
  ASSERT_EQ(inv.size(), want.size());
  int kept = 0, divided = 0, smoothed = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_FLOAT_EQ(inv[i], static_cast<float>(want[i])) << i;
    const double base = std::pow(500000.0, -2.0 * static_cast<double>(i) / 128);
    if (want[i] == base) {
      ++kept;
    } else if (want[i] == base / 8.0) {
      ++divided;
    } else {
      ++smoothed;
    }
  }
  // The test means something only if every band of the piecewise rule was exercised.
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(smoothed, 0);
}

// HF's own inv_freq (float32, tools/fixtures/make_loader_fixtures.py) for several rope configs.
TEST(ModelConfigTest, InvFreqMatchesTransformers) {
  std::ifstream in(kFixtures + "/rope_inv_freq.json");
  ASSERT_TRUE(in.good());
  const json cases = json::parse(in);
  ASSERT_GE(cases.size(), 4u);
  for (const json& c : cases) {
    json j = LlamaJson();
    j.erase("rope_scaling");
    j.erase("rope_theta");
    j["hidden_size"] = c["head_dim"].get<int>() * 32;
    j["rope_parameters"] = c["rope_parameters"];
    j["rope_parameters"]["rope_theta"] = c["rope_theta"];
    Result<ModelConfig> r = Parse(j);
    ASSERT_TRUE(r.ok()) << c["name"] << ": " << r.status().ToString();
    std::vector<float> inv = r->RopeInvFreq();
    const std::vector<float> want = c["inv_freq"].get<std::vector<float>>();
    ASSERT_EQ(inv.size(), want.size()) << c["name"];
    for (size_t i = 0; i < want.size(); ++i) {
      // HF works in float32; we work in double and round once.
      EXPECT_NEAR(inv[i], want[i], 2e-6 * std::fabs(want[i])) << c["name"] << " [" << i << "]";
    }
  }
}

TEST(ModelConfigTest, ConfigsWrittenByTransformers) {
  Result<ModelConfig> llama = LoadModelConfig(kFixtures + "/tiny-llama-hf");
  ASSERT_TRUE(llama.ok()) << llama.status().ToString();
  EXPECT_EQ(llama->architecture, "LlamaForCausalLM");
  EXPECT_EQ(llama->head_dim, 8);
  EXPECT_DOUBLE_EQ(llama->rope_theta, 500000.0);  // only inside rope_parameters
  EXPECT_EQ(llama->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(llama->rope_scaling.original_max_position_embeddings, 64);
  EXPECT_EQ(llama->torch_dtype, "bfloat16");  // transformers 5 writes "dtype"
  // transformers' own count, from model.safetensors.index.json's metadata.
  EXPECT_EQ(llama->NumParameters(), 19616);

  Result<ModelConfig> qwen = LoadModelConfig(kFixtures + "/tiny-qwen2-hf");
  ASSERT_TRUE(qwen.ok()) << qwen.status().ToString();
  EXPECT_TRUE(qwen->attention_bias);
  EXPECT_TRUE(qwen->tie_word_embeddings);
  EXPECT_DOUBLE_EQ(qwen->rope_theta, 1000000.0);
  EXPECT_EQ(qwen->bos_token_id, -1);
  EXPECT_EQ(qwen->eos_token_ids, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(qwen->NumParameters(), 8080);  // sum of numel in its model.safetensors
}

TEST(ModelConfigTest, GenerationConfigOverridesBosAndEos) {
  TempDir dir;
  testing::WriteBytes(dir.File("config.json"), LlamaJson().dump());
  testing::WriteBytes(dir.File("generation_config.json"),
                      R"({"bos_token_id": 5, "eos_token_id": [6, 7], "temperature": 0.6})");
  Result<ModelConfig> r = LoadModelConfig(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->bos_token_id, 5);
  EXPECT_EQ(r->eos_token_ids, (std::vector<int64_t>{6, 7}));

  // Absent or null fields leave config.json's values alone.
  testing::WriteBytes(dir.File("generation_config.json"), R"({"bos_token_id": null})");
  r = LoadModelConfig(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->bos_token_id, 128000);
  EXPECT_EQ(r->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
}

TEST(ModelConfigTest, GenerationConfigErrorsNameThatFile) {
  TempDir dir;
  testing::WriteBytes(dir.File("config.json"), LlamaJson().dump());
  testing::WriteBytes(dir.File("generation_config.json"), "{not json");
  Result<ModelConfig> r = LoadModelConfig(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("generation_config.json"));

  testing::WriteBytes(dir.File("generation_config.json"), R"({"eos_token_id": "two"})");
  r = LoadModelConfig(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("generation_config.json"));
  EXPECT_THAT(r.status().message(), HasSubstr("eos_token_id"));

  testing::WriteBytes(dir.File("generation_config.json"), R"({"eos_token_id": 999999999})");
  r = LoadModelConfig(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("outside the vocabulary"));
}

TEST(ModelConfigTest, MissingConfigFile) {
  TempDir dir;
  Result<ModelConfig> r = LoadModelConfig(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr(dir.File("config.json")));
}

TEST(ModelConfigTest, UnsupportedArchitectureListsSupportedOnes) {
  json j = LlamaJson();
  j["architectures"] = {"GPT2LMHeadModel"};
  ExpectError(j, StatusCode::kUnimplemented, "GPT2LMHeadModel");
  Result<ModelConfig> r = Parse(j);
  EXPECT_THAT(r.status().message(),
              HasSubstr("LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM"));

  j.erase("architectures");
  j["model_type"] = "gpt2";
  ExpectError(j, StatusCode::kUnimplemented, "'gpt2'");
  j.erase("model_type");
  ExpectError(j, StatusCode::kInvalidArgument, "architectures");
  j["architectures"] = "LlamaForCausalLM";  // not a list
  ExpectError(j, StatusCode::kInvalidArgument, "architectures");
}

TEST(ModelConfigTest, MalformedJson) {
  Result<ModelConfig> r = ParseModelConfig("{\"vocab_size\": ", "/m/config.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("/m/config.json"));
  EXPECT_THAT(r.status().message(), HasSubstr("not valid JSON"));
  ExpectError(json::array({1, 2}), StatusCode::kInvalidArgument, "JSON object");
}

TEST(ModelConfigTest, MissingAndMistypedFieldsAreNamed) {
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads"}) {
    json j = LlamaJson();
    j.erase(key);
    ExpectError(j, StatusCode::kInvalidArgument, std::string("'") + key + "' is missing");
    j[key] = "4096";
    ExpectError(j, StatusCode::kInvalidArgument, std::string("'") + key + "' must be an integer");
    j[key] = 12.5;
    ExpectError(j, StatusCode::kInvalidArgument, std::string("'") + key + "' must be an integer");
  }
  json j = LlamaJson();
  j["rms_norm_eps"] = "small";
  ExpectError(j, StatusCode::kInvalidArgument, "'rms_norm_eps' must be a number");
  j = LlamaJson();
  j["tie_word_embeddings"] = 1;
  ExpectError(j, StatusCode::kInvalidArgument, "'tie_word_embeddings' must be true or false");
  j = LlamaJson();
  j["eos_token_id"] = {1, "x"};
  ExpectError(j, StatusCode::kInvalidArgument, "'eos_token_id'");
  j = LlamaJson();
  j["bos_token_id"] = 200000;
  ExpectError(j, StatusCode::kInvalidArgument, "'bos_token_id'");
}

TEST(ModelConfigTest, SizesMustBePositiveAndConsistent) {
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_key_value_heads", "head_dim", "max_position_embeddings"}) {
    json j = LlamaJson();
    j[key] = 0;
    ExpectError(j, StatusCode::kInvalidArgument, std::string("'") + key + "' must be positive");
    j[key] = -4;
    ExpectError(j, StatusCode::kInvalidArgument, std::string("'") + key + "' must be positive");
  }
  json j = LlamaJson();
  j["num_attention_heads"] = 0;
  ExpectError(j, StatusCode::kInvalidArgument, "'num_attention_heads' must be positive");
  j = LlamaJson();
  j["num_key_value_heads"] = 5;
  ExpectError(j, StatusCode::kInvalidArgument, "divisible by num_key_value_heads (5)");
  j = LlamaJson();
  j["head_dim"] = 127;
  ExpectError(j, StatusCode::kInvalidArgument, "'head_dim' must be even");
  j = LlamaJson();
  j["rms_norm_eps"] = 0.0;
  ExpectError(j, StatusCode::kInvalidArgument, "'rms_norm_eps' must be positive");
  j = LlamaJson();
  j["rope_theta"] = -1.0;
  ExpectError(j, StatusCode::kInvalidArgument, "'rope_theta' must be positive");
  j = LlamaJson();
  j["hidden_size"] = int64_t{1} << 40;
  ExpectError(j, StatusCode::kInvalidArgument, "implausibly large");
}

TEST(ModelConfigTest, RopeScalingErrors) {
  json j = LlamaJson();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  ExpectError(j, StatusCode::kUnimplemented, "'yarn'");
  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  ExpectError(j, StatusCode::kUnimplemented, "'dynamic'");
  j["rope_scaling"] = "llama3";
  ExpectError(j, StatusCode::kInvalidArgument, "'rope_scaling' must be an object");
  j["rope_scaling"] = {{"rope_type", 3}};
  ExpectError(j, StatusCode::kInvalidArgument, "'rope_scaling.rope_type' must be a string");
  j["rope_scaling"] = {{"rope_type", "linear"}};
  ExpectError(j, StatusCode::kInvalidArgument, "'rope_scaling.factor' is missing");
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 0.0}};
  ExpectError(j, StatusCode::kInvalidArgument, "'rope_scaling.factor' must be positive");
  j = LlamaJson();
  j["rope_scaling"].erase("low_freq_factor");
  ExpectError(j, StatusCode::kInvalidArgument, "'rope_scaling.low_freq_factor' is missing");
  j = LlamaJson();
  j["rope_scaling"]["high_freq_factor"] = 1.0;
  ExpectError(j, StatusCode::kInvalidArgument, "greater than low_freq_factor");
  j = LlamaJson();
  j["rope_scaling"]["original_max_position_embeddings"] = 0;
  ExpectError(j, StatusCode::kInvalidArgument, "original_max_position_embeddings");
  j = LlamaJson();
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "longrope"}, {"rope_theta", 10000.0}};
  ExpectError(j, StatusCode::kUnimplemented, "'longrope' in 'rope_parameters'");
  j["rope_parameters"] = {{"rope_type", "default"}, {"partial_rotary_factor", 0.5}};
  ExpectError(j, StatusCode::kUnimplemented, "partial_rotary_factor");
}

TEST(ModelConfigTest, UnsupportedFeaturesAreRefused) {
  json j = LlamaJson();
  j["hidden_act"] = "gelu";
  ExpectError(j, StatusCode::kUnimplemented, "hidden_act 'gelu'");
  j = LlamaJson();
  j["mlp_bias"] = true;
  ExpectError(j, StatusCode::kUnimplemented, "mlp_bias");
}

}  // namespace
}  // namespace tandem
