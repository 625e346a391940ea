// Recursive-descent parser for the Jinja subset, following jinja2/parser.py production by
// production (operator precedence, tuple rules, filter/test postfix order) so that any
// template jinja2 accepts parses to the same tree. Tags outside the subset (include,
// extends, import, block, call, ...) are rejected with their line and column.
#pragma once

#include <string>

#include "tokenizer/jinja_ast.h"

namespace tandem::jinja {

// Throws JinjaError with line/column on any syntax error or unsupported construct.
Body ParseTemplate(const std::string& source);

}  // namespace tandem::jinja
