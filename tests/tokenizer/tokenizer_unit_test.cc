// Loading errors, added-token matching rules, UTF-8 repair, regex translation and streaming with a
// prompt, on small tokenizers written inline.
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tokenizer/incremental_decoder.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_util.h"

namespace tandem {
namespace {

using nlohmann::json;

// Vocab: one token per lowercase letter and space (ids 0..26), "ab" (27), "abc" (28);
// merges a+b, ab+c.
json TinyTokenizer() {
  json vocab = json::object();
  for (int i = 0; i < 26; ++i) vocab[std::string(1, static_cast<char>('a' + i))] = i;
  vocab[" "] = 26;
  vocab["ab"] = 27;
  vocab["abc"] = 28;
  return {{"version", "1.0"},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", {{"type", "Fuse"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", "ab c"}}}}};
}

json Added(int id, const std::string& content, bool special = true) {
  return {{"id", id},         {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},  {"normalized", false}, {"special", special}};
}

Status LoadError(const json& j) {
  auto tok = Tokenizer::FromJsonString(j.dump());
  return tok.ok() ? Status::Ok() : tok.status();
}

std::vector<TokenId> Encode(const Tokenizer& tok, const std::string& text) {
  auto ids = tok.Encode(text, true);
  EXPECT_TRUE(ids.ok()) << ids.status().ToString();
  return ids.ok() ? *ids : std::vector<TokenId>{};
}

TEST(TokenizerErrors, UnknownModelType) {
  json j = TinyTokenizer();
  j["model"]["type"] = "WordPiece";
  const Status s = LoadError(j);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("model.type 'WordPiece' is not supported"), std::string::npos) << s.message();
}

TEST(TokenizerErrors, MissingVocab) {
  json j = TinyTokenizer();
  j["model"].erase("vocab");
  EXPECT_NE(LoadError(j).message().find("model.vocab: missing"), std::string::npos);
}

TEST(TokenizerErrors, MergeNamesUnknownToken) {
  json j = TinyTokenizer();
  j["model"]["merges"] = {"a b", "ab zz"};
  const Status s = LoadError(j);
  EXPECT_NE(s.message().find("model.merges[1]: token 'zz' is not in model.vocab"), std::string::npos)
      << s.message();
  j["model"]["merges"] = json::array({json::array({"b", "c"})});  // "bc" is not in the vocab
  EXPECT_NE(LoadError(j).message().find("merged token 'bc'"), std::string::npos);
  j["model"]["merges"] = {"abc"};
  EXPECT_NE(LoadError(j).message().find("model.merges[0]"), std::string::npos);
}

TEST(TokenizerErrors, BadRegexNamesFieldAndOffset) {
  json j = TinyTokenizer();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(ab[c"}}},
                        {"behavior", "Isolated"}, {"invert", false}};
  const Status s = LoadError(j);
  EXPECT_NE(s.message().find("pre_tokenizer.pattern.Regex"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("at offset"), std::string::npos) << s.message();
}

TEST(TokenizerErrors, UnknownComponentTypes) {
  json j = TinyTokenizer();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Fancy"}}}}};
  EXPECT_NE(LoadError(j).message().find("normalizer.normalizers[1].type: normalizer type 'Fancy'"),
            std::string::npos);
  j = TinyTokenizer();
  j["pre_tokenizer"] = {{"type", "Chop"}};
  EXPECT_NE(LoadError(j).message().find("pre-tokenizer type 'Chop' is not supported"), std::string::npos);
  j = TinyTokenizer();
  j["decoder"] = {{"type", "CTC"}};
  EXPECT_NE(LoadError(j).message().find("decoder.type: decoder type 'CTC'"), std::string::npos);
  j = TinyTokenizer();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "x"}}}, {"behavior", "Sideways"}};
  EXPECT_NE(LoadError(j).message().find("unknown split behavior 'Sideways'"), std::string::npos);
}

