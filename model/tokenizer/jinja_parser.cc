#include "model/tokenizer/jinja_parser.h"

#include <algorithm>

#include "model/tokenizer/jinja_builtins.h"
#include "model/tokenizer/jinja_lexer.h"

namespace tandem::jinja {
namespace {

using TK = Token::Kind;
using EK = Expr::Kind;
using SK = Stmt::Kind;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body Parse() {
    Body body = Subparse({});
    if (Cur().kind != TK::kEof) Error(Cur(), "unexpected " + Describe(Cur()));
    return body;
  }

 private:
  const Token& Cur() const { return toks_[i_]; }
  const Token& Peek() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  const Token& Next() {
    const Token& t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  bool IsOp(std::string_view op) const { return Cur().kind == TK::kOp && Cur().text == op; }
  bool IsName(std::string_view n) const { return Cur().kind == TK::kName && Cur().text == n; }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view n) {
    if (!IsName(n)) return false;
    Next();
    return true;
  }

  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case TK::kVarEnd: return "end of print statement '}}'";
      case TK::kBlockEnd: return "end of statement block '%}'";
      case TK::kEof: return "end of template";
      case TK::kText: return "template text";
      case TK::kString: return "string literal";
      default: return "'" + t.text + "'";
    }
  }

  [[noreturn]] static void Error(const Token& t, const std::string& msg) {
    JinjaError e(msg);
    e.line = t.line;
    e.col = t.col;
    throw e;
  }

  void ExpectOp(std::string_view op) {
    if (!SkipOp(op)) Error(Cur(), "expected '" + std::string(op) + "', got " + Describe(Cur()));
  }
  std::string ExpectName() {
    if (Cur().kind != TK::kName) Error(Cur(), "expected a name, got " + Describe(Cur()));
    return Next().text;
  }
  void ExpectBlockEnd() {
    if (Cur().kind != TK::kBlockEnd) Error(Cur(), "expected end of statement block '%}', got " + Describe(Cur()));
    Next();
  }

  static ExprPtr NewExpr(EK kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->col = at.col;
    return e;
  }
  static StmtPtr NewStmt(SK kind, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->col = at.col;
    return s;
  }

  // ---- statements ----

  Body Subparse(const std::vector<std::string>& end_tokens) {
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

  // Parses "%} body {% <end>" for the block opened by `opener`; leaves the end tag's name
  // as the current token unless drop_needle.
  Body ParseStatements(const Token& opener, const std::vector<std::string>& ends, bool drop_needle) {
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

  void ParseStatement(Body& out) {
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

  StmtPtr ParseIf() {
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

  StmtPtr ParseFor() {
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

  StmtPtr ParseSet() {
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

  StmtPtr ParseMacro() {
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

  StmtPtr ParseWith() {
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

  // ---- expressions ----

  ExprPtr ParseAssignTarget(bool with_tuple, bool name_only, const std::vector<std::string>& extra_end,
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

  bool IsTupleEnd(const std::vector<std::string>& extra_end) const {
    if (Cur().kind == TK::kVarEnd || Cur().kind == TK::kBlockEnd || IsOp(")")) return true;
    return Cur().kind == TK::kName && std::find(extra_end.begin(), extra_end.end(), Cur().text) != extra_end.end();
  }

  ExprPtr ParseTuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                     bool explicit_parens, bool with_namespace) {
    const Token& at = Cur();
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) ExpectOp(",");
      if (IsTupleEnd(extra_end)) break;
      args.push_back(simplified ? ParsePrimary(with_namespace) : ParseExpression(with_condexpr));
      if (IsOp(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) Error(Cur(), "expected an expression, got " + Describe(Cur()));
    }
    auto t = NewExpr(EK::kTuple, at);
    t->children = std::move(args);
    return t;
  }

  ExprPtr ParseExpression(bool with_condexpr) { return with_condexpr ? ParseCondExpr() : ParseOr(); }

  ExprPtr ParseCondExpr() {
    const Token& at = Cur();
    ExprPtr expr1 = ParseOr();
    while (SkipName("if")) {
      auto c = NewExpr(EK::kCondExpr, at);
      ExprPtr test = ParseOr();
      ExprPtr expr3 = SkipName("else") ? ParseCondExpr() : nullptr;
      c->children.push_back(std::move(test));
      c->children.push_back(std::move(expr1));
      c->children.push_back(std::move(expr3));
      expr1 = std::move(c);
    }
    return expr1;
  }

  ExprPtr Binary(const Token& at, const std::string& op, ExprPtr l, ExprPtr r) {
    auto b = NewExpr(EK::kBinary, at);
    b->name = op;
    b->children.push_back(std::move(l));
    b->children.push_back(std::move(r));
    return b;
  }

  ExprPtr ParseOr() {
    ExprPtr left = ParseAnd();
    while (IsName("or")) {
      const Token& at = Next();
      left = Binary(at, "or", std::move(left), ParseAnd());
    }
    return left;
  }

  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (IsName("and")) {
      const Token& at = Next();
      left = Binary(at, "and", std::move(left), ParseNot());
    }
    return left;
  }

  ExprPtr ParseNot() {
    if (IsName("not")) {
      auto n = NewExpr(EK::kNot, Next());
      n->children.push_back(ParseNot());
      return n;
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    const Token& at = Cur();
    ExprPtr expr = ParseMath1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Cur().kind == TK::kOp && (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" ||
                                    Cur().text == "<=" || Cur().text == ">" || Cur().text == ">=")) {
        op = Next().text;
      } else if (SkipName("in")) {
        op = "in";
      } else if (IsName("not") && Peek().kind == TK::kName && Peek().text == "in") {
        Next();
        Next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = NewExpr(EK::kCompare, at);
        cmp->children.push_back(std::move(expr));
      }
      cmp->ops.push_back(op);
      cmp->children.push_back(ParseMath1());
    }
    return cmp ? std::move(cmp) : std::move(expr);
  }

  ExprPtr ParseMath1() {
    ExprPtr left = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      const Token& at = Next();
      left = Binary(at, at.text, std::move(left), ParseConcat());
    }
    return left;
  }

  ExprPtr ParseConcat() {
    const Token& at = Cur();
    ExprPtr first = ParseMath2();
    if (!IsOp("~")) return first;
    auto c = NewExpr(EK::kConcat, at);
    c->children.push_back(std::move(first));
    while (SkipOp("~")) c->children.push_back(ParseMath2());
    return c;
  }

  ExprPtr ParseMath2() {
    ExprPtr left = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const Token& at = Next();
      left = Binary(at, at.text, std::move(left), ParsePow());
    }
    return left;
  }

  ExprPtr ParsePow() {
    ExprPtr left = ParseUnary(true);
    while (IsOp("**")) {
      const Token& at = Next();
      left = Binary(at, "**", std::move(left), ParseUnary(true));
    }
    return left;
  }

  ExprPtr ParseUnary(bool with_filter) {
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      const Token& at = Next();
      node = NewExpr(at.text == "-" ? EK::kNeg : EK::kPos, at);
      node->children.push_back(ParseUnary(false));
    } else {
      node = ParsePrimary(false);
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  ExprPtr ParsePrimary(bool with_namespace) {
    const Token& t = Cur();
    if (t.kind == TK::kName) {
      Next();
      if (t.text == "true" || t.text == "false" || t.text == "True" || t.text == "False") {
        auto c = NewExpr(EK::kConst, t);
        c->constant = Value::Bool(t.text == "true" || t.text == "True");
        return c;
      }
      if (t.text == "none" || t.text == "None") {
        auto c = NewExpr(EK::kConst, t);
        c->constant = Value::None();
        return c;
      }
      if (with_namespace && IsOp(".")) {
        Next();
        auto r = NewExpr(EK::kNsRef, t);
        r->name = t.text;
        r->attr = ExpectName();
        return r;
      }
      auto n = NewExpr(EK::kName, t);
      n->name = t.text;
      return n;
    }
    if (t.kind == TK::kString) {
      std::string s;
      while (Cur().kind == TK::kString) s += Next().text;
      auto c = NewExpr(EK::kConst, t);
      c->constant = Value::Str(std::move(s));
      return c;
    }
    if (t.kind == TK::kInt || t.kind == TK::kFloat) {
      Next();
      auto c = NewExpr(EK::kConst, t);
      c->constant = t.kind == TK::kInt ? Value::Int(t.int_value) : Value::Float(t.float_value);
      return c;
    }
    if (IsOp("(")) {
      Next();
      ExprPtr e = ParseTuple(false, true, {}, true, false);
      ExpectOp(")");
      return e;
    }
    if (IsOp("[")) {
      auto l = NewExpr(EK::kList, Next());
      while (!IsOp("]")) {
        if (!l->children.empty()) ExpectOp(",");
        if (IsOp("]")) break;
        l->children.push_back(ParseExpression(true));
      }
      ExpectOp("]");
      return l;
    }
    if (IsOp("{")) {
      auto d = NewExpr(EK::kDict, Next());
      while (!IsOp("}")) {
        if (!d->children.empty()) ExpectOp(",");
        if (IsOp("}")) break;
        d->children.push_back(ParseExpression(true));
        ExpectOp(":");
        d->children.push_back(ParseExpression(true));
      }
      ExpectOp("}");
      return d;
    }
    Error(t, "unexpected " + Describe(t));
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(".") || IsOp("[")) node = ParseSubscript(std::move(node));
      else if (IsOp("(")) node = ParseCall(std::move(node));
      else return node;
    }
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) node = ParseFilter(std::move(node), false);
      else if (IsName("is")) node = ParseTest(std::move(node));
      else if (IsOp("(")) node = ParseCall(std::move(node));
      else return node;
    }
  }

  ExprPtr ParseSubscript(ExprPtr node) {
    const Token& t = Next();
    if (t.text == ".") {
      const Token& a = Next();
      if (a.kind == TK::kName) {
        auto g = NewExpr(EK::kGetAttr, t);
        g->name = a.text;
        g->children.push_back(std::move(node));
        return g;
      }
      if (a.kind != TK::kInt) Error(a, "expected name or number after '.'");
      auto g = NewExpr(EK::kGetItem, t);
      auto c = NewExpr(EK::kConst, a);
      c->constant = Value::Int(a.int_value);
      g->children.push_back(std::move(node));
      g->children.push_back(std::move(c));
      return g;
    }
    std::vector<ExprPtr> args;
    while (!IsOp("]")) {
      if (!args.empty()) ExpectOp(",");
      args.push_back(ParseSubscribed());
    }
    ExpectOp("]");
    auto g = NewExpr(EK::kGetItem, t);
    g->children.push_back(std::move(node));
    if (args.size() == 1) {
      g->children.push_back(std::move(args[0]));
    } else {
      auto tup = NewExpr(EK::kTuple, t);
      tup->children = std::move(args);
      g->children.push_back(std::move(tup));
    }
    return g;
  }

  ExprPtr ParseSubscribed() {
    const Token& at = Cur();
    std::vector<ExprPtr> args;
    if (SkipOp(":")) {
      args.push_back(nullptr);
    } else {
      ExprPtr node = ParseExpression(true);
      if (!IsOp(":")) return node;
      Next();
      args.push_back(std::move(node));
    }
    if (IsOp(":") || IsOp("]") || IsOp(",")) args.push_back(nullptr);
    else args.push_back(ParseExpression(true));
    if (SkipOp(":")) {
      if (IsOp("]") || IsOp(",")) args.push_back(nullptr);
      else args.push_back(ParseExpression(true));
    } else {
      args.push_back(nullptr);
    }
    auto s = NewExpr(EK::kSlice, at);
    s->children = std::move(args);
    return s;
  }

  void ParseCallArgs(Expr& node) {
    ExpectOp("(");
    bool require_comma = false;
    while (!IsOp(")")) {
      if (require_comma) {
        ExpectOp(",");
        if (IsOp(")")) break;
      }
      if (IsOp("*") || IsOp("**")) Error(Cur(), "*args and **kwargs in calls are not supported");
      if (Cur().kind == TK::kName && Peek().kind == TK::kOp && Peek().text == "=") {
        std::string key = Next().text;
        Next();
        node.kwargs.emplace_back(std::move(key), ParseExpression(true));
      } else {
        if (!node.kwargs.empty()) Error(Cur(), "positional argument follows keyword argument");
        node.children.push_back(ParseExpression(true));
      }
      require_comma = true;
    }
    ExpectOp(")");
  }

  ExprPtr ParseCall(ExprPtr node) {
    auto c = NewExpr(EK::kCall, Cur());
    c->children.push_back(std::move(node));
    ParseCallArgs(*c);
    return c;
  }

  ExprPtr ParseFilter(ExprPtr node, bool start_inline) {
    while (IsOp("|") || start_inline) {
      if (!start_inline) Next();
      start_inline = false;
      const Token& t = Cur();
      std::string name = ExpectName();
      while (SkipOp(".")) name += "." + ExpectName();
      if (!HasFilter(name)) Error(t, "unknown or unsupported filter '" + name + "'");
      auto f = NewExpr(EK::kFilter, t);
      f->name = name;
      f->children.push_back(std::move(node));
      if (IsOp("(")) ParseCallArgs(*f);
      node = std::move(f);
    }
    return node;
  }

  ExprPtr ParseTest(ExprPtr node) {
    const Token& is = Next();
    bool negated = SkipName("not");
    const Token& t = Cur();
    std::string name = ExpectName();
    while (SkipOp(".")) name += "." + ExpectName();
    if (!HasTest(name)) Error(t, "unknown or unsupported test '" + name + "'");
    auto test = NewExpr(EK::kTest, is);
    test->name = name;
    test->children.push_back(std::move(node));
    if (IsOp("(")) {
      ParseCallArgs(*test);
    } else if ((Cur().kind == TK::kName || Cur().kind == TK::kString || Cur().kind == TK::kInt ||
                Cur().kind == TK::kFloat || IsOp("[") || IsOp("{")) &&
               !IsName("else") && !IsName("or") && !IsName("and")) {
      if (IsName("is")) Error(Cur(), "cannot chain multiple tests with 'is'");
      test->children.push_back(ParsePostfix(ParsePrimary(false)));
    }
    if (!negated) return test;
    auto n = NewExpr(EK::kNot, is);
    n->children.push_back(std::move(test));
    return n;
  }

  std::vector<Token> toks_;
  size_t i_ = 0;
  int loop_depth_ = 0;
  std::vector<const Token*> open_;  // innermost open block last, for error messages
};

}  // namespace

Body ParseTemplate(const std::string& source) { return Parser(Tokenize(source)).Parse(); }

}  // namespace tandem::jinja
