#include "model/safetensors.h"

#include <cstring>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/safetensors_writer.h"
#include "tests/model/tiny_checkpoint.h"

namespace tandem {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using testing::RawSafetensors;
using testing::TempDir;
using testing::WriteBytes;

std::vector<float> Floats(const TensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = LoadAsF32(t.data, t.dtype, i);
  return out;
}

// Opens `path` and expects failure with `code`, a message naming the file and every needle.
void ExpectOpenError(const std::string& path, StatusCode code,
                     const std::vector<std::string>& needles) {
  Result<std::shared_ptr<SafetensorsCheckpoint>> r = SafetensorsCheckpoint::OpenFile(path);
  ASSERT_FALSE(r.ok()) << "opened a bad file; expected " << needles.front();
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr(path)) << r.status().ToString();
  for (const std::string& n : needles) {
    EXPECT_THAT(r.status().message(), HasSubstr(n)) << r.status().ToString();
  }
}

// A file with one header (a JSON value given as text) and `data_bytes` zero bytes of data.
std::string WriteRaw(const TempDir& dir, const std::string& header, size_t data_bytes = 64) {
  const std::string path = dir.File("bad.safetensors");
  WriteBytes(path, RawSafetensors(header, std::string(data_bytes, '\0')));
  return path;
}

TEST(SafetensorsTest, RoundTripsEveryDtypeAndMetadata) {
  TempDir dir;
  const std::vector<float> f32 = {1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.0f};
  std::vector<uint16_t> f16, bf16;
  for (float v : f32) {
    f16.push_back(F32ToF16(v));
    bf16.push_back(F32ToBf16(v));
  }
  const std::string path = dir.File("model.safetensors");
  // BF16 first: an odd-sized 2-byte tensor must not break the alignment of later ones' data
  // (only the section start is aligned by the writer; offsets follow the given order).
  Status st = WriteSafetensors(path,
                               {{"b", DType::kBF16, {2, 3}, bf16.data()},
                                {"h", DType::kF16, {6}, f16.data()},
                                {"f", DType::kF32, {3, 2}, f32.data()},
                                {"empty", DType::kF32, {0, 5}, nullptr}},
                               {{"format", "pt"}, {"note", "tiny"}});
  ASSERT_TRUE(st.ok()) << st.ToString();

  const std::string bytes = testing::ReadBytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u) << "data section must start 8-byte aligned";
  EXPECT_EQ(bytes.size(), 8 + n + 6 * 2 + 6 * 2 + 6 * 4);

  auto ckpt = SafetensorsCheckpoint::Open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_EQ((*ckpt)->TensorNames(), (std::vector<std::string>{"b", "empty", "f", "h"}));
  EXPECT_EQ((*ckpt)->metadata().at("note"), "tiny");
  EXPECT_EQ((*ckpt)->files(), std::vector<std::string>{path});

  auto f = (*ckpt)->Find("f");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->dtype, DType::kF32);
  EXPECT_EQ(f->shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(f->bytes, 24u);
  EXPECT_EQ(f->file, path);
  EXPECT_EQ(Floats(*f), f32);

  auto h = (*ckpt)->Find("h");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->dtype, DType::kF16);
  EXPECT_EQ(h->bytes, 12u);
  auto b = (*ckpt)->Find("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->dtype, DType::kBF16);
  const std::vector<float> hv = Floats(*h), bv = Floats(*b);
  for (size_t i = 0; i < f32.size(); ++i) {
    EXPECT_EQ(hv[i], F16ToF32(f16[i]));
    EXPECT_EQ(bv[i], Bf16ToF32(bf16[i]));
    EXPECT_NEAR(bv[i], f32[i], std::fabs(f32[i]) / 128);
  }
  auto e = (*ckpt)->Find("empty");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->numel(), 0);
  EXPECT_EQ(e->bytes, 0u);
}

