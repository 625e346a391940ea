#include "tokenizer/jinja_lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>

#include <utf8proc.h>

#include "tokenizer/jinja_string.h"
#include "tokenizer/jinja_value.h"

namespace tandem::jinja {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }

class Lexer {
 public:
  explicit Lexer(const std::string& source) {
    // jinja2 reads \r\n and \r as \n and, without keep_trailing_newline, drops one final \n.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> Run() {
    const size_t n = src_.size();
    while (pos_ < n) {
      size_t p = FindOpen(pos_);
      if (p == std::string::npos) {
        EmitText(src_.substr(pos_), pos_);
        break;
      }
      const char kind = src_[p + 1];
      size_t q = p + 2;
      char sign = 0;
      if (q < n && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      std::optional<size_t> raw_end;
      if (kind == '%') raw_end = MatchRawBegin(q);
      EmitText(StripBeforeTag(src_.substr(pos_, p - pos_), sign, kind != '{'), pos_);
      if (raw_end) {
        LexRaw(*raw_end, p);
      } else if (kind == '#') {
        LexComment(q, p);
      } else {
        Emit(kind == '{' ? Token::Kind::kVarBegin : Token::Kind::kBlockBegin, "", p);
        pos_ = q;
        LexTag(kind == '%', p);
      }
    }
    Emit(Token::Kind::kEof, "", src_.size());
    return std::move(out_);
  }

 private:
  void Loc(size_t off, int& line, int& col) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), off);
    line = static_cast<int>(it - line_starts_.begin());
    col = static_cast<int>(off - *(it - 1)) + 1;
  }

  [[noreturn]] void Error(size_t off, const std::string& msg) const {
    JinjaError e(msg);
    Loc(off, e.line, e.col);
    throw e;
  }

  Token& Emit(Token::Kind kind, std::string text, size_t off) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    Loc(off, t.line, t.col);
    out_.push_back(std::move(t));
    return out_.back();
  }

  void EmitText(std::string text, size_t off) {
    if (!text.empty()) Emit(Token::Kind::kText, std::move(text), off);
  }

  bool At(size_t p, std::string_view s) const { return src_.compare(p, s.size(), s) == 0; }

  // Byte length of the Python-whitespace code point at p, or 0.
  size_t SpaceLen(size_t p) const {
    if (p >= src_.size()) return 0;
    auto c = static_cast<unsigned char>(src_[p]);
    if (c < 0x80) return IsPySpace(c) ? 1 : 0;
    utf8proc_int32_t cp = 0;
    auto len = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(src_.data() + p),
                                static_cast<utf8proc_ssize_t>(src_.size() - p), &cp);
    return len > 0 && IsPySpace(static_cast<char32_t>(cp)) ? static_cast<size_t>(len) : 0;
  }
  size_t SkipSpaces(size_t p) const {
    while (size_t l = SpaceLen(p)) p += l;
    return p;
  }

  size_t FindOpen(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) return p;
    }
    return std::string::npos;
  }

  // `text` precedes a tag opened with modifier `sign`: '-' strips all whitespace before it;
  // lstrip_blocks strips the spaces between the line start and a block or comment tag.
  std::string StripBeforeTag(std::string text, char sign, bool block_or_comment) const {
    if (sign == '-') return PyStrip(text, std::nullopt, false, true);
    if (sign == '+' || !block_or_comment) return text;
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting_) return text;
    if (l_pos == text.size()) return text;
    size_t p = l_pos;
    while (p < text.size()) {
      auto c = static_cast<unsigned char>(text[p]);
      size_t len = 1;
      if (c >= 0x80) {
        utf8proc_int32_t cp = 0;
        auto l = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + p),
                                  static_cast<utf8proc_ssize_t>(text.size() - p), &cp);
        if (l <= 0 || !IsPySpace(static_cast<char32_t>(cp))) return text;
        len = static_cast<size_t>(l);
      } else if (!IsPySpace(c)) {
        return text;
      }
      p += len;
    }
    return text.substr(0, l_pos);
  }

  // After "{%" and its modifier: "\s*raw\s*(-%}\s*|%})"; returns the end offset.
  std::optional<size_t> MatchRawBegin(size_t q) const {
    size_t r = SkipSpaces(q);
    if (!At(r, "raw")) return std::nullopt;
    r = SkipSpaces(r + 3);
    if (At(r, "-%}")) return SkipSpaces(r + 3);
    if (At(r, "%}")) return r + 2;
    return std::nullopt;
  }

  void LexRaw(size_t start, size_t open_off) {
    line_starting_ = src_[start - 1] == '\n';
    for (size_t e = src_.find("{%", start); e != std::string::npos; e = src_.find("{%", e + 1)) {
      size_t r = e + 2;
      char sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) sign = src_[r++];
      r = SkipSpaces(r);
      if (!At(r, "endraw")) continue;
      r = SkipSpaces(r + 6);
      size_t end;
      if (At(r, "+%}")) {
        end = r + 3;
      } else if (At(r, "-%}")) {
        end = SkipSpaces(r + 3);
      } else if (At(r, "%}")) {
        end = r + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      } else {
        continue;
      }
      EmitText(StripBeforeTag(src_.substr(start, e - start), sign, true), start);
      pos_ = end;
      line_starting_ = src_[end - 1] == '\n';
      return;
    }
    Error(open_off, "missing end of raw directive ({% endraw %})");
  }

  void LexComment(size_t q, size_t open_off) {
    size_t k = src_.find("#}", q);
    if (k == std::string::npos) Error(open_off, "missing end of comment tag '#}'");
    if (k > q && src_[k - 1] == '-') {
      pos_ = SkipSpaces(k + 2);
    } else if (k > q && src_[k - 1] == '+') {
      pos_ = k + 2;
    } else {
      pos_ = k + 2;
      if (pos_ < src_.size() && src_[pos_] == '\n') ++pos_;
    }
    line_starting_ = src_[pos_ - 1] == '\n';
  }

  void LexTag(bool block, size_t open_off) {
    std::vector<char> balance;
    const size_t n = src_.size();
    while (true) {
      if (pos_ >= n) Error(open_off, block ? "unclosed block tag '{%' (missing '%}')" : "unclosed '{{' (missing '}}')");
      if (balance.empty()) {
        size_t end = 0;
        if (block) {
          if (At(pos_, "+%}")) {
            end = pos_ + 3;
          } else if (At(pos_, "-%}")) {
            end = SkipSpaces(pos_ + 3);
          } else if (At(pos_, "%}")) {
            end = pos_ + 2;
            if (end < n && src_[end] == '\n') ++end;  // trim_blocks
          }
        } else {
          if (At(pos_, "-}}")) end = SkipSpaces(pos_ + 3);
          else if (At(pos_, "}}")) end = pos_ + 2;
        }
        if (end) {
          Emit(block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, "", pos_);
          pos_ = end;
          line_starting_ = src_[end - 1] == '\n';
          return;
        }
      }
      if (size_t sp = SkipSpaces(pos_); sp != pos_) {
        pos_ = sp;
        continue;
      }
      const char c = src_[pos_];
      if (IsDigit(c)) {
        LexNumber();
      } else if (IsNameStart(c)) {
        size_t e = pos_;
        while (e < n && IsNameChar(src_[e])) ++e;
        Emit(Token::Kind::kName, src_.substr(pos_, e - pos_), pos_);
        pos_ = e;
      } else if (c == '\'' || c == '"') {
        LexString();
      } else {
        LexOperator(balance);
      }
    }
  }

  size_t ScanDigits(size_t p) const {  // (\d+_)*\d+
    if (p >= src_.size() || !IsDigit(src_[p])) return p;
    size_t e = p;
    while (true) {
      while (e < src_.size() && IsDigit(src_[e])) ++e;
      if (e + 1 < src_.size() && src_[e] == '_' && IsDigit(src_[e + 1])) {
        ++e;
        continue;
      }
      return e;
    }
  }

  void LexNumber() {
    const size_t s = pos_;
    size_t e = ScanDigits(s);
    bool is_float = false;
    if (!(s > 0 && src_[s - 1] == '.')) {
      size_t f = e;
      if (f + 1 < src_.size() && src_[f] == '.' && IsDigit(src_[f + 1])) {
        f = ScanDigits(f + 1);
        is_float = true;
      }
      if (f < src_.size() && (src_[f] == 'e' || src_[f] == 'E')) {
        size_t x = f + 1;
        if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
        if (x < src_.size() && IsDigit(src_[x])) {
          f = ScanDigits(x);
          is_float = true;
        }
      }
      if (is_float) e = f;
    }
    std::string text = src_.substr(s, e - s);
    text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
    errno = 0;
    if (is_float) {
      Emit(Token::Kind::kFloat, text, s).float_value = std::strtod(text.c_str(), nullptr);
      pos_ = e;
      return;
    }
    int base = 10;
    if (src_[s] == '0' && s + 1 < src_.size() && std::string_view("bBoOxX").find(src_[s + 1]) != std::string::npos) {
      char b = static_cast<char>(src_[s + 1] | 0x20);
      base = b == 'b' ? 2 : (b == 'o' ? 8 : 16);
      e = s + 2;
      while (e < src_.size() && (std::isxdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
      text = src_.substr(s + 2, e - s - 2);
      text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
    } else if (text.size() > 1 && text[0] == '0' && text.find_first_not_of('0') != std::string::npos) {
      Error(s, "invalid integer literal '" + text + "' (leading zeros)");
    }
    char* endp = nullptr;
    long long v = std::strtoll(text.c_str(), &endp, base);
    if (text.empty() || *endp != '\0') Error(s, "invalid integer literal");
    if (errno == ERANGE) Error(s, "integer literal out of 64-bit range");
    Emit(Token::Kind::kInt, src_.substr(s, e - s), s).int_value = v;
    pos_ = e;
  }

  void LexString() {
    const size_t s = pos_;
    const char quote = src_[s];
    size_t p = s + 1;
    std::string out;
    auto hex = [&](size_t at, int digits) -> uint32_t {
      if (at + static_cast<size_t>(digits) > src_.size()) Error(at, "truncated escape in string literal");
      uint32_t v = 0;
      for (int i = 0; i < digits; ++i) {
        char h = src_[at + static_cast<size_t>(i)];
        if (!std::isxdigit(static_cast<unsigned char>(h))) Error(at, "truncated escape in string literal");
        v = v * 16 + static_cast<uint32_t>(IsDigit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
      }
      return v;
    };
    while (true) {
      if (p >= src_.size()) Error(s, "unterminated string literal");
      char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) Error(s, "unterminated string literal");
      char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case '\n': break;  // line continuation
        case 'x': AppendUtf8(out, hex(p, 2)); p += 2; break;
        case 'u': AppendUtf8(out, hex(p, 4)); p += 4; break;
        case 'U': {
          uint32_t v = hex(p, 8);
          if (v > 0x10FFFF) Error(p, "illegal Unicode character in \\U escape");
          AppendUtf8(out, v);
          p += 8;
          break;
        }
        case 'N': Error(p - 2, "\\N{...} escapes are not supported");
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++i) {
              v = v * 8 + static_cast<uint32_t>(src_[p++] - '0');
            }
            AppendUtf8(out, v);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    Emit(Token::Kind::kString, std::move(out), s);
    pos_ = p + 1;
  }

  void LexOperator(std::vector<char>& balance) {
    static const char* kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kTwo) {
      if (At(pos_, op)) {
        Emit(Token::Kind::kOp, op, pos_);
        pos_ += 2;
        return;
      }
    }
    const char c = src_[pos_];
    if (std::string_view("+-/*%~[](){}<>=.:|,;").find(c) == std::string_view::npos) {
      Error(pos_, std::string("unexpected character '") + c + "' in tag");
    }
    if (c == '(' || c == '[' || c == '{') {
      balance.push_back(c == '(' ? ')' : (c == '[' ? ']' : '}'));
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) Error(pos_, std::string("unexpected '") + c + "'");
      if (balance.back() != c) Error(pos_, std::string("unexpected '") + c + "', expected '" + balance.back() + "'");
      balance.pop_back();
    }
    Emit(Token::Kind::kOp, std::string(1, c), pos_);
    ++pos_;
  }

  std::string src_;
  size_t pos_ = 0;
  bool line_starting_ = true;  // the previous match ended with a newline (jinja2's line_starting)
  std::vector<size_t> line_starts_;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> Tokenize(const std::string& source) { return Lexer(source).Run(); }

}  // namespace tandem::jinja
