#include "model/make_model.h"

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/dtype.h"
#include "model/builtin_assets.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string ReadAll(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// A fresh directory per test, removed afterwards.
class MakeModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() /
            ("tandem_make_model_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path MakeTiny(const std::string& sub, uint64_t seed) {
    MakeModelOptions opt;
    opt.preset = "tiny";
    opt.out_dir = (root_ / sub).string();
    opt.seed = seed;
    const Status st = MakeModel(opt);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return root_ / sub;
  }

  fs::path root_;
};

TEST(ModelPresetTest, ShapesAndParameterCounts) {
  ASSERT_TRUE(FindModelPreset("tiny").ok());
  const ModelPreset tiny = *FindModelPreset("tiny");
  EXPECT_EQ(tiny.hidden_size, 128);
  EXPECT_EQ(tiny.num_layers, 2);
  EXPECT_EQ(tiny.num_heads, 4);
  EXPECT_EQ(tiny.num_kv_heads, 2);
  EXPECT_EQ(tiny.head_dim(), 32);
  EXPECT_EQ(tiny.intermediate_size, 384);
  EXPECT_EQ(tiny.vocab_size, 32000);
  // 2 * 32000*128 + 2 * (2*128*128 + 2*64*128 + 3*128*384 + 2*128) + 128
  EXPECT_EQ(tiny.NumParameters(), 8'585'856);

  ASSERT_TRUE(FindModelPreset("small").ok());
  const ModelPreset small = *FindModelPreset("small");
  EXPECT_EQ(small.hidden_size, 768);
  EXPECT_EQ(small.num_layers, 12);
  EXPECT_EQ(small.num_heads, 12);
  EXPECT_EQ(small.num_kv_heads, 4);
  EXPECT_EQ(small.head_dim(), 64);
  EXPECT_EQ(small.intermediate_size, 2048);
  EXPECT_EQ(small.vocab_size, 32000);
  EXPECT_EQ(small.max_position_embeddings, 2048);
  EXPECT_EQ(small.NumParameters(), 124'668'672);
}

TEST(ModelPresetTest, UnknownPresetListsKnownOnes) {
  auto r = FindModelPreset("huge");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'huge'"), std::string::npos);
  EXPECT_NE(r.status().message().find("tiny, small"), std::string::npos);
}

TEST(ModelPresetTest, ConfigJsonParsesWithPresetValues) {
  for (const ModelPreset& p : ModelPresets()) {
    SCOPED_TRACE(p.name);
    const json raw = json::parse(MakeConfigJson(p));
    EXPECT_EQ(raw.at("torch_dtype"), "bfloat16");
    EXPECT_EQ(raw.at("tie_word_embeddings"), false);
    auto cfg = ParseModelConfig(MakeConfigJson(p), "config.json");
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    EXPECT_EQ(cfg->architecture, "LlamaForCausalLM");
    EXPECT_EQ(cfg->model_type, "llama");
    EXPECT_EQ(cfg->hidden_size, p.hidden_size);
    EXPECT_EQ(cfg->num_layers, p.num_layers);
    EXPECT_EQ(cfg->num_heads, p.num_heads);
    EXPECT_EQ(cfg->num_kv_heads, p.num_kv_heads);
    EXPECT_EQ(cfg->head_dim, p.head_dim());
    EXPECT_EQ(cfg->intermediate_size, p.intermediate_size);
    EXPECT_EQ(cfg->vocab_size, p.vocab_size);
    EXPECT_EQ(cfg->max_position_embeddings, 2048);
    EXPECT_DOUBLE_EQ(cfg->rms_norm_eps, 1e-5);
    EXPECT_DOUBLE_EQ(cfg->rope_theta, 10000.0);
    EXPECT_EQ(cfg->rope_scaling.type, RopeScalingType::kNone);
    EXPECT_FALSE(cfg->tie_word_embeddings);
    EXPECT_FALSE(cfg->attention_bias);
    EXPECT_EQ(cfg->bos_token_id, kBuiltinBosTokenId);
    EXPECT_EQ(cfg->NumParameters(), p.NumParameters());
  }
}

