// Python str semantics over UTF-8: code-point indexing, Unicode whitespace, case mapping,
// repr(). Chat templates slice, strip and split message text, so these must agree with
// CPython on every code point a user can send, not just ASCII.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::jinja {

// Invalid UTF-8 bytes decode to U+FFFD so that a bad byte never desynchronises indexing.
std::u32string DecodeUtf8(std::string_view s);
std::string EncodeUtf8(std::u32string_view s);
void AppendUtf8(std::string& out, char32_t cp);

bool IsPySpace(char32_t cp);  // str.isspace()

// str.strip / lstrip / rstrip; `chars` empty optional means whitespace.
std::string PyStrip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split(sep=None, maxsplit=-1) and str.rsplit.
std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit, bool from_right = false);
// str.splitlines() (without keepends).
std::vector<std::string> PySplitLines(std::string_view s);
std::string PyUpper(std::string_view s);
std::string PyLower(std::string_view s);
std::string PyTitle(std::string_view s);       // str.title()
std::string PyCapitalize(std::string_view s);  // str.capitalize()
std::string JinjaTitle(std::string_view s);    // the |title filter (splits on [-\s({\[<]+)
std::string PyReplace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
int64_t PyCount(std::string_view s, std::string_view sub);
int64_t PyFind(std::string_view s, std::string_view sub, bool from_right);  // code-point index or -1
std::string PyStrRepr(std::string_view s);  // repr(str)
std::string HtmlEscape(std::string_view s);  // markupsafe.escape
bool StartsWith(std::string_view s, std::string_view prefix);
bool EndsWith(std::string_view s, std::string_view suffix);

}  // namespace tandem::jinja