TEST(TokenizerErrors, MalformedJsonAndMissingFiles) {
  auto tok = Tokenizer::FromJsonString("{\"model\": {\"type\": ", "broken.json");
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("broken.json: malformed JSON"), std::string::npos);
  EXPECT_EQ(Tokenizer::FromModelDir("/nonexistent/dir").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Tokenizer::FromFile("/nonexistent/tokenizer.json").status().code(), StatusCode::kNotFound);
  json j = TinyTokenizer();
  j.erase("model");
  EXPECT_NE(LoadError(j).message().find("model: missing"), std::string::npos);
  j = TinyTokenizer();
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                         {"special_tokens", json::object()}};
  EXPECT_NE(LoadError(j).message().find("no entry for '<s>'"), std::string::npos);
}

TEST(TokenizerBpe, MergesByRankAndPostProcessor) {
  json j = TinyTokenizer();
  j["added_tokens"] = {Added(29, "<s>")};
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {29}}, {"tokens", {"<s>"}}}}}}};
  auto tok = Tokenizer::FromJsonString(j.dump());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ(Encode(**tok, "abcab d"), (std::vector<TokenId>{29, 28, 27, 26, 3}));
  EXPECT_EQ(*(*tok)->Encode("abc", false), (std::vector<TokenId>{28}));
  EXPECT_EQ((*tok)->Decode(std::vector<TokenId>{29, 28, 26, 3}, true), "abc d");
  EXPECT_EQ((*tok)->Decode(std::vector<TokenId>{29, 28, 999}, false), "<s>abc");  // 999 skipped
  EXPECT_EQ((*tok)->VocabSize(), 30u);
  EXPECT_TRUE((*tok)->IsSpecial(29));
  EXPECT_EQ((*tok)->SpecialIds(), std::vector<TokenId>{29});
}

TEST(TokenizerAddedTokens, LeftmostLongestNonOverlapping) {
  json j = TinyTokenizer();
  j["added_tokens"] = {Added(30, "<a>"), Added(31, "<a><b>"), Added(32, "xy", false), Added(33, "yz", false)};
  auto tok = Tokenizer::FromJsonString(j.dump());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  // The longer token wins at the same start; the leftmost start wins over a longer later one.
  EXPECT_EQ(Encode(**tok, "<a><b>c<a>"), (std::vector<TokenId>{31, 2, 30}));
  EXPECT_EQ(Encode(**tok, "xyz"), (std::vector<TokenId>{32, 25}));
  EXPECT_EQ(Encode(**tok, "wyz"), (std::vector<TokenId>{22, 33}));
}

TEST(TokenizerAddedTokens, StripAndSingleWord) {
  json j = TinyTokenizer();
  json mask = Added(30, "m", false);
  mask["single_word"] = true;
  json eot = Added(31, "<e>");
  eot["lstrip"] = true;
  eot["rstrip"] = true;
  j["added_tokens"] = {mask, eot};
  auto tok = Tokenizer::FromJsonString(j.dump());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  // "m" only matches as a whole word; "<e>" swallows the spaces around it.
  EXPECT_EQ(Encode(**tok, "m am m."), (std::vector<TokenId>{30, 26, 0, 12, 26, 30}));
  EXPECT_EQ(Encode(**tok, "a  <e>  b"), (std::vector<TokenId>{0, 31, 1}));
}

