// Jinja parser: expressions, lowest precedence first (jinja_parser_internal.h has the class).
#include <algorithm>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_parser_internal.h"

namespace tandem::jinja::parser_internal {

bool Parser::IsTupleEnd(const std::vector<std::string>& extra_end) const {
  if (Cur().kind == TK::kVarEnd || Cur().kind == TK::kBlockEnd || IsOp(")")) return true;
  return Cur().kind == TK::kName && std::find(extra_end.begin(), extra_end.end(), Cur().text) != extra_end.end();
}

ExprPtr Parser::ParseTuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
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
  AttachAll(*t, std::move(args));
  return t;
}

ExprPtr Parser::ParseCondExpr() {
  const Token& at = Cur();
  ExprPtr expr1 = ParseOr();
  while (SkipName("if")) {
    auto c = NewExpr(EK::kCondExpr, at);
    ExprPtr test = ParseOr();
    ExprPtr expr3;
    if (SkipName("else")) {
      NestingGuard guard(this, at);  // a if b else c if d else ...: recursion
      expr3 = ParseCondExpr();
    }
    Attach(*c, std::move(test));
    Attach(*c, std::move(expr1));
    Attach(*c, std::move(expr3));
    expr1 = std::move(c);
  }
  return expr1;
}

ExprPtr Parser::Binary(const Token& at, const std::string& op, ExprPtr l, ExprPtr r) {
  auto b = NewExpr(EK::kBinary, at);
  b->name = op;
  Attach(*b, std::move(l));
  Attach(*b, std::move(r));
  return b;
}

ExprPtr Parser::ParseOr() {
  ExprPtr left = ParseAnd();
  while (IsName("or")) {
    const Token& at = Next();
    left = Binary(at, "or", std::move(left), ParseAnd());
  }
  return left;
}

ExprPtr Parser::ParseAnd() {
  ExprPtr left = ParseNot();
  while (IsName("and")) {
    const Token& at = Next();
    left = Binary(at, "and", std::move(left), ParseNot());
  }
  return left;
}

ExprPtr Parser::ParseNot() {
  if (IsName("not")) {
    NestingGuard guard(this, Cur());
    auto n = NewExpr(EK::kNot, Next());
    Attach(*n, ParseNot());
    return n;
  }
  return ParseCompare();
}

ExprPtr Parser::ParseCompare() {
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
      Attach(*cmp, std::move(expr));
    }
    cmp->ops.push_back(op);
    Attach(*cmp, ParseMath1());
  }
  return cmp ? std::move(cmp) : std::move(expr);
}

ExprPtr Parser::ParseMath1() {
  ExprPtr left = ParseConcat();
  while (IsOp("+") || IsOp("-")) {
    const Token& at = Next();
    left = Binary(at, at.text, std::move(left), ParseConcat());
  }
  return left;
}

ExprPtr Parser::ParseConcat() {
  const Token& at = Cur();
  ExprPtr first = ParseMath2();
  if (!IsOp("~")) return first;
  auto c = NewExpr(EK::kConcat, at);
  Attach(*c, std::move(first));
  while (SkipOp("~")) Attach(*c, ParseMath2());
  return c;
}

ExprPtr Parser::ParseMath2() {
  ExprPtr left = ParsePow();
  while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
    const Token& at = Next();
    left = Binary(at, at.text, std::move(left), ParsePow());
  }
  return left;
}

ExprPtr Parser::ParsePow() {
  ExprPtr left = ParseUnary(true);
  while (IsOp("**")) {
    const Token& at = Next();
    left = Binary(at, "**", std::move(left), ParseUnary(true));
  }
  return left;
}

ExprPtr Parser::ParseUnary(bool with_filter) {
  // Every nested expression ((...), [...], {...}, arguments, unary -/+) recurses through here.
  NestingGuard guard(this, Cur());
  ExprPtr node;
  if (IsOp("-") || IsOp("+")) {
    const Token& at = Next();
    node = NewExpr(at.text == "-" ? EK::kNeg : EK::kPos, at);
    Attach(*node, ParseUnary(false));
  } else {
    node = ParsePrimary(false);
  }
  node = ParsePostfix(std::move(node));
  if (with_filter) node = ParseFilterExpr(std::move(node));
  return node;
}

ExprPtr Parser::ParsePrimary(bool with_namespace) {
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
      Attach(*l, ParseExpression(true));
    }
    ExpectOp("]");
    return l;
  }
  if (IsOp("{")) {
    auto d = NewExpr(EK::kDict, Next());
    while (!IsOp("}")) {
      if (!d->children.empty()) ExpectOp(",");
      if (IsOp("}")) break;
      Attach(*d, ParseExpression(true));
      ExpectOp(":");
      Attach(*d, ParseExpression(true));
    }
    ExpectOp("}");
    return d;
  }
  Error(t, "unexpected " + Describe(t));
}

