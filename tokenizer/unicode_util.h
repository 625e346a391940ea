// UTF-8 and Unicode helpers shared by the tokenizer stages. All of them work on UTF-8 std::string
// / std::string_view; code points are char32_t.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::tokenizer {

inline constexpr char32_t kReplacementChar = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// Appends the UTF-8 encoding of `cp` to `out`.
void AppendUtf8(char32_t cp, std::string& out);

// Decodes the code point starting at `s[pos]` and advances `pos`.
// REQUIRES: `s` is valid UTF-8 and pos < s.size().
char32_t NextCodePoint(std::string_view s, size_t& pos);

// Length in bytes of the UTF-8 sequence whose lead byte is `lead` (1 for continuation bytes).
inline size_t Utf8SeqLen(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// True if `s` is well-formed UTF-8 (no surrogates, no overlongs, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Replaces every maximal ill-formed subsequence by U+FFFD, exactly as Python's
// bytes.decode("utf-8", errors="replace") and Rust's String::from_utf8_lossy do (Unicode's
// "substitution of maximal subparts"). Valid input is returned unchanged.
std::string SanitizeUtf8(std::string_view s);

// Unicode properties as Rust's char methods / regex crate define them.
bool IsWhitespace(char32_t cp);  // char::is_whitespace (White_Space)
bool IsNumeric(char32_t cp);     // char::is_numeric (Nd, Nl, No)
bool IsWordChar(char32_t cp);    // regex \w (Alphabetic, M, Nd, Pc, Join_Control)

// The GPT-2 byte <-> unicode map used by byte-level BPE: printable bytes map to themselves,
// the others to U+0100 and up. Each entry of the forward table is the UTF-8 of the mapped char.
const std::array<std::string, 256>& ByteToUnicodeTable();
// Code point -> byte, or -1 if the code point is not in the map.
int UnicodeToByte(char32_t cp);

}  // namespace tandem::tokenizer
