// Tree-walking evaluator for the Jinja subset with jinja2's scoping rules: {% for %} bodies,
// macros, {% with %} and filter/set blocks get a fresh scope (a for body gets one per
// iteration, which is why templates need namespace() to carry state out of a loop), while
// {% if %} does not. Not thread-safe; make one per render.
#pragma once

#include <string>

#include "tokenizer/jinja_ast.h"

namespace tandem::jinja {

// Renders `body` with `vars` visible as globals. Throws JinjaError (with the innermost node's
// line and column) on any runtime error, including raise_exception().
std::string RenderTemplate(const Body& body, const DictData& vars);

}  // namespace tandem::jinja
