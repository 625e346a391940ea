#include "tokenizer/normalizer.h"

#include <cstdlib>
#include <vector>

#include <utf8proc.h>

#include "tokenizer/regex.h"
#include "tokenizer/unicode_util.h"

namespace tandem::tokenizer {
namespace {

bool IsAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  Status Normalize(std::string& text) const override {
    if (IsAscii(text)) return Status::Ok();  // every normal form of ASCII is itself
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                     static_cast<utf8proc_ssize_t>(text.size()), &out,
                     static_cast<utf8proc_option_t>(options_));
    if (n < 0) return InvalidArgumentError(std::string("unicode normalization failed: ") +
                                           utf8proc_errmsg(n));
    text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);
    return Status::Ok();
  }

 private:
  int options_;
};

// Rust's char::to_lowercase without context: the simple mapping, except U+0130 whose full
// lowercase is two code points.
class Lowercase : public Normalizer {
 public:
  Status Normalize(std::string& text) const override {
    if (IsAscii(text)) {
      for (char& c : text) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      return Status::Ok();
    }
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
      const char32_t cp = NextCodePoint(text, pos);
      if (cp == 0x130) {
        out += "i\xCC\x87";
        continue;
      }
      AppendUtf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))), out);
    }
    text = std::move(out);
    return Status::Ok();
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  Status Normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t p = begin;
        if (!IsWhitespace(NextCodePoint(text, p))) break;
        begin = p;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t p = start;
        if (!IsWhitespace(NextCodePoint(text, p))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
    return Status::Ok();
  }

 private:
  bool left_, right_;
};

class StripAccents : public Normalizer {
 public:
  Status Normalize(std::string& text) const override {
    if (IsAscii(text)) return Status::Ok();
    std::string out;
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t start = pos;
      const char32_t cp = NextCodePoint(text, pos);
      // The reference drops every combining mark (Mn, Mc, Me), not only non-spacing ones.
      const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
      if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC ||
          cat == UTF8PROC_CATEGORY_ME) {
        continue;
      }
      out.append(text, start, pos - start);
    }
    text = std::move(out);
    return Status::Ok();
  }
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  Status Normalize(std::string& text) const override {
    if (!text.empty()) text = prefix_ + text;
    return Status::Ok();
  }

 private:
  std::string prefix_;
};

class Replace : public Normalizer {
 public:
  Replace(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  Status Normalize(std::string& text) const override {
    std::vector<MatchSpan> matches;
    RETURN_IF_ERROR(pattern_.FindAll(text, matches));
    if (matches.empty()) return Status::Ok();
    std::string out;
    out.reserve(text.size());
    size_t last = 0;
    for (const MatchSpan& m : matches) {
      out.append(text, last, m.start - last);
      out += content_;
      last = m.end;
    }
    out.append(text, last, std::string::npos);
    text = std::move(out);
    return Status::Ok();
  }

 private:
  Regex pattern_;
  std::string content_;
};

class ByteLevelNormalizer : public Normalizer {
 public:
  Status Normalize(std::string& text) const override {
    const auto& table = ByteToUnicodeTable();
    std::string out;
    out.reserve(text.size() * 2);
    for (char c : text) out += table[static_cast<unsigned char>(c)];
    text = std::move(out);
    return Status::Ok();
  }
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  Status Normalize(std::string& text) const override {
    for (const auto& p : parts_) RETURN_IF_ERROR(p->Normalize(text));
    return Status::Ok();
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

// Pattern of Replace / Split: {"String": "..."} (a literal) or {"Regex": "..."}.
Result<Regex> ParsePattern(const Json& json, const std::string& path) {
  if (!json.is_object()) return FieldError(path, "expected {\"String\": ...} or {\"Regex\": ...}");
  if (const Json* s = FindField(json, "String")) {
    if (!s->is_string()) return FieldError(path + ".String", "expected a string");
    return Regex::Literal(s->get<std::string>());
  }
  if (const Json* r = FindField(json, "Regex")) {
    if (!r->is_string()) return FieldError(path + ".Regex", "expected a string");
    auto re = Regex::Compile(r->get<std::string>());
    if (!re.ok()) return re.status().WithContext(path + ".Regex");
    return re;
  }
  return FieldError(path, "expected {\"String\": ...} or {\"Regex\": ...}");
}

Result<std::unique_ptr<Normalizer>> ParseNormalizer(const Json& json, const std::string& path) {
  ASSIGN_OR_RETURN(std::string type, GetType(json, path));
  if (type == "NFC") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (type == "NFD") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
  if (type == "NFKC") {
    return std::unique_ptr<Normalizer>(
        new UnicodeNormalizer(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  }
  if (type == "NFKD") {
    return std::unique_ptr<Normalizer>(
        new UnicodeNormalizer(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  }
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new Lowercase());
  if (type == "StripAccents") return std::unique_ptr<Normalizer>(new StripAccents());
  if (type == "ByteLevel") return std::unique_ptr<Normalizer>(new ByteLevelNormalizer());
  if (type == "Strip") {
    ASSIGN_OR_RETURN(bool left, GetBoolOr(json, "strip_left", path, true));
    ASSIGN_OR_RETURN(bool right, GetBoolOr(json, "strip_right", path, true));
    return std::unique_ptr<Normalizer>(new Strip(left, right));
  }
  if (type == "Prepend") {
    ASSIGN_OR_RETURN(std::string prefix, GetString(json, "prepend", path));
    return std::unique_ptr<Normalizer>(new Prepend(std::move(prefix)));
  }
  if (type == "Replace") {
    const Json* pattern = FindField(json, "pattern");
    if (pattern == nullptr) return FieldError(path + ".pattern", "missing");
    ASSIGN_OR_RETURN(Regex re, ParsePattern(*pattern, path + ".pattern"));
    ASSIGN_OR_RETURN(std::string content, GetString(json, "content", path));
    return std::unique_ptr<Normalizer>(new Replace(std::move(re), std::move(content)));
  }
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, GetArray(json, "normalizers", path));
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < list->size(); ++i) {
      ASSIGN_OR_RETURN(auto part, ParseNormalizer((*list)[i], path + ".normalizers[" +
                                                                  std::to_string(i) + "]"));
      parts.push_back(std::move(part));
    }
    return std::unique_ptr<Normalizer>(new SequenceNormalizer(std::move(parts)));
  }
  return FieldError(path + ".type", "normalizer type '" + type + "' is not supported");
}

}  // namespace tandem::tokenizer
