#include "tokenizer/decoder.h"

#include "tokenizer/normalizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode_util.h"

namespace tandem::tokenizer {
namespace {

// Byte-level symbols back to bytes; a token with a character outside the map keeps its UTF-8.
// The bytes of all tokens are then decoded lossily (one U+FFFD per maximal invalid subpart).
class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) {
      const size_t mark = bytes.size();
      size_t pos = 0;
      bool ok = true;
      while (pos < t.size()) {
        const int b = UnicodeToByte(NextCodePoint(t, pos));
        if (b < 0) {
          ok = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!ok) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens.assign(1, SanitizeUtf8(bytes));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool strip_first)
      : replacement_(replacement), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string& t = tokens[i];
      std::string out;
      out.reserve(t.size());
      size_t pos = 0;
      while (pos < t.size()) {
        const size_t start = pos;
        const char32_t cp = NextCodePoint(t, pos);
        if (cp == replacement_) {
          // The reference drops every replacement character of the first token.
          if (!(i == 0 && strip_first_)) out.push_back(' ');
        } else {
          out.append(t, start, pos - start);
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  bool strip_first_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::vector<MatchSpan> matches;
    for (std::string& t : tokens) {
      matches.clear();
      // Matching only fails on PCRE2 resource limits; the token is then left unchanged.
      if (!pattern_.FindAll(t, matches).ok() || matches.empty()) continue;
      std::string out;
      size_t last = 0;
      for (const MatchSpan& m : matches) {
        out.append(t, last, m.start - last);
        out += content_;
        last = m.end;
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  Regex pattern_;
  std::string content_;
};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<0xAB>" -> 0xAB; -1 otherwise. Mirrors u8::from_str_radix(&token[3..5], 16), which also
// accepts a leading '+'.
int ParseByteToken(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  if (t[3] == '+') return HexValue(t[4]);
  const int hi = HexValue(t[3]), lo = HexValue(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (IsValidUtf8(pending)) {
        out.push_back(pending);
      } else {
        // One U+FFFD per byte, not per maximal subpart: the reference's choice.
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back(kReplacementUtf8);
      }
      pending.clear();
    };
    for (std::string& t : tokens) {
      const int byte = ParseByteToken(t);
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::vector<size_t> starts;  // byte offset of each code point
      size_t pos = 0;
      std::vector<char32_t> cps;
      while (pos < t.size()) {
        starts.push_back(pos);
        cps.push_back(NextCodePoint(t, pos));
      }
      starts.push_back(t.size());
      size_t start_cut = 0;
      for (size_t i = 0; i < std::min(start_, cps.size()); ++i) {
        if (cps[i] != content_) break;
        start_cut = i + 1;
      }
      size_t stop_cut = cps.size();
      for (size_t i = 0; i < std::min(stop_, cps.size()); ++i) {
        const size_t index = cps.size() - i - 1;
        if (cps[index] != content_) break;
        stop_cut = index;
      }
      if (stop_cut < start_cut) stop_cut = start_cut;
      t = t.substr(starts[start_cut], starts[stop_cut] - starts[start_cut]);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class BpeSuffixDecoder : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string replacement = i + 1 == tokens.size() ? "" : " ";
      std::string& t = tokens[i];
      if (suffix_.empty()) continue;
      std::string out;
      size_t last = 0, pos;
      while ((pos = t.find(suffix_, last)) != std::string::npos) {
        out.append(t, last, pos - last);
        out += replacement;
        last = pos + suffix_.size();
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

Result<char32_t> SingleChar(const Json& json, const char* key, const std::string& path) {
  ASSIGN_OR_RETURN(std::string s, GetString(json, key, path));
  size_t pos = 0;
  if (s.empty() || !IsValidUtf8(s)) return FieldError(JoinPath(path, key), "expected one character");
  const char32_t c = NextCodePoint(s, pos);
  if (pos != s.size()) return FieldError(JoinPath(path, key), "expected one character");
  return c;
}

Result<size_t> NonNegative(const Json& json, const char* key, const std::string& path) {
  ASSIGN_OR_RETURN(int64_t v, GetIntOr(json, key, path, 0));
  if (v < 0) return FieldError(JoinPath(path, key), "expected a non-negative integer");
  return static_cast<size_t>(v);
}

}  // namespace

Result<std::unique_ptr<Decoder>> ParseDecoder(const Json& json, const std::string& path) {
  ASSIGN_OR_RETURN(std::string type, GetType(json, path));
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder());
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
  if (type == "Metaspace") {
    ASSIGN_OR_RETURN(char32_t replacement, SingleChar(json, "replacement", path));
    bool strip_first = true;
    if (const Json* ps = FindField(json, "prepend_scheme")) {
      if (!ps->is_string()) return FieldError(path + ".prepend_scheme", "expected a string");
      const std::string s = ps->get<std::string>();
      if (s != "always" && s != "first" && s != "never") {
        return FieldError(path + ".prepend_scheme", "expected \"always\", \"first\" or \"never\"");
      }
      strip_first = s != "never";
    } else {
      ASSIGN_OR_RETURN(strip_first, GetBoolOr(json, "add_prefix_space", path, true));
    }
    return std::unique_ptr<Decoder>(new MetaspaceDecoder(replacement, strip_first));
  }
  if (type == "Replace") {
    const Json* pattern = FindField(json, "pattern");
    if (pattern == nullptr) return FieldError(path + ".pattern", "missing");
    ASSIGN_OR_RETURN(Regex re, ParsePattern(*pattern, path + ".pattern"));
    ASSIGN_OR_RETURN(std::string content, GetString(json, "content", path));
    return std::unique_ptr<Decoder>(new ReplaceDecoder(std::move(re), std::move(content)));
  }
  if (type == "Strip") {
    ASSIGN_OR_RETURN(char32_t content, SingleChar(json, "content", path));
    ASSIGN_OR_RETURN(size_t start, NonNegative(json, "start", path));
    ASSIGN_OR_RETURN(size_t stop, NonNegative(json, "stop", path));
    return std::unique_ptr<Decoder>(new StripDecoder(content, start, stop));
  }
  if (type == "BPEDecoder") {
    ASSIGN_OR_RETURN(std::string suffix, GetStringOr(json, "suffix", path, "</w>"));
    return std::unique_ptr<Decoder>(new BpeSuffixDecoder(std::move(suffix)));
  }
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, GetArray(json, "decoders", path));
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list->size(); ++i) {
      ASSIGN_OR_RETURN(auto part,
                       ParseDecoder((*list)[i], path + ".decoders[" + std::to_string(i) + "]"));
      parts.push_back(std::move(part));
    }
    return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(parts)));
  }
  return FieldError(path + ".type", "decoder type '" + type + "' is not supported");
}

}  // namespace tandem::tokenizer
