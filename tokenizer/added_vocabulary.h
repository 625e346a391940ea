// Added tokens (tokenizer.json "added_tokens"): found in the input before the model sees it, as
// tokenizers' AddedVocabulary does.
//   1. Tokens with normalized=false are matched on the raw input.
//   2. The remaining text is normalized piece by piece; tokens with normalized=true are then
//      matched (by their normalized content) on the normalized pieces.
// Matching is leftmost-longest and non-overlapping (the reference uses an Aho-Corasick automaton
// with MatchKind::LeftmostLongest). single_word discards a match glued to a word character on
// either side; lstrip / rstrip make the token absorb the whitespace on that side.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"

namespace tandem::tokenizer {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

class AddedVocabulary {
 public:
  // `normalizer` (may be null) normalizes the content of normalized=true tokens.
  static Result<AddedVocabulary> Build(std::vector<AddedToken> tokens,
                                       const Normalizer* normalizer);

  // Splits `text` into pieces; added tokens become pieces with token_id set, the rest is
  // normalized with `normalizer` (may be null). Empty pieces are dropped.
  Status ExtractAndNormalize(std::string_view text, const Normalizer* normalizer,
                             std::vector<Piece>& pieces) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  // nullptr when `id` is not an added token.
  const AddedToken* FindById(int32_t id) const;
  const AddedToken* FindByContent(std::string_view content) const;

 private:
  // A byte trie for leftmost-longest matching.
  class Matcher {
   public:
    void Add(std::string_view pattern, int32_t value);
    // Longest pattern starting at text[pos]: sets `len` and returns its value, or -1.
    int32_t LongestAt(std::string_view text, size_t pos, size_t& len) const;
    bool empty() const { return nodes_.size() <= 1; }
    bool MayStart(unsigned char c) const { return first_bytes_[c]; }

   private:
    struct Node {
      std::unordered_map<unsigned char, uint32_t> children;
      int32_t value = -1;
    };
    std::vector<Node> nodes_{1};
    bool first_bytes_[256] = {};
  };

  // Splits `piece` on the matches of `matcher` (index into tokens_), appending to `out`.
  void SplitOnMatches(const Piece& piece, const Matcher& matcher, std::vector<Piece>& out) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  Matcher raw_matcher_;         // normalized=false tokens, by content
  Matcher normalized_matcher_;  // normalized=true tokens, by normalized content
};

}  // namespace tandem::tokenizer