// Written by HF's `safetensors` library (tools/fixtures/make_loader_fixtures.py).
TEST(SafetensorsTest, ReadsFileWrittenByReferenceLibrary) {
  const std::string path = std::string(TANDEM_TEST_DATA_DIR) + "/safetensors/reference.safetensors";
  auto ckpt = SafetensorsCheckpoint::OpenFile(path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_EQ((*ckpt)->metadata().at("format"), "pt");
  EXPECT_EQ((*ckpt)->num_tensors(), 5u);
  auto f = (*ckpt)->Find("f32");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(Floats(*f), (std::vector<float>{0, 0.5f, 1, 1.5f, 2, 2.5f}));
  auto b = (*ckpt)->Find("bf16");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Floats(*b), (std::vector<float>{1, -2, 3.5f, 0.25f}));
  auto h = (*ckpt)->Find("f16");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(Floats(*h), (std::vector<float>{0.5f, -1.5f, 1024.0f, -0.0009765625f}));
  auto e = (*ckpt)->Find("empty");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->shape, (std::vector<int64_t>{0, 4}));
  // A valid I64 tensor: the file opens, but handing it out names the dtype and the tensor.
  auto i = (*ckpt)->Find("i64");
  ASSERT_FALSE(i.ok());
  EXPECT_EQ(i.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(i.status().message(), HasSubstr("I64"));
  EXPECT_THAT(i.status().message(), HasSubstr("'i64'"));
  EXPECT_THAT(i.status().message(), HasSubstr(path));
}

TEST(SafetensorsTest, ShardedIndexMapsEachShardOnce) {
  TempDir dir;
  testing::TinySpec spec;
  spec.shards = 3;
  testing::WriteTinyCheckpoint(dir.path(), spec);
  auto ckpt = SafetensorsCheckpoint::Open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_EQ((*ckpt)->files().size(), 3u);
  EXPECT_EQ((*ckpt)->num_tensors(), testing::TinyTensors(spec).size());
  EXPECT_EQ((*ckpt)->source(), dir.File("model.safetensors.index.json"));
  auto first = (*ckpt)->Find("model.embed_tokens.weight");
  auto last = (*ckpt)->Find("lm_head.weight");
  ASSERT_TRUE(first.ok() && last.ok());
  EXPECT_EQ(first->file, dir.File("model-00001-of-00003.safetensors"));
  EXPECT_EQ(last->file, dir.File("model-00003-of-00003.safetensors"));
  EXPECT_EQ(last->shape, (std::vector<int64_t>{32, 16}));

  auto missing = (*ckpt)->Find("model.layers.9.mlp.up_proj.weight");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("model.layers.9.mlp.up_proj.weight"));
}

TEST(SafetensorsTest, ShardedCheckpointWrittenByTransformers) {
  auto ckpt =
      SafetensorsCheckpoint::Open(std::string(TANDEM_TEST_DATA_DIR) + "/models/tiny-llama-hf");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_EQ((*ckpt)->files().size(), 2u);
  auto t = (*ckpt)->Find("model.layers.1.self_attn.k_proj.weight");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->dtype, DType::kBF16);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{16, 32}));
}

TEST(SafetensorsTest, SingleFileWinsOverIndex) {
  TempDir dir;
  float v = 1.0f;
  ASSERT_TRUE(WriteSafetensors(dir.File("model.safetensors"), {{"x", DType::kF32, {1}, &v}}).ok());
  WriteBytes(dir.File("model.safetensors.index.json"), "{broken");
  auto ckpt = SafetensorsCheckpoint::Open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_TRUE((*ckpt)->Contains("x"));
}

// --- every way a file can be bad -----------------------------------------------------------

TEST(SafetensorsBadFileTest, NoCheckpointInDirectory) {
  TempDir dir;
  auto r = SafetensorsCheckpoint::Open(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr(dir.path()));
  EXPECT_THAT(r.status().message(), HasSubstr("model.safetensors"));
}

TEST(SafetensorsBadFileTest, MissingFile) {
  TempDir dir;
  ExpectOpenError(dir.File("nope.safetensors"), StatusCode::kNotFound, {"no such file"});
}

TEST(SafetensorsBadFileTest, ShorterThanEightBytes) {
  TempDir dir;
  const std::string path = dir.File("short.safetensors");
  WriteBytes(path, std::string("\x10\0\0", 3));
  ExpectOpenError(path, StatusCode::kDataLoss, {"truncated", "3 bytes"});
  WriteBytes(path, "");
  ExpectOpenError(path, StatusCode::kDataLoss, {"truncated", "0 bytes"});
}

