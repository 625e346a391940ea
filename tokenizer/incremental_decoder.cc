#include "tokenizer/incremental_decoder.h"

#include <algorithm>

#include "tokenizer/unicode_util.h"

namespace tandem {
namespace {

// vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET: prompt tokens kept as decoding context.
constexpr size_t kPromptContext = 5;
// Ids before prefix_offset_ are never decoded again; drop them once this many pile up.
constexpr size_t kCompactThreshold = 256;

bool EndsWithReplacement(const std::string& s) {
  return s.size() >= tokenizer::kReplacementUtf8.size() &&
         s.compare(s.size() - tokenizer::kReplacementUtf8.size(), std::string::npos,
                   tokenizer::kReplacementUtf8) == 0;
}

}  // namespace

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens,
                                       std::span<const TokenId> prompt_ids)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {
  const size_t keep = std::min(prompt_ids.size(), kPromptContext);
  ids_.assign(prompt_ids.end() - static_cast<ptrdiff_t>(keep), prompt_ids.end());
  prefix_offset_ = 0;
  read_offset_ = ids_.size();
  prefix_text_ = DecodeRange(prefix_offset_, read_offset_);
}

std::string IncrementalDecoder::DecodeRange(size_t begin, size_t end) const {
  return tokenizer_.Decode(std::span<const TokenId>(ids_.data() + begin, end - begin),
                           skip_special_tokens_);
}

// A ByteFallback token "<0xXX>". The ByteFallback decoder turns a whole run of them into text
// or, if the run is not valid UTF-8, into one U+FFFD per byte: a later byte token can turn
// characters already complete into U+FFFDs. So nothing is emitted while the run may continue.
static bool IsByteToken(const std::optional<std::string>& t) {
  return t.has_value() && t->size() == 6 && t->compare(0, 3, "<0x") == 0 && (*t)[5] == '>';
}

std::string IncrementalDecoder::Step(TokenId id) {
  ids_.push_back(id);
  if (IsByteToken(tokenizer_.IdToToken(id))) return "";
  std::string text = DecodeRange(prefix_offset_, ids_.size());
  if (text.size() <= prefix_text_.size() || EndsWithReplacement(text)) return "";
  std::string delta = text.substr(prefix_text_.size());
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  if (prefix_offset_ >= kCompactThreshold) {
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<ptrdiff_t>(prefix_offset_));
    read_offset_ -= prefix_offset_;
    prefix_offset_ = 0;
  }
  prefix_text_ = DecodeRange(prefix_offset_, read_offset_);
  return delta;
}

std::string IncrementalDecoder::Flush() {
  std::string text = DecodeRange(prefix_offset_, ids_.size());
  std::string delta = text.size() > prefix_text_.size() ? text.substr(prefix_text_.size()) : "";
  prefix_offset_ = read_offset_ = ids_.size();
  prefix_text_.clear();
  return delta;
}

}  // namespace tandem
