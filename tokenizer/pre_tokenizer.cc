#include "tokenizer/pre_tokenizer.h"

#include <functional>

#include <utf8proc.h>

#include "tokenizer/normalizer.h"
#include "tokenizer/unicode_util.h"

namespace tandem::tokenizer {

Status RegexSegments(const Regex& re, std::string_view text, std::vector<Segment>& out) {
  thread_local std::vector<MatchSpan> matches;
  matches.clear();
  RETURN_IF_ERROR(re.FindAll(text, matches));
  size_t prev = 0;
  for (const MatchSpan& m : matches) {
    if (prev != m.start) out.push_back({prev, m.start, false});
    out.push_back({m.start, m.end, true});
    prev = m.end;
  }
  if (prev != text.size()) out.push_back({prev, text.size(), false});
  return Status::Ok();
}

namespace {

// Segments where every character satisfying `pred` is its own match (tokenizers' Pattern for
// Fn(char) -> bool).
void CharSegments(std::string_view text, const std::function<bool(char32_t)>& pred,
                  std::vector<Segment>& out) {
  size_t last = 0, pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t cp = NextCodePoint(text, pos);
    if (pred(cp)) {
      if (last < start) out.push_back({last, start, false});
      out.push_back({start, pos, true});
      last = pos;
    }
  }
  if (pos > last) out.push_back({last, pos, false});
}

}  // namespace