TEST(SafetensorsBadFileTest, HeaderLengthPastEndOfFile) {
  TempDir dir;
  const std::string path = dir.File("cut.safetensors");
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  WriteBytes(path, RawSafetensors(header.substr(0, 20), "", header.size()));
  ExpectOpenError(path, StatusCode::kDataLoss, {"header length", "past the end of the file"});
}

TEST(SafetensorsBadFileTest, UnreasonableHeaderLength) {
  TempDir dir;
  const std::string path = dir.File("huge.safetensors");
  WriteBytes(path, RawSafetensors("{}", "", kMaxSafetensorsHeaderBytes + 1));
  ExpectOpenError(path, StatusCode::kDataLoss, {"exceeds the limit"});
  WriteBytes(path, RawSafetensors("{}", "", ~uint64_t{0}));
  ExpectOpenError(path, StatusCode::kDataLoss, {"exceeds the limit"});
}

TEST(SafetensorsBadFileTest, HeaderNotJsonOrNotObject) {
  TempDir dir;
  ExpectOpenError(WriteRaw(dir, R"({"a": {"dtype": )"), StatusCode::kDataLoss, {"not valid JSON"});
  ExpectOpenError(WriteRaw(dir, "\xff\xfe{}"), StatusCode::kDataLoss, {"not valid JSON"});
  ExpectOpenError(WriteRaw(dir, "{\"a\xc3\": 1}"), StatusCode::kDataLoss, {"not valid JSON"});
  ExpectOpenError(WriteRaw(dir, "[1, 2]"), StatusCode::kDataLoss, {"JSON object", "array"});
  ExpectOpenError(WriteRaw(dir, "\"x\""), StatusCode::kDataLoss, {"JSON object"});
  ExpectOpenError(WriteRaw(dir, ""), StatusCode::kDataLoss, {"not valid JSON"});
}

TEST(SafetensorsBadFileTest, DeeplyNestedJsonIsAnErrorNotAStackOverflow) {
  TempDir dir;
  const int depth = 200000;
  const std::string header =
      "{\"__metadata__\": " + std::string(depth, '[') + std::string(depth, ']') + "}";
  ExpectOpenError(WriteRaw(dir, header), StatusCode::kDataLoss, {"'__metadata__' must be"});
  ExpectOpenError(WriteRaw(dir, "{\"w\": " + std::string(depth, '[')), StatusCode::kDataLoss,
                  {"not valid JSON"});
}

TEST(SafetensorsBadFileTest, EntryMissingFields) {
  TempDir dir;
  ExpectOpenError(WriteRaw(dir, R"({"w": {"shape": [1], "data_offsets": [0, 4]}})"),
                  StatusCode::kDataLoss, {"'w'", "missing 'dtype'"});
  ExpectOpenError(WriteRaw(dir, R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})"),
                  StatusCode::kDataLoss, {"'w'", "missing 'shape'"});
  ExpectOpenError(WriteRaw(dir, R"({"w": {"dtype": "F32", "shape": [1]}})"), StatusCode::kDataLoss,
                  {"'w'", "missing 'data_offsets'"});
}

TEST(SafetensorsBadFileTest, EntryWithWrongJsonTypes) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"w": [1]})", "entry must be an object"},
      {R"({"w": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}})", "'dtype' must be a string"},
      {R"({"w": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}})",
       "'shape' must be a list"},
      {R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})",
       "'shape' entries must be integers"},
      {R"({"w": {"dtype": "F32", "shape": [[1]], "data_offsets": [0, 4]}})",
       "'shape' entries must be integers"},
      {R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": {"begin": 0}}})",
       "'data_offsets' must be a list of two"},
      {R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})",
       "'data_offsets' must be a list of two"},
      {R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, "4"]}})",
       "'data_offsets' must be two non-negative integers"},
      {R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 4]}})",
       "'data_offsets' must be two non-negative integers"},
      {R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4.0]}})",
       "'data_offsets' must be two non-negative integers"},
      {R"({"__metadata__": ["format", "pt"]})", "'__metadata__' must be an object"},
      {R"({"__metadata__": {"format": 1}})", "'__metadata__' value for 'format'"},
  };
  for (const auto& [header, needle] : cases) {
    SCOPED_TRACE(header);
    ExpectOpenError(WriteRaw(dir, header), StatusCode::kDataLoss, {needle});
  }
}