TEST(TokenizerUtf8, ReplacesMaximalSubparts) {
  using tokenizer::SanitizeUtf8;
  EXPECT_EQ(SanitizeUtf8("ok"), "ok");
  EXPECT_EQ(SanitizeUtf8("a\x80z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(SanitizeUtf8("\xE3\x81"), "\xEF\xBF\xBD");  // truncated: one replacement
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong: two
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(SanitizeUtf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_FALSE(tokenizer::IsValidUtf8("\xF4\x90\x80\x80"));
  auto tok = Tokenizer::FromJsonString(TinyTokenizer().dump());
  ASSERT_TRUE(tok.ok());
  // U+FFFD is not in the tiny vocab and there is no unk token: it is dropped, as the reference
  // does, and "a" "b" still merge.
  EXPECT_EQ(Encode(**tok, "a\xFF" "b"), (std::vector<TokenId>{27}));
}

TEST(TokenizerRegex, OnigurumaTranslationAndIteration) {
  using tokenizer::Regex;
  EXPECT_EQ(tokenizer::TranslateOnigPattern("(?m:a.b)"), "(?s:a.b)");
  EXPECT_EQ(tokenizer::TranslateOnigPattern("[\\h]\\h"), "[0-9a-fA-F][0-9a-fA-F]");
  EXPECT_EQ(tokenizer::TranslateOnigPattern("(?i:'s|'t)"), "(?i:'s|'t)");
  auto re = Regex::Compile("a*");
  ASSERT_TRUE(re.ok());
  std::vector<tokenizer::MatchSpan> m;
  ASSERT_TRUE(re->FindAll("baab", m).ok());
  // rust-onig: (0,0), then no empty match at 0 again, then (1,3); no empty match at 3 or 4
  // right after a match.
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].start, 0u);
  EXPECT_EQ(m[1].start, 1u);
  EXPECT_EQ(m[1].end, 3u);
  EXPECT_EQ(m[2].start, 4u);
  auto caseless = Regex::Compile("(?i:'s|'t)");
  ASSERT_TRUE(caseless.ok());
  m.clear();
  ASSERT_TRUE(caseless->FindAll("IT'S it's", m).ok());
  EXPECT_EQ(m.size(), 2u);
  auto bad = Regex::Compile("\\p{Nope}");
  EXPECT_FALSE(bad.ok());
}

TEST(TokenizerConfigTest, ParsesTokenNamesAndFlags) {
  auto c = ParseTokenizerConfig(
      R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>", "pad_token": null, "add_bos_token": true})",
      "cfg");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->bos_token, "<s>");
  EXPECT_EQ(c->eos_token, "</s>");
  EXPECT_FALSE(c->pad_token.has_value());
  EXPECT_TRUE(c->add_bos_token);
  EXPECT_FALSE(ParseTokenizerConfig(R"({"eos_token": 3})", "cfg").ok());
}

std::string SharedTokenizerDir(const std::string& name) {
  return std::string(TANDEM_SHARED_DIR) + "/data/tokenizers/" + name;
}

TEST(TokenizerModelDir, LlamaConfigAndStreamingAfterPrompt) {
  const std::string dir = SharedTokenizerDir("llama2");
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " is absent";
  auto tok = Tokenizer::FromModelDir(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  EXPECT_TRUE((*tok)->config().add_bos_token);
  EXPECT_EQ((*tok)->IdToToken(1), "<s>");
  EXPECT_EQ((*tok)->TokenToId("<0x0A>"), 13);
  auto prompt = (*tok)->Encode("Hello", true);
  auto full = (*tok)->Encode("Hello world, 世界!", true);
  ASSERT_TRUE(prompt.ok() && full.ok());
  // With the prompt as context, the generated part keeps its leading space.
  IncrementalDecoder dec(**tok, true, *prompt);
  std::string out;
  for (size_t i = prompt->size(); i < full->size(); ++i) out += dec.Step((*full)[i]);
  out += dec.Flush();
  EXPECT_EQ(out, " world, 世界!");
}

TEST(TokenizerModelDir, QwenSpecialTokens) {
  const std::string dir = SharedTokenizerDir("qwen3");
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " is absent";
  auto tok = Tokenizer::FromModelDir(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_FALSE((*tok)->bos_id().has_value());
  EXPECT_EQ((*tok)->eos_id(), 151645);
  EXPECT_EQ((*tok)->pad_id(), 151643);
  EXPECT_EQ((*tok)->IdLimit(), 151669u);
  EXPECT_TRUE((*tok)->IsSpecial(151644));
}

}  // namespace
}  // namespace tandem
