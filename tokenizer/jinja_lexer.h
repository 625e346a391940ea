// Tokenizer for Jinja templates with jinja2's whitespace rules exactly as transformers
// configures them: trim_blocks=True (the first newline after %} or #} is dropped),
// lstrip_blocks=True (spaces and tabs from the start of a line up to {% or {# are dropped),
// '-' and '+' modifiers on tags, keep_trailing_newline=False, \r\n and \r read as \n.
// Comments are consumed here; {% raw %} bodies come out as plain text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tandem::jinja {

struct Token {
  enum class Kind { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };
  Kind kind;
  std::string text;  // text data, name, operator, decoded string literal
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
  int col = 1;
};

// Throws JinjaError (with line and column) on malformed input.
std::vector<Token> Tokenize(const std::string& source);

}  // namespace tandem::jinja