TEST_F(MakeModelTest, WritesACompleteLoadableModel) {
  const fs::path dir = MakeTiny("m", 0);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors",
                        "tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_TRUE(fs::is_regular_file(dir / f)) << f;
  }
  auto cfg = LoadModelConfig(dir.string());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->hidden_size, 128);
  EXPECT_EQ(cfg->num_layers, 2);
  EXPECT_EQ(cfg->torch_dtype, "bfloat16");
  EXPECT_EQ(cfg->bos_token_id, kBuiltinBosTokenId);
  // generation_config.json's list wins over config.json's single id.
  EXPECT_EQ(cfg->eos_token_ids,
            (std::vector<int64_t>{kBuiltinImEndTokenId, kBuiltinEndOfTextTokenId}));

  EXPECT_EQ(ReadAll(dir / "tokenizer.json"), std::string(BuiltinTokenizerJson()));
  EXPECT_EQ(ReadAll(dir / "tokenizer_config.json"), std::string(BuiltinTokenizerConfigJson()));

  auto ckpt = SafetensorsCheckpoint::Open(dir.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_EQ((*ckpt)->num_tensors(), 3u + 9u * 2u);
  EXPECT_EQ((*ckpt)->metadata().at("format"), "pt");
  for (const std::string& name : (*ckpt)->TensorNames()) {
    auto t = (*ckpt)->Find(name);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->dtype, DType::kBF16) << name;
  }
  auto q = (*ckpt)->Find("model.layers.1.self_attn.k_proj.weight");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->shape, (std::vector<int64_t>{64, 128}));
  auto head = (*ckpt)->Find("lm_head.weight");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->shape, (std::vector<int64_t>{32000, 128}));
}

// Mean and standard deviation of a bf16 tensor.
std::pair<double, double> Moments(const TensorInfo& t) {
  double sum = 0, sum_sq = 0;
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    const double x = LoadAsF32(t.data, t.dtype, static_cast<size_t>(i));
    sum += x;
    sum_sq += x * x;
  }
  const double mean = sum / static_cast<double>(n);
  return {mean, std::sqrt(sum_sq / static_cast<double>(n) - mean * mean)};
}

TEST_F(MakeModelTest, WeightScalesAreAsDocumented) {
  const fs::path dir = MakeTiny("m", 3);
  auto ckpt = SafetensorsCheckpoint::Open(dir.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  struct Expect {
    const char* name;
    double mean, std;
  };
  const Expect expects[] = {
      {"model.embed_tokens.weight", 0.0, 1.0},
      {"model.layers.0.self_attn.q_proj.weight", 0.0, 1.0 / std::sqrt(128.0)},
      {"model.layers.1.mlp.down_proj.weight", 0.0, 1.0 / std::sqrt(384.0)},
      {"lm_head.weight", 0.0, 5.0 / std::sqrt(128.0)},
  };
  for (const Expect& e : expects) {
    auto t = (*ckpt)->Find(e.name);
    ASSERT_TRUE(t.ok()) << e.name;
    auto [mean, std] = Moments(*t);
    EXPECT_NEAR(mean, e.mean, 0.02 * e.std) << e.name;
    EXPECT_NEAR(std, e.std, 0.02 * e.std) << e.name;
  }
  auto norm = (*ckpt)->Find("model.layers.0.input_layernorm.weight");
  ASSERT_TRUE(norm.ok());
  std::set<float> distinct;
  for (int64_t i = 0; i < norm->numel(); ++i) {
    const float w = LoadAsF32(norm->data, norm->dtype, static_cast<size_t>(i));
    EXPECT_GE(w, 0.89f);
    EXPECT_LE(w, 1.11f);
    distinct.insert(w);
  }
  EXPECT_GT(distinct.size(), 10u);  // noisy, not all ones
}

TEST_F(MakeModelTest, SameSeedSameBytesOtherSeedOtherBytes) {
  const fs::path a = MakeTiny("a", 7);
  const fs::path b = MakeTiny("b", 7);
  const fs::path c = MakeTiny("c", 8);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"}) {
    EXPECT_EQ(ReadAll(a / f), ReadAll(b / f)) << f;
  }
  const std::string wa = ReadAll(a / "model.safetensors");
  const std::string wc = ReadAll(c / "model.safetensors");
  EXPECT_EQ(wa.size(), wc.size());
  EXPECT_NE(wa, wc);
}

