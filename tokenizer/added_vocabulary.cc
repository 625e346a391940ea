#include "tokenizer/added_vocabulary.h"

#include "tokenizer/unicode_util.h"

namespace tandem::tokenizer {

void AddedVocabulary::Matcher::Add(std::string_view pattern, int32_t value) {
  if (pattern.empty()) return;
  uint32_t node = 0;
  for (char ch : pattern) {
    const auto c = static_cast<unsigned char>(ch);
    auto it = nodes_[node].children.find(c);
    if (it == nodes_[node].children.end()) {
      nodes_.emplace_back();
      const auto child = static_cast<uint32_t>(nodes_.size() - 1);
      nodes_[node].children.emplace(c, child);
      node = child;
    } else {
      node = it->second;
    }
  }
  if (nodes_[node].value < 0) nodes_[node].value = value;  // first pattern wins on duplicates
  first_bytes_[static_cast<unsigned char>(pattern[0])] = true;
}

int32_t AddedVocabulary::Matcher::LongestAt(std::string_view text, size_t pos, size_t& len) const {
  int32_t best = -1;
  uint32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    auto it = nodes_[node].children.find(static_cast<unsigned char>(text[i]));
    if (it == nodes_[node].children.end()) break;
    node = it->second;
    if (nodes_[node].value >= 0) {
      best = nodes_[node].value;
      len = i + 1 - pos;
    }
  }
  return best;
}

Result<AddedVocabulary> AddedVocabulary::Build(std::vector<AddedToken> tokens,
                                               const Normalizer* normalizer) {
  AddedVocabulary v;
  v.tokens_ = std::move(tokens);
  // The reference matches special tokens before the other added tokens when contents tie.
  std::vector<size_t> order;
  for (size_t i = 0; i < v.tokens_.size(); ++i) {
    if (v.tokens_[i].special) order.push_back(i);
  }
  for (size_t i = 0; i < v.tokens_.size(); ++i) {
    if (!v.tokens_[i].special) order.push_back(i);
  }
  for (size_t i : order) {
    const AddedToken& t = v.tokens_[i];
    v.by_id_.emplace(t.id, i);
    v.by_content_.emplace(t.content, i);
    if (!t.normalized) {
      v.raw_matcher_.Add(t.content, static_cast<int32_t>(i));
      continue;
    }
    std::string content = t.content;
    if (normalizer != nullptr) {
      Status st = normalizer->Normalize(content);
      if (!st.ok()) return st.WithContext("normalizing added token '" + t.content + "'");
    }
    v.normalized_matcher_.Add(content, static_cast<int32_t>(i));
  }
  return v;
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::FindByContent(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

namespace {

// Last code point of s[0, end), or 0 when empty.
char32_t CodePointBefore(std::string_view s, size_t end) {
  if (end == 0) return 0;
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return NextCodePoint(s, start);
}

}  // namespace

void AddedVocabulary::SplitOnMatches(const Piece& piece, const Matcher& matcher,
                                     std::vector<Piece>& out) const {
  const std::string_view s = piece.text;
  auto emit = [&](size_t start, size_t stop, int32_t token_id) {
    if (start >= stop) return;  // the reference drops empty splits
    Piece p;
    p.text.assign(s.substr(start, stop - start));
    p.token_id = token_id;
    p.at_origin = piece.at_origin && start == 0;
    out.push_back(std::move(p));
  };
  if (matcher.empty()) {
    emit(0, s.size(), -1);
    return;
  }
  size_t start_offset = 0;  // end of the last emitted split
  size_t pos = 0;           // where the automaton resumes
  while (pos < s.size()) {
    if (!matcher.MayStart(static_cast<unsigned char>(s[pos]))) {
      ++pos;
      continue;
    }
    size_t len = 0;
    const int32_t index = matcher.LongestAt(s, pos, len);
    if (index < 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + len;
    pos = stop;
    const AddedToken& t = tokens_[static_cast<size_t>(index)];
    if (t.single_word) {
      const bool start_space = start == 0 || !IsWordChar(CodePointBefore(s, start));
      size_t p = stop;
      const bool stop_space = stop == s.size() || !IsWordChar(NextCodePoint(s, p));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) {
      size_t new_start = start;
      while (new_start > 0) {
        size_t prev = new_start - 1;
        while (prev > 0 && (static_cast<unsigned char>(s[prev]) & 0xC0) == 0x80) --prev;
        size_t q = prev;
        if (!IsWhitespace(NextCodePoint(s, q))) break;
        new_start = prev;
      }
      start = std::max(new_start, start_offset);
    }
    if (t.rstrip) {
      while (stop < s.size()) {
        size_t q = stop;
        if (!IsWhitespace(NextCodePoint(s, q))) break;
        stop = q;
      }
    }
    if (start_offset < start) emit(start_offset, start, -1);
    emit(start, stop, t.id);
    start_offset = stop;
  }
  if (start_offset < s.size()) emit(start_offset, s.size(), -1);
}

Status AddedVocabulary::ExtractAndNormalize(std::string_view text, const Normalizer* normalizer,
                                            std::vector<Piece>& pieces) const {
  pieces.clear();
  Piece whole;
  whole.text.assign(text);
  whole.at_origin = true;
  std::vector<Piece> raw;
  SplitOnMatches(whole, raw_matcher_, raw);
  for (Piece& p : raw) {
    if (p.token_id >= 0) {
      pieces.push_back(std::move(p));
      continue;
    }
    if (normalizer != nullptr) RETURN_IF_ERROR(normalizer->Normalize(p.text));
    SplitOnMatches(p, normalized_matcher_, pieces);
  }
  return Status::Ok();
}

}  // namespace tandem::tokenizer