TEST(SafetensorsBadFileTest, UnknownDtypeIsNamed) {
  TempDir dir;
  ExpectOpenError(
      WriteRaw(dir, R"({"w": {"dtype": "Q4_K", "shape": [1], "data_offsets": [0, 4]}})"),
      StatusCode::kDataLoss, {"'w'", "unknown dtype 'Q4_K'"});
}

TEST(SafetensorsBadFileTest, KnownButUnsupportedDtypesAreNamedOnUse) {
  TempDir dir;
  const std::string path = WriteRaw(dir, R"({
      "ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},
      "dbl": {"dtype": "F64", "shape": [1], "data_offsets": [16, 24]},
      "fp8": {"dtype": "F8_E4M3", "shape": [4, 2], "data_offsets": [24, 32]},
      "nib": {"dtype": "F4", "shape": [4], "data_offsets": [32, 34]}})");
  auto ckpt = SafetensorsCheckpoint::OpenFile(path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  for (const auto& [name, dtype] : std::vector<std::pair<std::string, std::string>>{
           {"ids", "I64"}, {"dbl", "F64"}, {"fp8", "F8_E4M3"}, {"nib", "F4"}}) {
    auto r = (*ckpt)->Find(name);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("'" + name + "'"));
    EXPECT_THAT(r.status().message(), HasSubstr("dtype " + dtype));
    EXPECT_THAT(r.status().message(), HasSubstr(path));
  }
  // Sub-byte types must still fill whole bytes.
  ExpectOpenError(
      WriteRaw(dir, R"({"nib": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}})"),
      StatusCode::kDataLoss, {"'nib'", "whole bytes"});
}

TEST(SafetensorsBadFileTest, NegativeDimension) {
  TempDir dir;
  ExpectOpenError(
      WriteRaw(dir, R"({"w": {"dtype": "F32", "shape": [2, -2], "data_offsets": [0, 16]}})"),
      StatusCode::kDataLoss, {"'w'", "negative dimension -2"});
}

TEST(SafetensorsBadFileTest, OffsetsBeginAfterEnd) {
  TempDir dir;
  ExpectOpenError(WriteRaw(dir, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})"),
                  StatusCode::kDataLoss, {"'w'", "begin 8 > end 4"});
}

TEST(SafetensorsBadFileTest, OffsetsPastDataSection) {
  TempDir dir;
  ExpectOpenError(
      WriteRaw(dir, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [56, 72]}})", 64),
      StatusCode::kDataLoss, {"'w'", "end 72 is past the end of the data section (64 bytes)"});
  ExpectOpenError(WriteRaw(dir,
                           R"({"w": {"dtype": "F32", "shape": [4],
                                      "data_offsets": [18446744073709551600, 18446744073709551615]}})"),
                  StatusCode::kDataLoss, {"'w'", "past the end of the data section"});
}

TEST(SafetensorsBadFileTest, ByteSizeDoesNotMatchShape) {
  TempDir dir;
  ExpectOpenError(
      WriteRaw(dir, R"({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 24]}})"),
      StatusCode::kDataLoss, {"'w'", "span 24 bytes", "[2, 3]", "needs 12"});
}

TEST(SafetensorsBadFileTest, OverlappingTensors) {
  TempDir dir;
  ExpectOpenError(WriteRaw(dir, R"({
      "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
      "b": {"dtype": "F32", "shape": [4], "data_offsets": [32, 48]},
      "c": {"dtype": "F32", "shape": [4], "data_offsets": [12, 28]}})"),
                  StatusCode::kDataLoss, {"'c'", "overlaps tensor 'a'"});
  // Identical ranges (one tensor aliased under two names) overlap too; empty ones never do.
  ExpectOpenError(WriteRaw(dir, R"({
      "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
      "z": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})"),
                  StatusCode::kDataLoss, {"overlaps"});
  auto ok = SafetensorsCheckpoint::OpenFile(WriteRaw(dir, R"({
      "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
      "e": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]}})"));
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST(SafetensorsBadFileTest, ElementCountOverflow) {
  TempDir dir;
  ExpectOpenError(WriteRaw(dir, R"({"w": {"dtype": "F32",
                                        "shape": [4294967296, 4294967296],
                                        "data_offsets": [0, 16]}})"),
                  StatusCode::kDataLoss, {"'w'", "overflows"});
  ExpectOpenError(WriteRaw(dir, R"({"w": {"dtype": "F64",
                                        "shape": [2305843009213693952, 2],
                                        "data_offsets": [0, 16]}})"),
                  StatusCode::kDataLoss, {"'w'", "overflows"});
  ExpectOpenError(WriteRaw(dir, R"({"w": {"dtype": "F32", "shape": [18446744073709551615],
                                        "data_offsets": [0, 16]}})"),
                  StatusCode::kDataLoss, {"'w'", "overflows"});
}