// The generator's output is pinned, so that a change of PRNG, hashing or rounding (or a
// platform that computes differently) is caught rather than silently changing every model.
// The values were reproduced independently by a pure-Python transcription of the generator.
TEST_F(MakeModelTest, WeightsArePinnedForSeedZero) {
  const fs::path dir = MakeTiny("m", 0);
  auto ckpt = SafetensorsCheckpoint::Open(dir.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  auto embed = (*ckpt)->Find("model.embed_tokens.weight");
  auto norm = (*ckpt)->Find("model.norm.weight");
  ASSERT_TRUE(embed.ok() && norm.ok());
  const auto* e = static_cast<const uint16_t*>(embed->data);
  const auto* n = static_cast<const uint16_t*>(norm->data);
  EXPECT_EQ((std::vector<uint16_t>{e[0], e[1], e[2], e[3]}),
            (std::vector<uint16_t>{48941, 48882, 49025, 16272}));
  EXPECT_EQ((std::vector<uint16_t>{n[0], n[1], n[2], n[3]}),
            (std::vector<uint16_t>{16265, 16236, 16257, 16267}));
}

TEST_F(MakeModelTest, RefusesNonEmptyDirectoryWithoutForce) {
  const fs::path dir = root_ / "busy";
  fs::create_directories(dir);
  std::ofstream(dir / "notes.txt") << "keep me";
  std::ofstream(dir / "model-00001-of-00002.safetensors") << "stale shard";
  std::ofstream(dir / "model.safetensors.index.json") << "{}";

  MakeModelOptions opt;
  opt.out_dir = dir.string();
  Status st = MakeModel(opt);
  EXPECT_EQ(st.code(), StatusCode::kAlreadyExists) << st.ToString();
  EXPECT_NE(st.message().find("--force"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "config.json"));

  opt.force = true;
  st = MakeModel(opt);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(fs::exists(dir / "notes.txt"));
  EXPECT_FALSE(fs::exists(dir / "model-00001-of-00002.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_TRUE(LoadModelConfig(dir.string()).ok());
}

TEST_F(MakeModelTest, RejectsBadArguments) {
  MakeModelOptions opt;
  opt.out_dir = (root_ / "x").string();
  opt.preset = "medium";
  Status st = MakeModel(opt);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("tiny, small"), std::string::npos);
  EXPECT_FALSE(fs::exists(root_ / "x"));

  std::ofstream(root_ / "file") << "x";
  opt.preset = "tiny";
  opt.out_dir = (root_ / "file").string();
  st = MakeModel(opt);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("not a directory"), std::string::npos);

  opt.out_dir.clear();
  EXPECT_EQ(MakeModel(opt).code(), StatusCode::kInvalidArgument);
}

TEST(BuiltinTokenizerTest, EmbeddedJsonIsValidWithTheRightVocabulary) {
  const json tok = json::parse(BuiltinTokenizerJson());
  const json& vocab = tok.at("model").at("vocab");
  EXPECT_EQ(tok.at("model").at("type"), "BPE");
  EXPECT_EQ(vocab.size(), 32000u);
  std::set<int64_t> ids;
  for (const auto& [token, id] : vocab.items()) ids.insert(id.get<int64_t>());
  EXPECT_EQ(ids.size(), 32000u);
  EXPECT_EQ(*ids.begin(), 0);
  EXPECT_EQ(*ids.rbegin(), 31999);
  EXPECT_EQ(tok.at("model").at("merges").size(), 32000u - 256u - 5u);
  EXPECT_EQ(tok.at("pre_tokenizer").at("type"), "ByteLevel");
  EXPECT_EQ(tok.at("decoder").at("type"), "ByteLevel");

  const std::vector<std::string> specials = {"<|begin_of_text|>", "<|end_of_text|>",
                                             "<|im_start|>", "<|im_end|>", "<|pad|>"};
  const json& added = tok.at("added_tokens");
  ASSERT_EQ(added.size(), specials.size());
  for (size_t i = 0; i < specials.size(); ++i) {
    EXPECT_EQ(added[i].at("id"), static_cast<int64_t>(i));
    EXPECT_EQ(added[i].at("content"), specials[i]);
    EXPECT_EQ(added[i].at("special"), true);
  }
  EXPECT_EQ(vocab.at("<|begin_of_text|>"), kBuiltinBosTokenId);
  EXPECT_EQ(vocab.at("<|end_of_text|>"), kBuiltinEndOfTextTokenId);
  EXPECT_EQ(vocab.at("<|im_end|>"), kBuiltinImEndTokenId);
  EXPECT_EQ(vocab.at("<|pad|>"), kBuiltinPadTokenId);

  const json cfg = json::parse(BuiltinTokenizerConfigJson());
  EXPECT_EQ(cfg.at("bos_token"), "<|begin_of_text|>");
  EXPECT_EQ(cfg.at("eos_token"), "<|im_end|>");
  EXPECT_EQ(cfg.at("pad_token"), "<|pad|>");
  EXPECT_EQ(cfg.at("add_bos_token"), true);
  const std::string tmpl = cfg.at("chat_template");
  EXPECT_NE(tmpl.find("<|im_start|>assistant\\n"), std::string::npos);
  EXPECT_NE(tmpl.find("add_generation_prompt"), std::string::npos);
}

// The written model's tokenizer and chat template, read by Tandem's own tokenizer stack, give
// what transformers gives: the expected strings and ids were produced with
// AutoTokenizer.from_pretrained(dir).apply_chat_template(...) (transformers 5.23, tokenizers 0.23).
TEST_F(MakeModelTest, ChatPromptMatchesTransformers) {
  const fs::path dir = MakeTiny("m", 0);
  auto source = LoadChatTemplate(dir.string());
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  auto tmpl = ChatTemplate::Parse(source->source);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().ToString();
  const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(
      R"([{"role": "system", "content": "You are helpful."},
          {"role": "user", "content": "Hi there"}])");
  auto text = tmpl->Render(messages, nullptr, /*add_generation_prompt=*/true,
                           source->special_tokens);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text,
            "<|begin_of_text|><|im_start|>system\nYou are helpful.<|im_end|>\n"
            "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n");

  auto tok = Tokenizer::FromModelDir(dir.string());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  // A rendered chat already holds its BOS, so it is encoded without special tokens.
  auto ids = (*tok)->Encode(*text, /*add_special_tokens=*/false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<TokenId>{0, 2, 4295, 203, 5081, 634, 13701, 18, 3, 203, 2, 2294,
                                        203, 44, 77, 1486, 3, 203, 2, 4182, 476, 831, 203}));
  // Plain text gets BOS from the post-processor (add_special_tokens=True in transformers).
  auto plain = (*tok)->Encode("Hello, world!");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, (std::vector<TokenId>{0, 9871, 16, 8444, 5}));
  EXPECT_EQ((*tok)->Decode(*plain, /*skip_special_tokens=*/true), "Hello, world!");
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

