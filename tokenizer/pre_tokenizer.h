// Pre-tokenizers of tokenizer.json: ByteLevel, Split, Metaspace, Digits, Whitespace,
// WhitespaceSplit, Punctuation, Sequence. They cut the (normalized) text into pieces that the
// model tokenizes one by one; pieces that are already tokens (added tokens) pass through.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"

namespace tandem::tokenizer {

struct Piece {
  std::string text;
  int32_t token_id = -1;   // >= 0: an added token, already resolved to its id
  bool at_origin = false;  // starts at offset 0 of the original input (Metaspace "first")
};

// How a Split keeps the matched delimiters (tokenizers' SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// A span of a piece and whether it is a match of the splitting pattern.
struct Segment {
  size_t start;
  size_t end;
  bool is_match;
};

// Segments covering all of `text` from the matches of `re` (tokenizers' Pattern::find_matches).
Status RegexSegments(const Regex& re, std::string_view text, std::vector<Segment>& out);

// Splits `piece` by `segments` according to `behavior`, appending non-empty parts to `out`.
void SplitPiece(const Piece& piece, const std::vector<Segment>& segments, SplitBehavior behavior,
                std::vector<Piece>& out);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Rewrites `pieces`; pieces with token_id >= 0 are left as they are.
  virtual Status PreTokenize(std::vector<Piece>& pieces) const = 0;
};

Result<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const Json& json, const std::string& path);

}  // namespace tandem::tokenizer
