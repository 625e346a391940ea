#include "model/model_weights.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/safetensors.h"
#include "tests/model/tiny_checkpoint.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;
using testing::TinySpec;
using testing::TinyTensor;

class ModelWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = CreateBackend("cpu");
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    backend_ = std::move(*backend);
  }

  Result<std::unique_ptr<ModelWeights>> Load(const std::string& dir) {
    return LoadModelWeights(dir, *backend_);
  }

  // Loads a checkpoint written from `spec` (after `edit`) and expects an error.
  Status LoadError(const TinySpec& spec,
                   const std::function<void(std::vector<TinyTensor>&)>& edit = {}) {
    WriteTinyCheckpointOrDie(spec, edit);
    auto r = Load(dir_.path());
    EXPECT_FALSE(r.ok()) << "loaded a broken checkpoint";
    return r.ok() ? Status::Ok() : r.status();
  }

  void WriteTinyCheckpointOrDie(const TinySpec& spec,
                                const std::function<void(std::vector<TinyTensor>&)>& edit = {}) {
    testing::WriteTinyCheckpoint(dir_.path(), spec, edit);
  }

  static void Drop(std::vector<TinyTensor>& t, const std::string& name) {
    auto it = std::find_if(t.begin(), t.end(), [&](const TinyTensor& x) { return x.name == name; });
    ASSERT_NE(it, t.end()) << name;
    t.erase(it);
  }
  static TinyTensor& Get(std::vector<TinyTensor>& t, const std::string& name) {
    auto it = std::find_if(t.begin(), t.end(), [&](const TinyTensor& x) { return x.name == name; });
    EXPECT_NE(it, t.end()) << name;
    return *it;
  }

  // The weight view must be the checkpoint tensor itself (zero-copy on the CPU).
  static void ExpectView(const ModelWeights& w, const DeviceWeight& dw, const std::string& name,
                         int64_t rows, int64_t cols) {
    auto t = w.checkpoint->Find(name);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(dw.view.data, t->data) << name;
    EXPECT_EQ(dw.view.dtype, t->dtype) << name;
    EXPECT_EQ(dw.view.rows, rows) << name;
    EXPECT_EQ(dw.view.cols, cols) << name;
  }

  TempDir dir_;
  std::unique_ptr<Backend> backend_;
};

TEST_F(ModelWeightsTest, TinyLlamaLoadsZeroCopy) {
  TinySpec spec;
  WriteTinyCheckpointOrDie(spec);
  auto r = Load(dir_.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModelWeights& w = **r;
  EXPECT_EQ(w.config.architecture, "LlamaForCausalLM");
  ASSERT_EQ(w.layers.size(), 2u);
  ExpectView(w, w.embed_tokens, "model.embed_tokens.weight", 32, 16);
  ExpectView(w, w.final_norm, "model.norm.weight", 1, 16);
  ExpectView(w, w.lm_head, "lm_head.weight", 32, 16);
  const LayerWeights& l1 = w.layers[1];
  ExpectView(w, l1.input_norm, "model.layers.1.input_layernorm.weight", 1, 16);
  ExpectView(w, l1.q_proj, "model.layers.1.self_attn.q_proj.weight", 16, 16);
  ExpectView(w, l1.k_proj, "model.layers.1.self_attn.k_proj.weight", 8, 16);
  ExpectView(w, l1.v_proj, "model.layers.1.self_attn.v_proj.weight", 8, 16);
  ExpectView(w, l1.o_proj, "model.layers.1.self_attn.o_proj.weight", 16, 16);
  ExpectView(w, l1.post_attn_norm, "model.layers.1.post_attention_layernorm.weight", 1, 16);
  ExpectView(w, l1.gate_proj, "model.layers.1.mlp.gate_proj.weight", 24, 16);
  ExpectView(w, l1.up_proj, "model.layers.1.mlp.up_proj.weight", 24, 16);
  ExpectView(w, l1.down_proj, "model.layers.1.mlp.down_proj.weight", 16, 24);
  EXPECT_EQ(l1.q_bias.view.data, nullptr);  // no attention_bias
  EXPECT_EQ(w.embed_tokens.view.dtype, DType::kBF16);
}

TEST_F(ModelWeightsTest, ShardedAndF16) {
  TinySpec spec;
  spec.shards = 2;
  spec.dtype = DType::kF16;
  WriteTinyCheckpointOrDie(spec);
  auto r = Load(dir_.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->checkpoint->files().size(), 2u);
  EXPECT_EQ((*r)->lm_head.view.dtype, DType::kF16);
}

TEST_F(ModelWeightsTest, TiedEmbeddingsShareOneTensor) {
  TinySpec spec;
  spec.tie = true;
  WriteTinyCheckpointOrDie(spec);
  auto r = Load(dir_.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->lm_head.view.data, (*r)->embed_tokens.view.data);
  EXPECT_EQ((*r)->lm_head.view.rows, 32);

  // An exporter that saved lm_head.weight anyway: HF ties them, so do we.
  WriteTinyCheckpointOrDie(spec, [](std::vector<TinyTensor>& t) {
    t.push_back({"lm_head.weight", {32, 16}, DType::kBF16});
  });
  r = Load(dir_.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->lm_head.view.data, (*r)->embed_tokens.view.data);
}

TEST_F(ModelWeightsTest, Qwen2LoadsBiases) {
  TinySpec spec;
  spec.architecture = "Qwen2ForCausalLM";
  spec.tie = true;
  spec.dtype = DType::kF32;
  WriteTinyCheckpointOrDie(spec);
  auto r = Load(dir_.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModelWeights& w = **r;
  EXPECT_TRUE(w.config.attention_bias);
  ExpectView(w, w.layers[0].q_bias, "model.layers.0.self_attn.q_proj.bias", 1, 16);
  ExpectView(w, w.layers[0].k_bias, "model.layers.0.self_attn.k_proj.bias", 1, 8);
  ExpectView(w, w.layers[1].v_bias, "model.layers.1.self_attn.v_proj.bias", 1, 8);
}

TEST_F(ModelWeightsTest, CheckpointsWrittenByTransformers) {
  const std::string root = std::string(TANDEM_TEST_DATA_DIR) + "/models/";
  auto llama = Load(root + "tiny-llama-hf");
  ASSERT_TRUE(llama.ok()) << llama.status().ToString();
  EXPECT_EQ((*llama)->layers.size(), 2u);
  EXPECT_EQ((*llama)->checkpoint->files().size(), 2u);
  EXPECT_EQ((*llama)->layers[1].k_proj.view.rows, 16);  // 2 kv heads * head_dim 8
  EXPECT_NE((*llama)->lm_head.view.data, (*llama)->embed_tokens.view.data);

  auto qwen = Load(root + "tiny-qwen2-hf");
  ASSERT_TRUE(qwen.ok()) << qwen.status().ToString();
  EXPECT_EQ((*qwen)->layers[0].k_bias.view.cols, 8);  // 1 kv head * head_dim 8
  EXPECT_EQ((*qwen)->lm_head.view.data, (*qwen)->embed_tokens.view.data);
  EXPECT_EQ((*qwen)->embed_tokens.view.dtype, DType::kF32);
}

TEST_F(ModelWeightsTest, MissingTensorIsNamed) {
  TinySpec spec;
  Status s = LoadError(
      spec, [](std::vector<TinyTensor>& t) { Drop(t, "model.layers.1.mlp.down_proj.weight"); });
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("'model.layers.1.mlp.down_proj.weight'"));
  EXPECT_THAT(s.message(), HasSubstr(dir_.File("model.safetensors")));
  EXPECT_THAT(s.message(), HasSubstr("expected shape [16, 24]"));
}

TEST_F(ModelWeightsTest, MissingLmHeadWhenUntied) {
  TinySpec spec;
  Status s = LoadError(spec, [](std::vector<TinyTensor>& t) { Drop(t, "lm_head.weight"); });
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("'lm_head.weight'"));
}