TEST(MakeModelDtypeTest, F32AndF16HoldTheSameValuesAsBf16) {
  const fs::path root = fs::temp_directory_path() / ("tandem_make_model_dtype_" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::map<std::string, std::shared_ptr<SafetensorsCheckpoint>> ckpts;
  for (const char* dtype : {"bf16", "f16", "f32"}) {
    MakeModelOptions opt;
    opt.out_dir = (root / dtype).string();
    opt.dtype = dtype;
    ASSERT_TRUE(MakeModel(opt).ok()) << dtype;
    auto c = SafetensorsCheckpoint::Open(opt.out_dir);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ckpts[dtype] = std::move(c).value();
  }
  auto cfg = LoadModelConfig((root / "f32").string());
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->torch_dtype, "float32");
  for (const char* name : {"model.layers.0.self_attn.q_proj.weight", "lm_head.weight", "model.norm.weight"}) {
    auto b = ckpts["bf16"]->Find(name), h = ckpts["f16"]->Find(name), f = ckpts["f32"]->Find(name);
    ASSERT_TRUE(b.ok() && h.ok() && f.ok()) << name;
    EXPECT_EQ(f->dtype, DType::kF32);
    EXPECT_EQ(h->dtype, DType::kF16);
    for (int64_t i = 0; i < b->numel(); i += 97) {
      const float ref = LoadAsF32(b->data, DType::kBF16, i);
      EXPECT_EQ(LoadAsF32(f->data, DType::kF32, i), ref) << name << "[" << i << "]";
      // f16 keeps bf16's 8 significant bits except below its normal range (2^-14).
      EXPECT_NEAR(LoadAsF32(h->data, DType::kF16, i), ref, std::max(std::abs(ref) * 0x1p-10f, 0x1p-24f))
          << name << "[" << i << "]";
    }
  }
  MakeModelOptions bad;
  bad.out_dir = (root / "bad").string();
  bad.dtype = "int8";
  EXPECT_EQ(MakeModel(bad).code(), StatusCode::kInvalidArgument);
  fs::remove_all(root);
}

}  // namespace
}  // namespace tandem