// --- bad sharded checkpoints -----------------------------------------------------------------

class BadIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.shards = 2;
    testing::WriteTinyCheckpoint(dir_.path(), spec_);
    index_ = json::parse(testing::ReadBytes(dir_.File("model.safetensors.index.json")));
  }
  void ExpectError(StatusCode code, const std::vector<std::string>& needles) {
    WriteBytes(dir_.File("model.safetensors.index.json"), index_.dump());
    auto r = SafetensorsCheckpoint::Open(dir_.path());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code) << r.status().ToString();
    for (const std::string& n : needles) {
      EXPECT_THAT(r.status().message(), HasSubstr(n)) << r.status().ToString();
    }
  }

  TempDir dir_;
  testing::TinySpec spec_;
  json index_;
};

TEST_F(BadIndexTest, NotJson) {
  WriteBytes(dir_.File("model.safetensors.index.json"), "{\"weight_map\": ");
  auto r = SafetensorsCheckpoint::Open(dir_.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr("model.safetensors.index.json"));
}

TEST_F(BadIndexTest, NoWeightMap) {
  index_.erase("weight_map");
  ExpectError(StatusCode::kDataLoss, {"model.safetensors.index.json", "weight_map"});
  index_["weight_map"] = json::object();
  ExpectError(StatusCode::kDataLoss, {"lists no tensors"});
}

TEST_F(BadIndexTest, EntryNotAString) {
  index_["weight_map"]["model.norm.weight"] = 3;
  ExpectError(StatusCode::kDataLoss, {"model.safetensors.index.json", "'model.norm.weight'"});
}

TEST_F(BadIndexTest, ShardOutsideModelDirectory) {
  index_["weight_map"]["model.norm.weight"] = "../model-00002-of-00002.safetensors";
  ExpectError(StatusCode::kDataLoss, {"'model.norm.weight'", "not a file name inside"});
}

TEST_F(BadIndexTest, MissingShard) {
  std::filesystem::remove(dir_.File("model-00002-of-00002.safetensors"));
  ExpectError(StatusCode::kNotFound,
              {"model-00002-of-00002.safetensors", "model.safetensors.index.json"});
}

TEST_F(BadIndexTest, TensorNotInItsShard) {
  index_["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
  ExpectError(StatusCode::kDataLoss,
              {"'model.norm.weight'", "model-00001-of-00002.safetensors", "does not contain it"});
}

TEST_F(BadIndexTest, CorruptShardIsNamed) {
  const std::string shard = dir_.File("model-00002-of-00002.safetensors");
  std::string bytes = testing::ReadBytes(shard);
  bytes.resize(bytes.size() - 3);  // truncated download
  WriteBytes(shard, bytes);
  ExpectError(StatusCode::kDataLoss, {shard, "past the end of the data section"});
}

TEST(SafetensorsWriterTest, RejectsBadInput) {
  TempDir dir;
  float v[2] = {0, 0};
  Status s = WriteSafetensors(dir.File("x.safetensors"),
                              {{"a", DType::kF32, {1}, v}, {"a", DType::kF32, {1}, v}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("duplicate"));
  s = WriteSafetensors(dir.File("x.safetensors"), {{"__metadata__", DType::kF32, {1}, v}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = WriteSafetensors(dir.File("x.safetensors"), {{"a", DType::kF32, {-1}, v}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = WriteSafetensors(dir.File("x.safetensors"), {{"a", DType::kF32, {2}, nullptr}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = WriteSafetensors(dir.File("no/such/dir/x.safetensors"), {{"a", DType::kF32, {2}, v}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("no/such/dir/x.safetensors"));
}

}  // namespace
}  // namespace tandem
