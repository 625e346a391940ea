// Byte-for-byte agreement with the reference Hugging Face `tokenizers` on the fixtures written by
// tools/gen_tokenizer_fixtures.py: encode (with and without special tokens), decode (both
// skip_special_tokens settings), streaming detokenization, invalid UTF-8 input.
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tokenizer/incremental_decoder.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> FixtureNames() {
  std::vector<std::string> names;
  const fs::path root = fs::path(TANDEM_TEST_DATA_DIR) / "tokenizers";
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().filename() == "expected.json") {
      names.push_back(fs::relative(e.path().parent_path(), root).string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

struct Loaded {
  json expected;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string skip_reason;
};

// Tokenizers are large (Qwen3's is 11 MB): load each once for the whole binary.
const Loaded& Load(const std::string& name) {
  static std::map<std::string, Loaded> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  Loaded l;
  const fs::path fixture = fs::path(TANDEM_TEST_DATA_DIR) / "tokenizers" / name / "expected.json";
  l.expected = json::parse(ReadFile(fixture));
  const std::string root_name = l.expected["tokenizer_root"];
  fs::path root;
  if (root_name == "shared") {
    root = TANDEM_SHARED_DIR;
  } else if (root_name == "test_data") {
    root = TANDEM_TEST_DATA_DIR;
  } else {
    root = fs::path(TANDEM_TEST_DATA_DIR).parent_path().parent_path();  // the source tree
  }
  const fs::path path = root / l.expected["tokenizer_path"].get<std::string>();
  if (!fs::exists(path)) {
    l.skip_reason = path.string() + " is absent (shared data dir not mounted?)";
  } else {
    auto tok = Tokenizer::FromFile(path.string());
    if (!tok.ok()) {
      ADD_FAILURE() << "loading " << path << ": " << tok.status().ToString();
      l.skip_reason = "load failed";
    } else {
      l.tokenizer = std::move(tok).value();
    }
  }
  return cache.emplace(name, std::move(l)).first->second;
}

std::string Printable(const std::string& s) {
  return json(s).dump(-1, ' ', true);  // JSON-escaped, ASCII only
}

class FixtureTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    loaded_ = &Load(GetParam());
    if (!loaded_->skip_reason.empty()) GTEST_SKIP() << loaded_->skip_reason;
  }
  const Tokenizer& tok() const { return *loaded_->tokenizer; }
  const json& expected() const { return loaded_->expected; }
  const Loaded* loaded_ = nullptr;
};

TEST_P(FixtureTest, EncodeMatchesReference) {
  int failures = 0;
  for (const json& c : expected()["cases"]) {
    const std::string text = c["text"];
    auto ids = tok().Encode(text, /*add_special_tokens=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    auto plain = tok().Encode(text, /*add_special_tokens=*/false);
    ASSERT_TRUE(plain.ok()) << plain.status().ToString();
    const auto want = c["ids"].get<std::vector<TokenId>>();
    const auto want_plain = c["ids_no_special"].get<std::vector<TokenId>>();
    EXPECT_EQ(*ids, want) << "text " << Printable(text);
    EXPECT_EQ(*plain, want_plain) << "text (no special tokens) " << Printable(text);
    failures += (*ids != want) + (*plain != want_plain);
    if (failures > 10) FAIL() << "too many failures";
  }
}

TEST_P(FixtureTest, DecodeMatchesReference) {
  for (const json& c : expected()["cases"]) {
    const auto ids = c["ids"].get<std::vector<TokenId>>();
    EXPECT_EQ(tok().Decode(ids, false), c["decoded"].get<std::string>())
        << "text " << Printable(c["text"]);
    EXPECT_EQ(tok().Decode(ids, true), c["decoded_skip_special"].get<std::string>())
        << "text " << Printable(c["text"]);
  }
  for (const json& d : expected()["decodes"]) {
    const auto ids = d["ids"].get<std::vector<TokenId>>();
    EXPECT_EQ(tok().Decode(ids, false), d["text"].get<std::string>()) << "ids " << d["ids"].dump();
    EXPECT_EQ(tok().Decode(ids, true), d["text_skip_special"].get<std::string>())
        << "ids " << d["ids"].dump();
  }
}

// Streams ids through an IncrementalDecoder; checks every chunk is valid UTF-8 and that the
// chunks add up to the full decode.
void ExpectStreamEqualsDecode(const Tokenizer& tok, const std::vector<TokenId>& ids, bool skip,
                              const std::string& context) {
  IncrementalDecoder dec(tok, skip);
  std::string streamed;
  for (TokenId id : ids) {
    const std::string chunk = dec.Step(id);
    EXPECT_TRUE(tokenizer::IsValidUtf8(chunk)) << context;
    streamed += chunk;
  }
  streamed += dec.Flush();
  EXPECT_EQ(streamed, tok.Decode(ids, skip)) << context << " skip_special=" << skip;
}

TEST_P(FixtureTest, StreamingDetokenizationEqualsFullDecode) {
  for (const json& c : expected()["cases"]) {
    const auto ids = c["ids"].get<std::vector<TokenId>>();
    ExpectStreamEqualsDecode(tok(), ids, false, "text " + Printable(c["text"]));
    ExpectStreamEqualsDecode(tok(), ids, true, "text " + Printable(c["text"]));
  }
  for (const json& d : expected()["decodes"]) {
    const auto ids = d["ids"].get<std::vector<TokenId>>();
    ExpectStreamEqualsDecode(tok(), ids, false, "ids " + d["ids"].dump());
    ExpectStreamEqualsDecode(tok(), ids, true, "ids " + d["ids"].dump());
  }
}

// A partial character is held back, never emitted as U+FFFD mid-stream.
TEST_P(FixtureTest, StreamingHoldsBackPartialCharacters) {
  for (const json& c : expected()["cases"]) {
    const std::string text = c["text"];
    if (text.find("\xF0\x9F") == std::string::npos) continue;  // emoji lines only
    if (text.find("\xEF\xBF\xBD") != std::string::npos) continue;
    const auto ids = c["ids"].get<std::vector<TokenId>>();
    IncrementalDecoder dec(tok(), false);
    for (TokenId id : ids) {
      const std::string chunk = dec.Step(id);
      EXPECT_EQ(chunk.find("\xEF\xBF\xBD"), std::string::npos) << Printable(text);
    }
  }
}

TEST_P(FixtureTest, InvalidUtf8IsReplacedLikePython) {
  for (const json& c : expected()["invalid_utf8"]) {
    const std::string hex = c["hex"];
    std::string bytes;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    EXPECT_EQ(tokenizer::SanitizeUtf8(bytes), c["replaced"].get<std::string>()) << hex;
    auto ids = tok().Encode(bytes, true);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*ids, c["ids"].get<std::vector<TokenId>>()) << hex;
  }
}

TEST_P(FixtureTest, VocabSizeMatchesReference) {
  EXPECT_EQ(tok().VocabSize(), expected()["vocab_size_with_added"].get<size_t>());
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, FixtureTest, ::testing::ValuesIn(FixtureNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace tandem
