// A compiled PCRE2 regex (UTF + UCP, JIT when available) that iterates matches the way the
// reference `tokenizers` does with Oniguruma (Ruby syntax), so that Split / Replace agree with it.
//
// Syntax differences between Oniguruma (Ruby syntax) and PCRE2 that we translate:
//   - `^` and `$` are line anchors in Ruby syntax: compiled with PCRE2_MULTILINE.
//   - inline flag `m` means "dot matches newline" in Ruby: rewritten to PCRE2's `s`.
//   - `\h` is a hex digit in Oniguruma (horizontal space in PCRE2): rewritten to [0-9a-fA-F].
// Everything the real tokenizer.json files use (\p{L}, \p{N}, (?i:...), (?!\S), possessive and
// lazy quantifiers) has the same meaning in both.
//
// Thread-safety: a Regex is immutable after Compile; FindAll may be called from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace tandem::tokenizer {

struct MatchSpan {
  size_t start;
  size_t end;
};

class Regex {
 public:
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // Compiles `pattern` (Oniguruma syntax, translated as above). The error names the PCRE2
  // message and the offset in the original pattern.
  static Result<Regex> Compile(std::string_view pattern);
  // A regex matching `literal` exactly.
  static Result<Regex> Literal(std::string_view literal);

  // Appends every match in `subject` to `out`, iterating like rust-onig's find_iter: an empty
  // match right where the previous match ended is skipped by advancing one character.
  // REQUIRES: `subject` is valid UTF-8.
  Status FindAll(std::string_view subject, std::vector<MatchSpan>& out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

// Oniguruma -> PCRE2 syntax rewrite described above (exposed for tests).
std::string TranslateOnigPattern(std::string_view pattern);

// Escapes every regex metacharacter of `literal`.
std::string EscapeRegex(std::string_view literal);

}  // namespace tandem::tokenizer