void SplitPiece(const Piece& piece, const std::vector<Segment>& segments, SplitBehavior behavior,
                std::vector<Piece>& out) {
  // (start, end, remove)
  struct Part {
    size_t start, end;
    bool remove;
  };
  thread_local std::vector<Part> parts;
  parts.clear();
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Segment& s : segments) parts.push_back({s.start, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const Segment& s : segments) parts.push_back({s.start, s.end, s.is_match});
      break;
    case SplitBehavior::kContiguous:
      for (const Segment& s : segments) {
        if (s.is_match == previous_match && !parts.empty()) {
          parts.back().end = s.end;
        } else {
          parts.push_back({s.start, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Segment& s : segments) {
        if (s.is_match && !previous_match && !parts.empty()) {
          parts.back().end = s.end;
        } else {
          parts.push_back({s.start, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (size_t i = segments.size(); i-- > 0;) {
        const Segment& s = segments[i];
        if (s.is_match && !previous_match && !parts.empty()) {
          parts.back().start = s.start;
        } else {
          parts.push_back({s.start, s.end, false});
        }
        previous_match = s.is_match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
  }
  for (const Part& p : parts) {
    if (p.remove || p.start == p.end) continue;
    Piece np;
    np.text.assign(piece.text, p.start, p.end - p.start);
    np.at_origin = piece.at_origin && p.start == 0;
    out.push_back(std::move(np));
  }
}

namespace {

// Applies `fn` to every piece that is not a token, replacing it with what `fn` appends.
template <typename Fn>
Status ForEachPiece(std::vector<Piece>& pieces, Fn&& fn) {
  thread_local std::vector<Piece> out;
  out.clear();
  out.reserve(pieces.size() * 4);
  for (Piece& p : pieces) {
    if (p.token_id >= 0) {
      out.push_back(std::move(p));
      continue;
    }
    RETURN_IF_ERROR(fn(p, out));
  }
  pieces.swap(out);
  return Status::Ok();
}

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::optional<Regex> re)
      : add_prefix_space_(add_prefix_space), re_(std::move(re)) {}

  Status PreTokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_ || re_.has_value()) {
      RETURN_IF_ERROR(ForEachPiece(pieces, [&](Piece& p, std::vector<Piece>& out) -> Status {
        if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text = " " + p.text;
        if (!re_.has_value()) {
          out.push_back(std::move(p));
          return Status::Ok();
        }
        thread_local std::vector<Segment> segs;
        segs.clear();
        RETURN_IF_ERROR(RegexSegments(*re_, p.text, segs));
        SplitPiece(p, segs, SplitBehavior::kIsolated, out);
        return Status::Ok();
      }));
    }
    const auto& table = ByteToUnicodeTable();
    std::string mapped;
    for (Piece& p : pieces) {
      if (p.token_id >= 0) continue;
      mapped.clear();
      for (char c : p.text) mapped += table[static_cast<unsigned char>(c)];
      p.text.swap(mapped);
    }
    return Status::Ok();
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> re_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex re, SplitBehavior behavior, bool invert)
      : re_(std::move(re)), behavior_(behavior), invert_(invert) {}

  Status PreTokenize(std::vector<Piece>& pieces) const override {
    return ForEachPiece(pieces, [&](Piece& p, std::vector<Piece>& out) -> Status {
      thread_local std::vector<Segment> segs;
      segs.clear();
      RETURN_IF_ERROR(RegexSegments(re_, p.text, segs));
      if (invert_) {
        for (Segment& s : segs) s.is_match = !s.is_match;
      }
      SplitPiece(p, segs, behavior_, out);
      return Status::Ok();
    });
  }

 private:
  Regex re_;
  SplitBehavior behavior_;
  bool invert_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : scheme_(scheme), split_(split), replacement_(replacement) {
    AppendUtf8(replacement, rep_);
  }

  Status PreTokenize(std::vector<Piece>& pieces) const override {
    return ForEachPiece(pieces, [&](Piece& p, std::vector<Piece>& out) -> Status {
      std::string text;
      text.reserve(p.text.size() + rep_.size());
      for (char c : p.text) {
        if (c == ' ') {
          text += rep_;
        } else {
          text.push_back(c);
        }
      }
      const bool starts_with_rep = text.compare(0, rep_.size(), rep_) == 0;
      if (!starts_with_rep && (scheme_ == PrependScheme::kAlways ||
                               (scheme_ == PrependScheme::kFirst && p.at_origin))) {
        text = rep_ + text;
      }
      p.text = std::move(text);
      if (!split_) {
        if (!p.text.empty()) out.push_back(std::move(p));
        return Status::Ok();
      }
      thread_local std::vector<Segment> segs;
      segs.clear();
      CharSegments(p.text, [&](char32_t c) { return c == replacement_; }, segs);
      SplitPiece(p, segs, SplitBehavior::kMergedWithNext, out);
      return Status::Ok();
    });
  }

 private:
  PrependScheme scheme_;
  bool split_;
  char32_t replacement_;
  std::string rep_;
};

// Digits, WhitespaceSplit, Punctuation: a per-character predicate with a fixed behavior.
class CharPredicatePreTokenizer : public PreTokenizer {
 public:
  CharPredicatePreTokenizer(std::function<bool(char32_t)> pred, SplitBehavior behavior)
      : pred_(std::move(pred)), behavior_(behavior) {}

  Status PreTokenize(std::vector<Piece>& pieces) const override {
    return ForEachPiece(pieces, [&](Piece& p, std::vector<Piece>& out) -> Status {
      thread_local std::vector<Segment> segs;
      segs.clear();
      CharSegments(p.text, pred_, segs);
      SplitPiece(p, segs, behavior_, out);
      return Status::Ok();
    });
  }

 private:
  std::function<bool(char32_t)> pred_;
  SplitBehavior behavior_;
};

// Whitespace: the matches of `\w+|[^\w\s]+` (Rust regex semantics), whitespace dropped.
class WhitespacePreTokenizer : public PreTokenizer {
 public:
  Status PreTokenize(std::vector<Piece>& pieces) const override {
    return ForEachPiece(pieces, [&](Piece& p, std::vector<Piece>& out) -> Status {
      // 0 = whitespace, 1 = word, 2 = other
      auto kind = [](char32_t c) { return IsWordChar(c) ? 1 : IsWhitespace(c) ? 0 : 2; };
      size_t pos = 0;
      size_t run_start = 0;
      int run_kind = -1;
      auto flush = [&](size_t end) {
        if (run_kind > 0 && end > run_start) {
          Piece np;
          np.text.assign(p.text, run_start, end - run_start);
          np.at_origin = p.at_origin && run_start == 0;
          out.push_back(std::move(np));
        }
      };
      while (pos < p.text.size()) {
        const size_t start = pos;
        const int k = kind(NextCodePoint(p.text, pos));
        if (k != run_kind) {
          flush(start);
          run_start = start;
          run_kind = k;
        }
      }
      flush(p.text.size());
      return Status::Ok();
    });
  }
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  Status PreTokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) RETURN_IF_ERROR(p->PreTokenize(pieces));
    return Status::Ok();
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

bool IsPunctuation(char32_t c) {
  if (c < 0x80) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126);
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

Result<SplitBehavior> ParseBehavior(const Json& json, const std::string& path,
                                    SplitBehavior fallback) {
  const Json* v = FindField(json, "behavior");
  if (v == nullptr) return fallback;
  if (!v->is_string()) return FieldError(path + ".behavior", "expected a string");
  const std::string b = v->get<std::string>();
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return FieldError(path + ".behavior", "unknown split behavior '" + b + "'");
}

Result<char32_t> ParseSingleChar(const Json& json, const char* key, const std::string& path) {
  ASSIGN_OR_RETURN(std::string s, GetString(json, key, path));
  if (s.empty() || !IsValidUtf8(s)) return FieldError(JoinPath(path, key), "expected one character");
  size_t pos = 0;
  const char32_t c = NextCodePoint(s, pos);
  if (pos != s.size()) return FieldError(JoinPath(path, key), "expected one character");
  return c;
}

}  // namespace

Result<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const Json& json, const std::string& path) {
  ASSIGN_OR_RETURN(std::string type, GetType(json, path));
  if (type == "ByteLevel") {
    ASSIGN_OR_RETURN(bool add_prefix_space, GetBoolOr(json, "add_prefix_space", path, true));
    ASSIGN_OR_RETURN(bool use_regex, GetBoolOr(json, "use_regex", path, true));
    std::optional<Regex> re;
    if (use_regex) {
      ASSIGN_OR_RETURN(Regex compiled, Regex::Compile(kGpt2Pattern));
      re = std::move(compiled);
    }
    return std::unique_ptr<PreTokenizer>(new ByteLevelPreTokenizer(add_prefix_space, std::move(re)));
  }
  if (type == "Split") {
    const Json* pattern = FindField(json, "pattern");
    if (pattern == nullptr) return FieldError(path + ".pattern", "missing");
    ASSIGN_OR_RETURN(Regex re, ParsePattern(*pattern, path + ".pattern"));
    if (FindField(json, "behavior") == nullptr) return FieldError(path + ".behavior", "missing");
    ASSIGN_OR_RETURN(SplitBehavior behavior, ParseBehavior(json, path, SplitBehavior::kIsolated));
    ASSIGN_OR_RETURN(bool invert, GetBoolOr(json, "invert", path, false));
    return std::unique_ptr<PreTokenizer>(new SplitPreTokenizer(std::move(re), behavior, invert));
  }
  if (type == "Metaspace") {
    ASSIGN_OR_RETURN(char32_t replacement, ParseSingleChar(json, "replacement", path));
    PrependScheme scheme = PrependScheme::kAlways;
    if (const Json* ps = FindField(json, "prepend_scheme")) {
      const std::string s = ps->is_string() ? ps->get<std::string>() : "";
      if (s == "always") {
        scheme = PrependScheme::kAlways;
      } else if (s == "first") {
        scheme = PrependScheme::kFirst;
      } else if (s == "never") {
        scheme = PrependScheme::kNever;
      } else {
        return FieldError(path + ".prepend_scheme", "expected \"always\", \"first\" or \"never\"");
      }
    } else {
      // Files written before prepend_scheme existed carry add_prefix_space instead.
      ASSIGN_OR_RETURN(bool add_prefix_space, GetBoolOr(json, "add_prefix_space", path, true));
      scheme = add_prefix_space ? PrependScheme::kAlways : PrependScheme::kNever;
    }
    ASSIGN_OR_RETURN(bool split, GetBoolOr(json, "split", path, true));
    return std::unique_ptr<PreTokenizer>(new MetaspacePreTokenizer(replacement, scheme, split));
  }
  if (type == "Digits") {
    ASSIGN_OR_RETURN(bool individual, GetBoolOr(json, "individual_digits", path, false));
    return std::unique_ptr<PreTokenizer>(new CharPredicatePreTokenizer(
        IsNumeric, individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous));
  }
  if (type == "WhitespaceSplit") {
    return std::unique_ptr<PreTokenizer>(
        new CharPredicatePreTokenizer(IsWhitespace, SplitBehavior::kRemoved));
  }
  if (type == "Whitespace") return std::unique_ptr<PreTokenizer>(new WhitespacePreTokenizer());
  if (type == "Punctuation") {
    ASSIGN_OR_RETURN(SplitBehavior behavior, ParseBehavior(json, path, SplitBehavior::kIsolated));
    return std::unique_ptr<PreTokenizer>(new CharPredicatePreTokenizer(IsPunctuation, behavior));
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    parts.emplace_back(new CharPredicatePreTokenizer(IsWhitespace, SplitBehavior::kRemoved));
    parts.emplace_back(new CharPredicatePreTokenizer(IsPunctuation, SplitBehavior::kIsolated));
    return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(parts)));
  }
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, GetArray(json, "pretokenizers", path));
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list->size(); ++i) {
      ASSIGN_OR_RETURN(auto part, ParsePreTokenizer((*list)[i], path + ".pretokenizers[" +
                                                                    std::to_string(i) + "]"));
      parts.push_back(std::move(part));
    }
    return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(parts)));
  }
  return FieldError(path + ".type", "pre-tokenizer type '" + type + "' is not supported");
}

}  // namespace tandem::tokenizer
