// The BPE model of tokenizer.json: vocab, ranked merges, byte fallback, unk handling, ignore_merges,
// continuing_subword_prefix / end_of_word_suffix. Merging follows tokenizers' Word::merge_all:
// the lowest-rank applicable pair first, leftmost on ties, over a linked list of symbols.
//
// Thread-safety: Tokenize may be called concurrently; the word cache is guarded by a mutex.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "tokenizer/json_util.h"

namespace tandem::tokenizer {

using TokenId = int32_t;

class BpeModel {
 public:
  // Parses the "model" object (path "model"). Errors name the field: missing vocab, a merge
  // naming a token that is not in the vocab, an unk_token that is not in the vocab.
  static Result<std::unique_ptr<BpeModel>> FromJson(const Json& model);

  // Appends the ids of one pre-tokenized piece to `out`.
  void Tokenize(std::string_view word, std::vector<TokenId>& out) const;

  std::optional<TokenId> TokenToId(std::string_view token) const;
  // nullptr when `id` is not in the vocab.
  const std::string* IdToToken(TokenId id) const;
  size_t VocabSize() const { return vocab_.size(); }
  // One past the largest id of the vocab.
  size_t IdLimit() const { return id_to_token_.size(); }

 private:
  BpeModel() = default;
  void MergeWord(std::string_view word, std::vector<TokenId>& out) const;
  TokenId LookupChar(std::string_view piece, bool is_first, bool is_last, bool& found) const;

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_token_;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<uint32_t, TokenId>> merges_;
  std::optional<TokenId> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  std::array<TokenId, 256> byte_fallback_ids_{};  // -1 when <0xXX> is missing
  // Single code point -> id for code points below 0x800 (covers every byte-level symbol), so
  // that splitting a word into symbols needs no hashing in the common case.
  std::vector<TokenId> small_char_ids_;

  static constexpr size_t kCacheCapacity = 1 << 17;
  static constexpr size_t kMaxCachedWordBytes = 256;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>>
      cache_;  // GUARDED_BY(cache_mu_)
};

}  // namespace tandem::tokenizer
