#include "tokenizer/jinja_string.h"

#include <utf8proc.h>

#include <algorithm>

#include "tokenizer/jinja_value.h"

namespace tandem::jinja {

std::u32string DecodeUtf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {
      cp = 0xFFFD;
      n = 1;
    }
    out.push_back(static_cast<char32_t>(cp));
    p += n;
    left -= n;
  }
  return out;
}

void AppendUtf8(std::string& out, char32_t cp) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

std::string EncodeUtf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) AppendUtf8(out, cp);
  return out;
}

bool IsPySpace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
  return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
         c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

std::string PyStrip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  std::u32string u = DecodeUtf8(s);
  std::u32string set = chars ? DecodeUtf8(*chars) : std::u32string();
  auto strip = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : IsPySpace(c); };
  size_t b = 0, e = u.size();
  if (left) while (b < e && strip(u[b])) ++b;
  if (right) while (e > b && strip(u[e - 1])) --e;
  return EncodeUtf8(std::u32string_view(u).substr(b, e - b));
}

std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit, bool from_right) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) Fail("ValueError: empty separator");
    ChargeSearch(s.size(), sep->size());
    std::string_view rest = s;
    if (!from_right) {
      while (maxsplit != 0) {
        size_t at = rest.find(*sep);
        if (at == std::string_view::npos) break;
        CheckSeqSize(out.size() + 1);
        out.emplace_back(rest.substr(0, at));
        rest.remove_prefix(at + sep->size());
        if (maxsplit > 0) --maxsplit;
      }
      out.emplace_back(rest);
    } else {
      while (maxsplit != 0) {
        size_t at = rest.rfind(*sep);
        if (at == std::string_view::npos) break;
        CheckSeqSize(out.size() + 1);
        out.emplace_back(rest.substr(at + sep->size()));
        rest = rest.substr(0, at);
        if (maxsplit > 0) --maxsplit;
      }
      out.emplace_back(rest);
      std::reverse(out.begin(), out.end());
    }
    return out;
  }
  ChargeBytes(s.size());
  std::u32string u = DecodeUtf8(s);
  if (!from_right) {
    size_t i = 0, n = u.size();
    while (true) {
      while (i < n && IsPySpace(u[i])) ++i;
      if (i == n) break;
      if (maxsplit == 0) {
        size_t e = n;
        out.push_back(EncodeUtf8(std::u32string_view(u).substr(i, e - i)));
        break;
      }
      size_t j = i;
      while (j < n && !IsPySpace(u[j])) ++j;
      CheckSeqSize(out.size() + 1);
      out.push_back(EncodeUtf8(std::u32string_view(u).substr(i, j - i)));
      if (maxsplit > 0) --maxsplit;
      i = j;
    }
  } else {
    size_t e = u.size();
    while (true) {
      while (e > 0 && IsPySpace(u[e - 1])) --e;
      if (e == 0) break;
      if (maxsplit == 0) {
        out.push_back(EncodeUtf8(std::u32string_view(u).substr(0, e)));
        break;
      }
      size_t b = e;
      while (b > 0 && !IsPySpace(u[b - 1])) --b;
      CheckSeqSize(out.size() + 1);
      out.push_back(EncodeUtf8(std::u32string_view(u).substr(b, e - b)));
      if (maxsplit > 0) --maxsplit;
      e = b;
    }
    std::reverse(out.begin(), out.end());
  }
  return out;
}

std::vector<std::string> PySplitLines(std::string_view s) {
  std::u32string u = DecodeUtf8(s);
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  auto is_break = [](char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e ||
           c == 0x85 || c == 0x2028 || c == 0x2029;
  };
  while (i < u.size()) {
    if (is_break(u[i])) {
      out.push_back(EncodeUtf8(std::u32string_view(u).substr(start, i - start)));
      if (u[i] == '\r' && i + 1 < u.size() && u[i + 1] == '\n') ++i;
      start = ++i;
    } else {
      ++i;
    }
  }
  if (start < u.size()) out.push_back(EncodeUtf8(std::u32string_view(u).substr(start)));
  return out;
}

namespace {

char32_t Upper(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
char32_t Lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}
char32_t TitleCase(char32_t c) {
  if (c < 0x80) return Upper(c);
  return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}
bool IsCased(char32_t c) {
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}
bool IsPrintable(char32_t c) {
  if (c < 0x80) return c >= 0x20 && c < 0x7f;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

template <typename F>
std::string MapChars(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : DecodeUtf8(s)) AppendUtf8(out, f(c));
  return out;
}

}  // namespace

std::string PyUpper(std::string_view s) { return MapChars(s, Upper); }
std::string PyLower(std::string_view s) { return MapChars(s, Lower); }

std::string PyTitle(std::string_view s) {
  bool prev_cased = false;
  return MapChars(s, [&](char32_t c) {
    char32_t r = prev_cased ? Lower(c) : TitleCase(c);
    prev_cased = IsCased(c);
    return r;
  });
}

std::string PyCapitalize(std::string_view s) {
  bool first = true;
  return MapChars(s, [&](char32_t c) {
    char32_t r = first ? TitleCase(c) : Lower(c);
    first = false;
    return r;
  });
}

std::string JinjaTitle(std::string_view s) {
  bool at_start = true;
  return MapChars(s, [&](char32_t c) {
    if (c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || IsPySpace(c)) {
      at_start = true;
      return c;
    }
    char32_t r = at_start ? Upper(c) : Lower(c);
    at_start = false;
    return r;
  });
}

std::string PyReplace(std::string_view s, std::string_view old, std::string_view repl, int64_t count) {
  std::string out;
  ChargeSearch(s.size(), old.size());
  if (old.empty()) {
    std::u32string u = DecodeUtf8(s);
    for (size_t i = 0; i <= u.size(); ++i) {
      if (count != 0) {
        CheckStringSize(out.size() + repl.size());
        ChargeBytes(repl.size());
        out.append(repl);
        if (count > 0) --count;
      }
      if (i < u.size()) AppendUtf8(out, u[i]);
    }
    return out;
  }
  size_t pos = 0;
  while (count != 0) {
    size_t at = s.find(old, pos);
    if (at == std::string_view::npos) break;
    CheckStringSize(out.size() + (at - pos) + repl.size());
    ChargeBytes(repl.size());
    out.append(s.substr(pos, at - pos));
    out.append(repl);
    pos = at + old.size();
    if (count > 0) --count;
  }
  out.append(s.substr(pos));
  return out;
}

int64_t PyCount(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(DecodeUtf8(s).size()) + 1;
  ChargeSearch(s.size(), sub.size());
  int64_t n = 0;
  for (size_t at = s.find(sub); at != std::string_view::npos; at = s.find(sub, at + sub.size())) ++n;
  return n;
}

int64_t PyFind(std::string_view s, std::string_view sub, bool from_right) {
  ChargeSearch(s.size(), sub.size());
  size_t at = from_right ? s.rfind(sub) : s.find(sub);
  if (at == std::string_view::npos) return -1;
  return static_cast<int64_t>(DecodeUtf8(s.substr(0, at)).size());
}

std::string PyStrRepr(std::string_view s) {
  char quote = '\'';
  if (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) quote = '"';
  std::string out(1, quote);
  char buf[16];
  for (char32_t c : DecodeUtf8(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (IsPrintable(c)) {
      AppendUtf8(out, c);
    } else {
      if (c <= 0xff) snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      else if (c <= 0xffff) snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      else snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    }
  }
  out += quote;
  return out;
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace tandem::jinja
