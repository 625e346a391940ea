// A Hugging Face tokenizer.json tokenizer (model type BPE: byte-level or SentencePiece-style) that
// produces the same ids and text as the reference `tokenizers` library.
//
// Encode pipeline (as tokenizers' Tokenizer::encode):
//   input -> [invalid UTF-8 -> U+FFFD] -> split out added tokens (raw, then normalized pieces)
//         -> normalizer (per piece) -> pre-tokenizer -> BPE per piece -> post-processor
// Decode: ids -> token strings (unknown ids dropped, special ones optionally) -> decoder chain.
//
// Invalid UTF-8: the reference takes Python str and never sees invalid bytes. Tandem defines
// Encode on arbitrary bytes by first replacing every maximal ill-formed subsequence with U+FFFD,
// exactly as Python's bytes.decode("utf-8", errors="replace"); so Encode(b) equals the
// reference's encode(b.decode("utf-8", "replace")).
//
// tokenizer_config.json (FromModelDir) only supplies bos/eos/pad/unk names and add_bos_token /
// add_eos_token for callers; Encode follows tokenizer.json alone (its post-processor decides
// whether BOS is added), which is what the reference does.
//
// Thread-safety: a Tokenizer is immutable after loading (its BPE cache is internally locked), so
// Encode / Decode may be called from any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"

namespace tandem {

using TokenId = tokenizer::TokenId;

// The parts of tokenizer_config.json Tandem uses. Token names are resolved to ids by Tokenizer.
struct TokenizerConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  bool add_bos_token = false;
  bool add_eos_token = false;
};

class Tokenizer {
 public:
  // Loads a tokenizer.json file.
  static Result<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  // Parses tokenizer.json content (`source` names it in errors).
  static Result<std::unique_ptr<Tokenizer>> FromJsonString(std::string_view json,
                                                           std::string_view source = "tokenizer.json");
  // Loads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json.
  static Result<std::unique_ptr<Tokenizer>> FromModelDir(const std::string& dir);

  // Token ids of `text` (any bytes; see the invalid UTF-8 rule above). add_special_tokens
  // applies the post-processor (e.g. Llama's BOS). Fails only on regex engine limits.
  Result<std::vector<TokenId>> Encode(std::string_view text, bool add_special_tokens = true) const;

  // Text of `ids`. Ids that are neither in the vocab nor added tokens are skipped, as the
  // reference does; skip_special_tokens drops special added tokens.
  std::string Decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const;

  // Distinct tokens: model vocab plus added tokens not in it (tokenizers' get_vocab_size(true)).
  size_t VocabSize() const { return vocab_size_; }
  // One past the largest id (rows an embedding table needs).
  size_t IdLimit() const { return id_limit_; }

  std::optional<TokenId> TokenToId(std::string_view token) const;
  std::optional<std::string> IdToToken(TokenId id) const;
  bool IsSpecial(TokenId id) const;
  // Ids of every special added token, ascending.
  std::vector<TokenId> SpecialIds() const;
  const std::vector<tokenizer::AddedToken>& AddedTokens() const { return added_.tokens(); }

  const TokenizerConfig& config() const { return config_; }
  std::optional<TokenId> bos_id() const { return bos_id_; }
  std::optional<TokenId> eos_id() const { return eos_id_; }
  std::optional<TokenId> pad_id() const { return pad_id_; }

 private:
  Tokenizer() = default;
  Status ApplyConfig(TokenizerConfig config);
  // The token string for `id` or nullptr (added tokens first, then the model vocab).
  const std::string* TokenString(TokenId id) const;

  std::unique_ptr<tokenizer::Normalizer> normalizer_;
  std::unique_ptr<tokenizer::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<tokenizer::BpeModel> model_;
  std::unique_ptr<tokenizer::PostProcessor> post_processor_;
  std::unique_ptr<tokenizer::Decoder> decoder_;
  tokenizer::AddedVocabulary added_;
  size_t vocab_size_ = 0;
  size_t id_limit_ = 0;
  TokenizerConfig config_;
  std::optional<TokenId> bos_id_, eos_id_, pad_id_;
};

// Reads tokenizer_config.json (token fields may be strings or {"content": ...} objects).
Result<TokenizerConfig> ParseTokenizerConfig(std::string_view json, std::string_view source);

}  // namespace tandem
