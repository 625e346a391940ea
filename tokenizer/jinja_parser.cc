// Jinja parser: token helpers and statements (jinja_parser_internal.h has the class).
#include "tokenizer/jinja_parser.h"

#include <algorithm>

#include "tokenizer/jinja_lexer.h"
#include "tokenizer/jinja_parser_internal.h"

namespace tandem::jinja {
namespace parser_internal {

Body Parser::Parse() {
  Body body = Subparse({});
  if (Cur().kind != TK::kEof) Error(Cur(), "unexpected " + Describe(Cur()));
  return body;
}

const Token& Parser::Next() {
  const Token& t = toks_[i_];
  if (i_ + 1 < toks_.size()) ++i_;
  return t;
}

bool Parser::SkipOp(std::string_view op) {
  if (!IsOp(op)) return false;
  Next();
  return true;
}

bool Parser::SkipName(std::string_view n) {
  if (!IsName(n)) return false;
  Next();
  return true;
}

std::string Parser::Describe(const Token& t) {
  switch (t.kind) {
    case TK::kVarEnd: return "end of print statement '}}'";
    case TK::kBlockEnd: return "end of statement block '%}'";
    case TK::kEof: return "end of template";
    case TK::kText: return "template text";
    case TK::kString: return "string literal";
    default: return "'" + t.text + "'";
  }
}

void Parser::Error(const Token& t, const std::string& msg) {
  JinjaError e(msg);
  e.line = t.line;
  e.col = t.col;
  throw e;
}

void Parser::ExpectOp(std::string_view op) {
  if (!SkipOp(op)) Error(Cur(), "expected '" + std::string(op) + "', got " + Describe(Cur()));
}

std::string Parser::ExpectName() {
  if (Cur().kind != TK::kName) Error(Cur(), "expected a name, got " + Describe(Cur()));
  return Next().text;
}

void Parser::ExpectBlockEnd() {
  if (Cur().kind != TK::kBlockEnd) Error(Cur(), "expected end of statement block '%}', got " + Describe(Cur()));
  Next();
}

ExprPtr Parser::NewExpr(EK kind, const Token& at) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = at.line;
  e->col = at.col;
  return e;
}

Parser::NestingGuard::NestingGuard(Parser* p, const Token& at) : p_(p) {
  if (++p_->nesting_ > kMaxNesting) {
    --p_->nesting_;  // the destructor does not run when the constructor throws
    Error(at, "template nested too deeply (more than " + std::to_string(kMaxNesting) + " levels)");
  }
}

void Parser::Grow(Expr& parent, const Expr* child) {
  if (child == nullptr) return;
  if (child->height >= kMaxExprHeight) {
    JinjaError e("expression nested too deeply (more than " + std::to_string(kMaxExprHeight) + " levels)");
    e.line = parent.line;
    e.col = parent.col;
    throw e;
  }
  parent.height = std::max(parent.height, child->height + 1);
}

void Parser::Attach(Expr& parent, ExprPtr child) {
  Grow(parent, child.get());
  parent.children.push_back(std::move(child));
}

void Parser::AttachKwarg(Expr& parent, std::string key, ExprPtr value) {
  Grow(parent, value.get());
  parent.kwargs.emplace_back(std::move(key), std::move(value));
}

void Parser::AttachAll(Expr& parent, std::vector<ExprPtr> children) {
  for (ExprPtr& c : children) Attach(parent, std::move(c));
}

StmtPtr Parser::NewStmt(SK kind, const Token& at) {
  auto s = std::make_unique<Stmt>();
  s->kind = kind;
  s->line = at.line;
  s->col = at.col;
  return s;
}

Body Parser::Subparse(const std::vector<std::string>& end_tokens) {
  Body body;
  while (true) {
    const Token& t = Cur();
    if (t.kind == TK::kText) {
      auto s = NewStmt(SK::kText, t);
      s->text = t.text;
      body.push_back(std::move(s));
      Next();
    } else if (t.kind == TK::kVarBegin) {
      auto s = NewStmt(SK::kOutput, t);
      Next();
      s->expr = ParseTuple(false, true, {}, false, false);
      if (Cur().kind != TK::kVarEnd) Error(Cur(), "expected end of print statement '}}', got " + Describe(Cur()));
      Next();
      body.push_back(std::move(s));
    } else if (t.kind == TK::kBlockBegin) {
      Next();
      if (Cur().kind == TK::kName &&
          std::find(end_tokens.begin(), end_tokens.end(), Cur().text) != end_tokens.end()) {
        return body;
      }
      ParseStatement(body);
      ExpectBlockEnd();
    } else if (t.kind == TK::kEof) {
      return body;
    } else {
      Error(t, "unexpected " + Describe(t));
    }
  }
}

Body Parser::ParseStatements(const Token& opener, const std::vector<std::string>& ends, bool drop_needle) {
  NestingGuard guard(this, opener);
  SkipOp(":");
  ExpectBlockEnd();
  open_.push_back(&opener);
  Body body = Subparse(ends);
  open_.pop_back();
  if (Cur().kind == TK::kEof) {
    std::string expected;
    for (const auto& e : ends) expected += (expected.empty() ? "'" : " or '") + e + "'";
    Error(opener, "unclosed '" + opener.text + "' block: reached the end of the template looking for " + expected);
  }
  if (drop_needle) Next();
  return body;
}

void Parser::ParseStatement(Body& out) {
  const Token& t = Cur();
  if (t.kind != TK::kName) Error(t, "expected a tag name, got " + Describe(t));
  const std::string& name = t.text;
  if (name == "if") return out.push_back(ParseIf());
  if (name == "for") return out.push_back(ParseFor());
  if (name == "set") return out.push_back(ParseSet());
  if (name == "macro") return out.push_back(ParseMacro());
  if (name == "with") return out.push_back(ParseWith());
  if (name == "filter") {
    auto s = NewStmt(SK::kFilterBlock, t);
    const Token& opener = Next();
    s->filter = ParseFilter(NewExpr(EK::kBlockInput, opener), true);
    s->bodies.push_back(ParseStatements(opener, {"endfilter"}, true));
    return out.push_back(std::move(s));
  }
  if (name == "generation") {  // transformers' AssistantTracker: renders its body in a new scope
    auto s = NewStmt(SK::kScope, t);
    const Token& opener = Next();
    s->bodies.push_back(ParseStatements(opener, {"endgeneration"}, true));
    return out.push_back(std::move(s));
  }
  if (name == "print") {
    Next();
    bool first = true;
    while (Cur().kind != TK::kBlockEnd) {
      if (!first) ExpectOp(",");
      first = false;
      auto s = NewStmt(SK::kOutput, Cur());
      s->expr = ParseExpression(true);
      out.push_back(std::move(s));
    }
    return;
  }
  if (name == "break" || name == "continue") {
    if (loop_depth_ == 0) Error(t, "'" + name + "' outside of a for loop");
    out.push_back(NewStmt(name == "break" ? SK::kBreak : SK::kContinue, t));
    Next();
    return;
  }
  static const char* kUnsupported[] = {"include", "extends", "import", "from", "block", "call",
                                       "autoescape", "do", "trans", "pluralize", "debug"};
  for (const char* u : kUnsupported) {
    if (name == u) Error(t, "unsupported tag '{% " + name + " %}' (not part of the chat-template subset)");
  }
  std::string msg = "unexpected tag '" + name + "'";
  if (!open_.empty()) {
    msg += " (the innermost open block is '" + open_.back()->text + "' at line " +
           std::to_string(open_.back()->line) + ", column " + std::to_string(open_.back()->col) + ")";
  }
  Error(t, msg);
}

StmtPtr Parser::ParseIf() {
  auto s = NewStmt(SK::kIf, Cur());
  const Token* opener = &Next();
  while (true) {
    s->conds.push_back(ParseTuple(false, false, {}, false, false));
    s->bodies.push_back(ParseStatements(*opener, {"elif", "else", "endif"}, false));
    const Token& t = Next();
    if (t.text == "elif") {
      opener = &t;
      continue;
    }
    if (t.text == "else") s->bodies.push_back(ParseStatements(t, {"endif"}, true));
    break;
  }
  return s;
}

StmtPtr Parser::ParseFor() {
  auto s = NewStmt(SK::kFor, Cur());
  const Token& opener = Next();
  s->target = ParseAssignTarget(true, false, {"in"}, false);
  if (!SkipName("in")) Error(Cur(), "expected 'in' in for loop, got " + Describe(Cur()));
  s->expr = ParseTuple(false, false, {"recursive"}, false, false);
  if (SkipName("if")) s->filter = ParseExpression(true);
  if (IsName("recursive")) Error(Cur(), "recursive for loops are not supported");
  ++loop_depth_;
  s->bodies.push_back(ParseStatements(opener, {"endfor", "else"}, false));
  --loop_depth_;
  const Token& t = Next();
  if (t.text == "else") s->bodies.push_back(ParseStatements(t, {"endfor"}, true));
  return s;
}

StmtPtr Parser::ParseSet() {
  const Token& opener = Next();
  ExprPtr target = ParseAssignTarget(true, false, {}, true);
  if (SkipOp("=")) {
    auto s = NewStmt(SK::kSet, opener);
    s->target = std::move(target);
    s->expr = ParseTuple(false, true, {}, false, false);
    return s;
  }
  auto s = NewStmt(SK::kSetBlock, opener);
  s->target = std::move(target);
  if (IsOp("|")) s->filter = ParseFilter(NewExpr(EK::kBlockInput, opener), false);
  s->bodies.push_back(ParseStatements(opener, {"endset"}, true));
  return s;
}

StmtPtr Parser::ParseMacro() {
  auto s = NewStmt(SK::kMacro, Cur());
  const Token& opener = Next();
  s->name = ExpectName();
  ExpectOp("(");
  while (!IsOp(")")) {
    if (!s->params.empty()) ExpectOp(",");
    s->params.push_back(ExpectName());
    if (SkipOp("=")) {
      s->defaults.push_back(ParseExpression(true));
    } else if (!s->defaults.empty()) {
      Error(Cur(), "non-default argument follows default argument");
    }
  }
  ExpectOp(")");
  int saved_depth = loop_depth_;
  loop_depth_ = 0;
  s->bodies.push_back(ParseStatements(opener, {"endmacro"}, true));
  loop_depth_ = saved_depth;
  return s;
}

StmtPtr Parser::ParseWith() {
  auto s = NewStmt(SK::kWith, Cur());
  const Token& opener = Next();
  while (Cur().kind != TK::kBlockEnd) {
    if (!s->targets.empty()) ExpectOp(",");
    s->targets.push_back(ParseAssignTarget(true, false, {}, false));
    ExpectOp("=");
    s->values.push_back(ParseExpression(true));
  }
  s->bodies.push_back(ParseStatements(opener, {"endwith"}, true));
  return s;
}

ExprPtr Parser::ParseAssignTarget(bool with_tuple, bool name_only, const std::vector<std::string>& extra_end,
                                  bool with_namespace) {
  const Token& at = Cur();
  ExprPtr target;
  if (name_only) {
    target = NewExpr(EK::kName, at);
    target->name = ExpectName();
    return target;
  }
  target = with_tuple ? ParseTuple(true, true, extra_end, false, with_namespace) : ParsePrimary(with_namespace);
  auto assignable = [](const Expr& e) { return e.kind == EK::kName || e.kind == EK::kNsRef; };
  bool ok = assignable(*target);
  if (target->kind == EK::kTuple) {
    ok = std::all_of(target->children.begin(), target->children.end(),
                     [&](const ExprPtr& c) { return c->kind == EK::kName; });
  }
  if (!ok) Error(at, "cannot assign to this expression");
  return target;
}

}  // namespace parser_internal

Body ParseTemplate(const std::string& source) { return parser_internal::Parser(Tokenize(source)).Parse(); }

}  // namespace tandem::jinja
