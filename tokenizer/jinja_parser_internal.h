// The Jinja parser's class, shared by its two source files: jinja_parser.cc (token helpers and
// statements) and jinja_expr_parser.cc (expressions, by precedence). Recursive descent over the
// lexer's tokens, after Jinja's own parser; every error is a JinjaError with line and column.
// Internal to tokenizer/: callers use jinja_parser.h.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"

namespace tandem::jinja::parser_internal {

using TK = Token::Kind;
using EK = Expr::Kind;
using SK = Stmt::Kind;

class Parser {
 public:
  // Bounds that keep every template off the stack's edge, here, in the interpreter and when the
  // tree is destroyed (all recursive): parser recursion (blocks within blocks, parentheses,
  // brackets, unary operators) and the height of an expression tree, which loops build as well
  // (a + a + ... + a, x|f|f|...|f, x.a.b.c...). Real templates stay below 20 of either.
  static constexpr int kMaxNesting = 100;
  static constexpr int kMaxExprHeight = 200;

  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}
  Body Parse();

 private:
  // Counts one level of parser recursion for its scope; a JinjaError at `at` beyond kMaxNesting.
  class NestingGuard {
   public:
    NestingGuard(Parser* p, const Token& at);
    ~NestingGuard() { --p_->nesting_; }
    NestingGuard(const NestingGuard&) = delete;
    NestingGuard& operator=(const NestingGuard&) = delete;

   private:
    Parser* p_;
  };

  const Token& Cur() const { return toks_[i_]; }
  const Token& Peek() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  const Token& Next();
  bool IsOp(std::string_view op) const { return Cur().kind == TK::kOp && Cur().text == op; }
  bool IsName(std::string_view n) const { return Cur().kind == TK::kName && Cur().text == n; }
  bool SkipOp(std::string_view op);
  bool SkipName(std::string_view n);
  static std::string Describe(const Token& t);
  [[noreturn]] static void Error(const Token& t, const std::string& msg);
  void ExpectOp(std::string_view op);
  std::string ExpectName();
  void ExpectBlockEnd();
  static ExprPtr NewExpr(EK kind, const Token& at);
  static StmtPtr NewStmt(SK kind, const Token& at);
  // Every child of an expression is added through these (null children of slices and
  // conditional expressions included): they keep `height` and refuse trees beyond kMaxExprHeight.
  static void Grow(Expr& parent, const Expr* child);
  static void Attach(Expr& parent, ExprPtr child);
  static void AttachKwarg(Expr& parent, std::string key, ExprPtr value);
  static void AttachAll(Expr& parent, std::vector<ExprPtr> children);

  // ---- statements ----
  Body Subparse(const std::vector<std::string>& end_tokens);

  // Parses "%} body {% <end>" for the block opened by `opener`; leaves the end tag's name
  // as the current token unless drop_needle.
  Body ParseStatements(const Token& opener, const std::vector<std::string>& ends, bool drop_needle);
  void ParseStatement(Body& out);
  StmtPtr ParseIf();
  StmtPtr ParseFor();
  StmtPtr ParseSet();
  StmtPtr ParseMacro();
  StmtPtr ParseWith();

  // ---- expressions ----
  ExprPtr ParseAssignTarget(bool with_tuple, bool name_only, const std::vector<std::string>& extra_end,
                            bool with_namespace);
  bool IsTupleEnd(const std::vector<std::string>& extra_end) const;
  ExprPtr ParseTuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                     bool explicit_parens, bool with_namespace);
  ExprPtr ParseExpression(bool with_condexpr) { return with_condexpr ? ParseCondExpr() : ParseOr(); }
  ExprPtr ParseCondExpr();
  ExprPtr Binary(const Token& at, const std::string& op, ExprPtr l, ExprPtr r);
  ExprPtr ParseOr();
  ExprPtr ParseAnd();
  ExprPtr ParseNot();
  ExprPtr ParseCompare();
  ExprPtr ParseMath1();
  ExprPtr ParseConcat();
  ExprPtr ParseMath2();
  ExprPtr ParsePow();
  ExprPtr ParseUnary(bool with_filter);
  ExprPtr ParsePrimary(bool with_namespace);
  ExprPtr ParsePostfix(ExprPtr node);
  ExprPtr ParseFilterExpr(ExprPtr node);
  ExprPtr ParseSubscript(ExprPtr node);
  ExprPtr ParseSubscribed();
  void ParseCallArgs(Expr& node);
  ExprPtr ParseCall(ExprPtr node);
  ExprPtr ParseFilter(ExprPtr node, bool start_inline);
  ExprPtr ParseTest(ExprPtr node);
  std::vector<Token> toks_;
  size_t i_ = 0;
  int loop_depth_ = 0;
  int nesting_ = 0;                 // current parser recursion (NestingGuard)
  std::vector<const Token*> open_;  // innermost open block last, for error messages
};

}  // namespace tandem::jinja::parser_internal