ExprPtr Parser::ParsePostfix(ExprPtr node) {
  while (true) {
    if (IsOp(".") || IsOp("[")) node = ParseSubscript(std::move(node));
    else if (IsOp("(")) node = ParseCall(std::move(node));
    else return node;
  }
}

ExprPtr Parser::ParseFilterExpr(ExprPtr node) {
  while (true) {
    if (IsOp("|")) node = ParseFilter(std::move(node), false);
    else if (IsName("is")) node = ParseTest(std::move(node));
    else if (IsOp("(")) node = ParseCall(std::move(node));
    else return node;
  }
}

ExprPtr Parser::ParseSubscript(ExprPtr node) {
  const Token& t = Next();
  if (t.text == ".") {
    const Token& a = Next();
    if (a.kind == TK::kName) {
      auto g = NewExpr(EK::kGetAttr, t);
      g->name = a.text;
      Attach(*g, std::move(node));
      return g;
    }
    if (a.kind != TK::kInt) Error(a, "expected name or number after '.'");
    auto g = NewExpr(EK::kGetItem, t);
    auto c = NewExpr(EK::kConst, a);
    c->constant = Value::Int(a.int_value);
    Attach(*g, std::move(node));
    Attach(*g, std::move(c));
    return g;
  }
  std::vector<ExprPtr> args;
  while (!IsOp("]")) {
    if (!args.empty()) ExpectOp(",");
    args.push_back(ParseSubscribed());
  }
  ExpectOp("]");
  auto g = NewExpr(EK::kGetItem, t);
  Attach(*g, std::move(node));
  if (args.size() == 1) {
    Attach(*g, std::move(args[0]));
  } else {
    auto tup = NewExpr(EK::kTuple, t);
    AttachAll(*tup, std::move(args));
    Attach(*g, std::move(tup));
  }
  return g;
}

ExprPtr Parser::ParseSubscribed() {
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
  AttachAll(*s, std::move(args));
  return s;
}

void Parser::ParseCallArgs(Expr& node) {
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
      AttachKwarg(node, std::move(key), ParseExpression(true));
    } else {
      if (!node.kwargs.empty()) Error(Cur(), "positional argument follows keyword argument");
      Attach(node, ParseExpression(true));
    }
    require_comma = true;
  }
  ExpectOp(")");
}

ExprPtr Parser::ParseCall(ExprPtr node) {
  auto c = NewExpr(EK::kCall, Cur());
  Attach(*c, std::move(node));
  ParseCallArgs(*c);
  return c;
}

ExprPtr Parser::ParseFilter(ExprPtr node, bool start_inline) {
  while (IsOp("|") || start_inline) {
    if (!start_inline) Next();
    start_inline = false;
    const Token& t = Cur();
    std::string name = ExpectName();
    while (SkipOp(".")) name += "." + ExpectName();
    if (!HasFilter(name)) Error(t, "unknown or unsupported filter '" + name + "'");
    auto f = NewExpr(EK::kFilter, t);
    f->name = name;
    Attach(*f, std::move(node));
    if (IsOp("(")) ParseCallArgs(*f);
    node = std::move(f);
  }
  return node;
}

ExprPtr Parser::ParseTest(ExprPtr node) {
  const Token& is = Next();
  bool negated = SkipName("not");
  const Token& t = Cur();
  std::string name = ExpectName();
  while (SkipOp(".")) name += "." + ExpectName();
  if (!HasTest(name)) Error(t, "unknown or unsupported test '" + name + "'");
  auto test = NewExpr(EK::kTest, is);
  test->name = name;
  Attach(*test, std::move(node));
  if (IsOp("(")) {
    ParseCallArgs(*test);
  } else if ((Cur().kind == TK::kName || Cur().kind == TK::kString || Cur().kind == TK::kInt ||
              Cur().kind == TK::kFloat || IsOp("[") || IsOp("{")) &&
             !IsName("else") && !IsName("or") && !IsName("and")) {
    if (IsName("is")) Error(Cur(), "cannot chain multiple tests with 'is'");
    Attach(*test, ParsePostfix(ParsePrimary(false)));
  }
  if (!negated) return test;
  auto n = NewExpr(EK::kNot, is);
  Attach(*n, std::move(test));
  return n;
}

}  // namespace tandem::jinja::parser_internal