TEST_F(ModelWeightsTest, WrongShapeSaysExpectedAndActual) {
  TinySpec spec;
  spec.shards = 2;
  Status s = LoadError(spec, [](std::vector<TinyTensor>& t) {
    Get(t, "model.layers.1.self_attn.k_proj.weight").shape = {16, 16};
  });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("model.layers.1.self_attn.k_proj.weight in " +
                                     dir_.File("model-00002-of-00002.safetensors") +
                                     ": expected shape [8, 16], got [16, 16]"));
}

TEST_F(ModelWeightsTest, NormWithExtraDimensionIsAShapeError) {
  TinySpec spec;
  Status s = LoadError(spec, [](std::vector<TinyTensor>& t) {
    Get(t, "model.norm.weight").shape = {1, 16};
  });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("model.norm.weight in"));
  EXPECT_THAT(s.message(), HasSubstr("expected shape [16], got [1, 16]"));
}

TEST_F(ModelWeightsTest, EmbeddingOfWrongVocabulary) {
  TinySpec spec;
  Status s = LoadError(spec, [](std::vector<TinyTensor>& t) {
    Get(t, "model.embed_tokens.weight").shape = {33, 16};
  });
  EXPECT_THAT(s.message(), HasSubstr("expected shape [32, 16], got [33, 16]"));
}

TEST_F(ModelWeightsTest, UnsupportedArchitecture) {
  TinySpec spec;
  spec.extra_config = {{"architectures", {"Gemma2ForCausalLM"}}};
  Status s = LoadError(spec);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("Gemma2ForCausalLM"));
  EXPECT_THAT(s.message(), HasSubstr(dir_.File("config.json")));
}

TEST_F(ModelWeightsTest, Qwen2BiasesAreRequired) {
  TinySpec spec;
  spec.architecture = "Qwen2ForCausalLM";
  Status s = LoadError(
      spec, [](std::vector<TinyTensor>& t) { Drop(t, "model.layers.0.self_attn.k_proj.bias"); });
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("'model.layers.0.self_attn.k_proj.bias'"));
  EXPECT_THAT(s.message(), HasSubstr("expected shape [8]"));
}

TEST_F(ModelWeightsTest, LlamaAttentionBiasFlagRequiresBiases) {
  TinySpec spec;
  spec.attention_bias = true;
  WriteTinyCheckpointOrDie(spec);
  auto r = Load(dir_.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->layers[1].q_bias.view.cols, 16);

  Status s = LoadError(
      spec, [](std::vector<TinyTensor>& t) { Drop(t, "model.layers.1.self_attn.q_proj.bias"); });
  EXPECT_THAT(s.message(), HasSubstr("'model.layers.1.self_attn.q_proj.bias'"));
}

TEST_F(ModelWeightsTest, NoCheckpointFiles) {
  TinySpec spec;
  WriteTinyCheckpointOrDie(spec);
  std::filesystem::remove(dir_.File("model.safetensors"));
  auto r = Load(dir_.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("model.safetensors"));
}

TEST_F(ModelWeightsTest, CorruptFileStopsTheLoad) {
  TinySpec spec;
  WriteTinyCheckpointOrDie(spec);
  std::string bytes = testing::ReadBytes(dir_.File("model.safetensors"));
  bytes.resize(bytes.size() / 2);
  testing::WriteBytes(dir_.File("model.safetensors"), bytes);
  auto r = Load(dir_.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr(dir_.File("model.safetensors")));
}

}  // namespace
}  // namespace tandem
