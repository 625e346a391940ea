// Syntax tree of the Jinja subset, produced by jinja_parser and walked by jinja_interpreter.
// Node shapes follow jinja2.nodes so that evaluation order and scoping match the reference.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace tandem::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Expr {
  enum class Kind {
    kConst,       // constant
    kName,        // name
    kNsRef,       // name.attr as an assignment target ({% set ns.x = ... %})
    kList,        // children
    kTuple,       // children
    kDict,        // children: key0, value0, key1, value1, ...
    kGetAttr,     // children[0].name
    kGetItem,     // children[0][children[1]]
    kSlice,       // children: start, stop, step (each may be null); only inside kGetItem
    kCall,        // children[0](children[1..], kwargs)
    kFilter,      // children[0]|name(children[1..], kwargs); children[0] null in filter blocks
    kTest,        // children[0] is name(children[1..], kwargs)
    kNot,         // not children[0]
    kNeg,         // -children[0]
    kPos,         // +children[0]
    kBinary,      // children[0] op children[1]; op in + - * / // % ** and or
    kConcat,      // children joined with ~
    kCompare,     // children[0] ops[0] children[1] ops[1] children[2] ...
    kCondExpr,    // children[1] if children[0] else children[2] (children[2] may be null)
    kBlockInput,  // the rendered body fed to a filter block / set block filter
  };
  Kind kind;
  int line = 0;
  int col = 0;
  int height = 1;  // of this subtree (a leaf: 1); the parser bounds it (Parser::kMaxExprHeight)
  Value constant;
  std::string name;  // kName/kNsRef/kGetAttr/kFilter/kTest name, kBinary operator
  std::string attr;  // kNsRef attribute
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare: == != < <= > >= in notin
};

struct Stmt {
  enum class Kind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // conds[i] -> bodies[i]; else body is bodies[conds.size()] when present
    kFor,          // for target in expr [if filter]: bodies[0] else bodies[1]
    kSet,          // set target = expr
    kSetBlock,     // set target [| filter] %} bodies[0] {% endset
    kMacro,        // macro name(params = defaults) bodies[0]
    kFilterBlock,  // filter <filter> %} bodies[0] {% endfilter
    kWith,         // with targets = values: bodies[0]
    kBreak,
    kContinue,
    kScope,        // bodies[0] rendered as is ({% generation %} of transformers)
  };
  Kind kind;
  int line = 0;
  int col = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr target;
  ExprPtr filter;
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // aligned to the last defaults.size() params
  std::vector<ExprPtr> targets;
  std::vector<ExprPtr> values;
};

}  // namespace tandem::jinja
