#include "tokenizer/jinja_interpreter.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_string.h"

namespace tandem::jinja {
namespace {

using EK = Expr::Kind;
using SK = Stmt::Kind;

constexpr int kMaxMacroDepth = 200;
// Expressions and statement bodies being evaluated at once (recursion of Eval and ExecBody):
// the parser bounds a template's own nesting, macros calling macros multiply it. A level takes
// up to 1 KiB of stack in an optimised build (4-5 KiB under ASan), so the deepest render needs
// at most 0.5 MiB (2.5 MiB) of an io thread's 8 MiB stack.
constexpr int kMaxNesting = 500;
// A for loop's iteration costs what it builds: the `loop` object's variables (and a frame).
constexpr uint64_t kLoopVars = 12;

class Frame {
 public:
  explicit Frame(const Frame* parent) : parent_(parent) {}
  const Value* Lookup(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent_) {
      auto it = f->vars_.find(name);
      if (it != f->vars_.end()) return &it->second;
    }
    return nullptr;
  }
  void Set(const std::string& name, Value v) { vars_[name] = std::move(v); }

 private:
  const Frame* parent_;
  std::unordered_map<std::string, Value> vars_;
};

[[noreturn]] void TypeError(const char* op, const Value& a, const Value& b) {
  Fail(std::string("TypeError: unsupported operand type(s) for ") + op + ": '" + TypeName(a) + "' and '" +
       TypeName(b) + "'");
}

void CheckDefined(const Value& v) {
  if (v.is_undefined()) Fail("UndefinedError: " + UndefinedMessage(v));
}

Value IntResult(bool overflow, int64_t r) {
  if (overflow) Fail("integer overflow (Python would use a big integer)");
  return Value::Int(r);
}

Value Repeat(const Value& seq, int64_t n) {
  const size_t unit = seq.is_string() ? seq.str().size() : seq.items().size();
  if (n < 0 || unit == 0) n = 0;  // nothing to repeat: no loop to run either ("" * 10**12)
  // Sizes and work first: "a" * 10**12 must fail at once, not after filling memory.
  if (n > 0 && static_cast<uint64_t>(n) > (seq.is_string() ? kMaxStringBytes : kMaxSeqItems) / unit) {
    Fail(std::string("repeating a ") + (seq.is_string() ? "string" : "sequence") + " " + std::to_string(n) +
         " times is too large");
  }
  if (seq.is_string()) {
    ChargeBytes(unit * static_cast<uint64_t>(n));
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value::Str(std::move(out));
  }
  uint64_t bytes = 0;  // the items' strings, copied with them
  for (const Value& item : seq.items()) bytes += item.str().size();
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) {
    ChargeWork(unit);
    ChargeBytes(bytes);
    out.insert(out.end(), seq.items().begin(), seq.items().end());
  }
  return Value::List(std::move(out), seq.seq());
}

bool IsPlainSeq(const Value& v) { return v.is_list() && (v.seq() == SeqKind::kList || v.seq() == SeqKind::kTuple); }

Value Arith(const std::string& op, const Value& a, const Value& b) {
  CheckDefined(a);
  CheckDefined(b);
  const bool ints = a.is_integral() && b.is_integral();
  const bool nums = a.is_number() && b.is_number();
  int64_t r = 0;
  if (op == "+") {
    if (ints) {
      bool overflow = __builtin_add_overflow(a.int_value(), b.int_value(), &r);
      return IntResult(overflow, r);
    }
    if (nums) return Value::Float(a.number_value() + b.number_value());
    if (a.is_string() && b.is_string()) {
      if (a.is_markup() || b.is_markup()) {  // markupsafe.Markup.__add__/__radd__ escape the plain side
        return Value::Str((a.is_markup() ? a.str() : HtmlEscape(a.str())) + (b.is_markup() ? b.str() : HtmlEscape(b.str())), true);
      }
      return Value::Str(a.str() + b.str());
    }
    if (IsPlainSeq(a) && IsPlainSeq(b) && a.seq() == b.seq()) {
      CheckSeqSize(a.items().size() + b.items().size());
      std::vector<Value> out = a.items();
      out.insert(out.end(), b.items().begin(), b.items().end());
      return Value::List(std::move(out), a.seq());
    }
    if (a.is_string()) Fail("TypeError: can only concatenate str (not \"" + TypeName(b) + "\") to str");
    TypeError("+", a, b);
  }
  if (op == "-") {
    if (ints) {
      bool overflow = __builtin_sub_overflow(a.int_value(), b.int_value(), &r);
      return IntResult(overflow, r);
    }
    if (nums) return Value::Float(a.number_value() - b.number_value());
    TypeError("-", a, b);
  }
  if (op == "*") {
    if (ints) {
      bool overflow = __builtin_mul_overflow(a.int_value(), b.int_value(), &r);
      return IntResult(overflow, r);
    }
    if (nums) return Value::Float(a.number_value() * b.number_value());
    if ((a.is_string() || IsPlainSeq(a)) && b.is_integral()) return Repeat(a, b.int_value());
    if ((b.is_string() || IsPlainSeq(b)) && a.is_integral()) return Repeat(b, a.int_value());
    TypeError("*", a, b);
  }
  if (op == "/") {
    if (!nums) TypeError("/", a, b);
    if (b.number_value() == 0) Fail("ZeroDivisionError: division by zero");
    return Value::Float(a.number_value() / b.number_value());
  }
  if (op == "//" || op == "%") {
    if (a.is_string() && op == "%") Fail("printf-style string formatting ('%' on a string) is not supported");
    if (!nums) TypeError(op.c_str(), a, b);
    if (b.number_value() == 0) Fail(ints ? "ZeroDivisionError: integer division or modulo by zero" : "ZeroDivisionError: float modulo");
    if (ints) {
      int64_t x = a.int_value(), y = b.int_value();
      if (x == INT64_MIN && y == -1) Fail("integer overflow (Python would use a big integer)");
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return Value::Int(op == "//" ? q : m);
    }
    // CPython's float_divmod, so that -7.5 // 2 and -7.5 % 2 agree to the last bit.
    double x = a.number_value(), y = b.number_value();
    double m = std::fmod(x, y);
    double div = (x - m) / y;
    if (m != 0) {
      if ((y < 0) != (m < 0)) {
        m += y;
        div -= 1.0;
      }
    } else {
      m = std::copysign(0.0, y);
    }
    if (op == "%") return Value::Float(m);
    double floordiv;
    if (div != 0) {
      floordiv = std::floor(div);
      if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
      floordiv = std::copysign(0.0, x / y);
    }
    return Value::Float(floordiv);
  }
  if (op == "**") {
    if (ints && b.int_value() >= 0) {
      int64_t base = a.int_value(), result = 1;
      for (int64_t e = b.int_value(); e > 0; --e) {
        if (__builtin_mul_overflow(result, base, &result)) Fail("integer overflow (Python would use a big integer)");
        if (result == 0 || result == 1) break;
      }
      return Value::Int(result);
    }
    if (!nums) TypeError("** or pow()", a, b);
    if (a.number_value() == 0 && b.number_value() < 0) Fail("ZeroDivisionError: 0.0 cannot be raised to a negative power");
    return Value::Float(std::pow(a.number_value(), b.number_value()));
  }
  Fail("unknown operator '" + op + "'");
}

bool CompareOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return Equal(a, b);
  if (op == "!=") return !Equal(a, b);
  if (op == "in") return Contains(b, a);
  if (op == "notin") return !Contains(b, a);
  CheckDefined(a);
  CheckDefined(b);
  int c = Compare(a, b);
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

class Interpreter {
 public:
  explicit Interpreter(const DictData& vars) : root_(nullptr) {
    for (const auto& [k, v] : vars.entries) root_.Set(k, v);
  }

  std::string Run(const Body& body) {
    std::string out;
    ExecBody(body, root_, out);
    return out;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  // One level of Eval/ExecBody recursion for its scope (see kMaxNesting).
  class NestingGuard {
   public:
    explicit NestingGuard(int* nesting) : nesting_(nesting) {
      if (++*nesting_ > kMaxNesting) {
        --*nesting_;
        Fail("the template nests expressions, blocks and macro calls deeper than " + std::to_string(kMaxNesting) +
             " levels");
      }
    }
    ~NestingGuard() { --*nesting_; }
    NestingGuard(const NestingGuard&) = delete;
    NestingGuard& operator=(const NestingGuard&) = delete;

   private:
    int* nesting_;
  };

  // Appends to a render's output (or a block's buffer), within the bounds of a string.
  static void Emit(std::string& out, const std::string& text) {
    ChargeBytes(text.size());
    CheckStringSize(out.size() + text.size());
    out += text;
  }

  static void Locate(JinjaError& e, int line, int col) {
    if (e.line == 0) {
      e.line = line;
      e.col = col;
    }
  }

  Flow ExecBody(const Body& body, Frame& f, std::string& out) {
    NestingGuard guard(&nesting_);
    for (const auto& s : body) {
      ChargeWork(1);
      Flow fl;
      try {
        fl = Exec(*s, f, out);
      } catch (JinjaError& e) {
        Locate(e, s->line, s->col);
        throw;
      }
      if (fl != Flow::kNormal) return fl;
    }
    return Flow::kNormal;
  }

  Flow Exec(const Stmt& s, Frame& f, std::string& out) {
    switch (s.kind) {
      case SK::kText:
        Emit(out, s.text);
        return Flow::kNormal;
      case SK::kOutput:
        Emit(out, Str(Eval(*s.expr, f)));
        return Flow::kNormal;
      case SK::kIf:
        for (size_t i = 0; i < s.conds.size(); ++i) {
          if (Truthy(Eval(*s.conds[i], f))) return ExecBody(s.bodies[i], f, out);
        }
        if (s.bodies.size() > s.conds.size()) return ExecBody(s.bodies.back(), f, out);
        return Flow::kNormal;
      case SK::kFor: ExecFor(s, f, out); return Flow::kNormal;
      case SK::kSet: Assign(*s.target, Eval(*s.expr, f), f); return Flow::kNormal;
      case SK::kSetBlock: {
        Value v = RenderBlock(s, f);
        Assign(*s.target, std::move(v), f);
        return Flow::kNormal;
      }
      case SK::kFilterBlock:
        Emit(out, Str(RenderBlock(s, f)));
        return Flow::kNormal;
      case SK::kMacro: {
        const Stmt* macro = &s;
        f.Set(s.name, Value::Function(s.name, [this, macro](CallArgs& a) { return CallMacro(*macro, a); }));
        return Flow::kNormal;
      }
      case SK::kWith: {
        std::vector<Value> values;
        for (const auto& v : s.values) values.push_back(Eval(*v, f));
        Frame wf(&f);
        for (size_t i = 0; i < values.size(); ++i) Assign(*s.targets[i], values[i], wf);
        return ExecBody(s.bodies[0], wf, out);
      }
      case SK::kScope: {
        Frame sf(&f);
        return ExecBody(s.bodies[0], sf, out);
      }
      case SK::kBreak: return Flow::kBreak;
      case SK::kContinue: return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  // The body of a set block or filter block, rendered in its own scope, then filtered.
  Value RenderBlock(const Stmt& s, Frame& f) {
    std::string buf;
    Frame bf(&f);
    ExecBody(s.bodies[0], bf, buf);
    Value rendered = Value::Str(std::move(buf));
    if (!s.filter) return rendered;
    const Value* saved = block_input_;
    block_input_ = &rendered;
    Value result = Eval(*s.filter, f);
    block_input_ = saved;
    return result;
  }

  void ExecFor(const Stmt& s, Frame& f, std::string& out) {
    std::vector<Value> items = Iterate(Eval(*s.expr, f));
    if (s.filter) {
      std::vector<Value> kept;
      for (auto& item : items) {
        Frame tf(&f);
        Assign(*s.target, item, tf);
        if (Truthy(Eval(*s.filter, tf))) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      ChargeWork(kLoopVars);
      Frame lf(&f);  // fresh per iteration, as in jinja2
      Assign(*s.target, items[static_cast<size_t>(i)], lf);
      DictData loop;
      loop.Set("index", Value::Int(i + 1));
      loop.Set("index0", Value::Int(i));
      loop.Set("revindex", Value::Int(n - i));
      loop.Set("revindex0", Value::Int(n - i - 1));
      loop.Set("first", Value::Bool(i == 0));
      loop.Set("last", Value::Bool(i == n - 1));
      loop.Set("length", Value::Int(n));
      loop.Set("depth", Value::Int(1));
      loop.Set("depth0", Value::Int(0));
      if (i > 0) loop.Set("previtem", items[static_cast<size_t>(i - 1)]);
      if (i + 1 < n) loop.Set("nextitem", items[static_cast<size_t>(i + 1)]);
      loop.Set("cycle", Value::Function("loop.cycle", [i](CallArgs& a) {
                 if (a.args.empty()) Fail("TypeError: no items for cycling given");
                 return a.args[static_cast<size_t>(i) % a.args.size()];
               }));
      lf.Set("loop", Value::Dict(std::move(loop)));
      if (ExecBody(s.bodies[0], lf, out) == Flow::kBreak) break;
    }
    if (n == 0 && s.bodies.size() > 1) {
      Frame ef(&f);
      ExecBody(s.bodies[1], ef, out);
    }
  }

  void Assign(const Expr& target, Value v, Frame& f) {
    switch (target.kind) {
      case EK::kName: f.Set(target.name, std::move(v)); return;
      case EK::kNsRef: {
        const Value* ns = f.Lookup(target.name);
        if (!ns || !ns->is_namespace()) Fail("cannot assign attribute '" + target.attr + "' on non-namespace object '" + target.name + "'");
        if (!target.attr.empty() && target.attr[0] == '_') Fail("SecurityError: namespace attributes cannot start with '_'");
        // Namespaces are the one mutable value: one inside another could form a cycle (a leak,
        // and endless printing), so they hold plain data only.
        if (HoldsNamespace(v)) Fail("cannot store a namespace in a namespace attribute ('" + target.attr + "')");
        ns->mutable_namespace().Set(target.attr, std::move(v));
        return;
      }
      case EK::kTuple: {
        std::vector<Value> parts = Iterate(v);
        if (parts.size() < target.children.size()) {
          Fail("ValueError: not enough values to unpack (expected " + std::to_string(target.children.size()) +
               ", got " + std::to_string(parts.size()) + ")");
        }
        if (parts.size() > target.children.size()) {
          Fail("ValueError: too many values to unpack (expected " + std::to_string(target.children.size()) + ")");
        }
        for (size_t i = 0; i < parts.size(); ++i) Assign(*target.children[i], std::move(parts[i]), f);
        return;
      }
      default: Fail("cannot assign to this expression");
    }
  }

  Value CallMacro(const Stmt& m, CallArgs& a) {
    if (a.args.size() > m.params.size()) {
      Fail("macro '" + m.name + "' takes not more than " + std::to_string(m.params.size()) + " argument(s)");
    }
    if (depth_ >= kMaxMacroDepth) Fail("maximum macro recursion depth exceeded");
    Frame mf(&root_);
    std::vector<bool> bound(m.params.size(), false);
    for (size_t i = 0; i < a.args.size(); ++i) {
      mf.Set(m.params[i], a.args[i]);
      bound[i] = true;
    }
    for (const auto& [k, v] : a.kwargs) {
      auto it = std::find(m.params.begin(), m.params.end(), k);
      if (it == m.params.end()) Fail("macro '" + m.name + "' takes no keyword argument '" + k + "'");
      size_t idx = static_cast<size_t>(it - m.params.begin());
      if (bound[idx]) Fail("macro '" + m.name + "' got multiple values for argument '" + k + "'");
      mf.Set(k, v);
      bound[idx] = true;
    }
    const size_t first_default = m.params.size() - m.defaults.size();
    for (size_t i = 0; i < m.params.size(); ++i) {
      if (bound[i]) continue;
      if (i >= first_default) mf.Set(m.params[i], Eval(*m.defaults[i - first_default], mf));
      else mf.Set(m.params[i], Value::Undefined("parameter '" + m.params[i] + "' was not provided"));
    }
    std::string buf;
    ++depth_;
    try {
      ExecBody(m.bodies[0], mf, buf);
    } catch (...) {
      --depth_;
      throw;
    }
    --depth_;
    return Value::Str(std::move(buf));
  }

  CallArgs EvalArgs(const Expr& e, size_t first, Frame& f) {
    CallArgs a;
    for (size_t i = first; i < e.children.size(); ++i) a.args.push_back(Eval(*e.children[i], f));
    for (const auto& [k, v] : e.kwargs) a.kwargs.emplace_back(k, Eval(*v, f));
    return a;
  }

  // Whether `v` is or contains a namespace (lists and dicts are bounded by kMaxValueDepth).
  static bool HoldsNamespace(const Value& v) {
    if (v.is_namespace()) return true;
    if (v.is_list()) {
      ChargeWork(v.items().size());
      return std::any_of(v.items().begin(), v.items().end(), HoldsNamespace);
    }
    if (v.is_dict()) {
      ChargeWork(v.dict().entries.size());
      return std::any_of(v.dict().entries.begin(), v.dict().entries.end(),
                         [](const auto& e) { return HoldsNamespace(e.second); });
    }
    return false;
  }

  Value Eval(const Expr& e, Frame& f) {
    NestingGuard guard(&nesting_);
    try {
      Value v = EvalImpl(e, f);
      ChargeWork(1);
      if (v.is_string()) ChargeBytes(v.str().size());  // copied from a variable, or built
      return v;
    } catch (JinjaError& err) {
      Locate(err, e.line, e.col);
      throw;
    }
  }

  Value EvalImpl(const Expr& e, Frame& f) {
    switch (e.kind) {
      case EK::kConst: return e.constant;
      case EK::kName: {
        const Value* v = f.Lookup(e.name);
        return v ? *v : Value::Undefined("'" + e.name + "' is undefined");
      }
      case EK::kList:
      case EK::kTuple: {
        std::vector<Value> items;
        for (const auto& c : e.children) items.push_back(Eval(*c, f));
        return Value::List(std::move(items), e.kind == EK::kList ? SeqKind::kList : SeqKind::kTuple);
      }
      case EK::kDict: {
        DictData d;
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
          Value k = Eval(*e.children[i], f);
          if (!k.is_string()) Fail("dict literal keys must be strings in this implementation, got " + TypeName(k));
          d.Set(k.str(), Eval(*e.children[i + 1], f));
        }
        return Value::Dict(std::move(d));
      }
      case EK::kGetAttr: return GetAttr(Eval(*e.children[0], f), e.name);
      case EK::kGetItem: {
        Value obj = Eval(*e.children[0], f);
        const Expr& key = *e.children[1];
        if (key.kind == EK::kSlice) {
          auto bound = [&](size_t i) { return key.children[i] ? Eval(*key.children[i], f) : Value::None(); };
          return GetSlice(obj, bound(0), bound(1), bound(2));
        }
        return GetItem(obj, Eval(key, f));
      }
      case EK::kCall: {
        Value callee = Eval(*e.children[0], f);
        CallArgs a = EvalArgs(e, 1, f);
        CheckDefined(callee);
        if (!callee.is_callable()) Fail("TypeError: '" + TypeName(callee) + "' object is not callable");
        return callee.callable().fn(a);
      }
      case EK::kFilter: {
        Value input = e.children[0]->kind == EK::kBlockInput ? *block_input_ : Eval(*e.children[0], f);
        return ApplyFilter(e.name, input, EvalArgs(e, 1, f));
      }
      case EK::kTest: {
        Value input = Eval(*e.children[0], f);
        return Value::Bool(ApplyTest(e.name, input, EvalArgs(e, 1, f)));
      }
      case EK::kNot: return Value::Bool(!Truthy(Eval(*e.children[0], f)));
      case EK::kNeg:
      case EK::kPos: {
        Value v = Eval(*e.children[0], f);
        CheckDefined(v);
        if (!v.is_number()) {
          Fail(std::string("TypeError: bad operand type for unary ") + (e.kind == EK::kNeg ? "-" : "+") + ": '" +
               TypeName(v) + "'");
        }
        if (e.kind == EK::kPos) return v.is_bool() ? Value::Int(v.int_value()) : v;
        if (v.is_float()) return Value::Float(-v.number_value());
        if (v.int_value() == INT64_MIN) Fail("integer overflow (Python would use a big integer)");
        return Value::Int(-v.int_value());
      }
      case EK::kBinary: {
        if (e.name == "and" || e.name == "or") {
          Value l = Eval(*e.children[0], f);
          if (Truthy(l) == (e.name == "or")) return l;
          return Eval(*e.children[1], f);
        }
        Value l = Eval(*e.children[0], f);
        Value r = Eval(*e.children[1], f);
        return Arith(e.name, l, r);
      }
      case EK::kConcat: {
        std::string out;
        for (const auto& c : e.children) out += Str(Eval(*c, f));
        return Value::Str(std::move(out));
      }
      case EK::kCompare: {
        Value left = Eval(*e.children[0], f);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = Eval(*e.children[i + 1], f);
          if (!CompareOp(e.ops[i], left, right)) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case EK::kCondExpr:
        if (Truthy(Eval(*e.children[0], f))) return Eval(*e.children[1], f);
        if (e.children[2]) return Eval(*e.children[2], f);
        return Value::Undefined("the inline if-expression evaluated to false and has no else clause");
      case EK::kBlockInput:
        if (block_input_) return *block_input_;
        break;
      case EK::kNsRef:
      case EK::kSlice: break;
    }
    Fail("internal error: expression cannot be evaluated here");
  }

  Frame root_;
  const Value* block_input_ = nullptr;
  int depth_ = 0;    // macro calls in progress
  int nesting_ = 0;  // Eval and ExecBody calls in progress
};

// Bytes of the strings in `v` (keys included): the size of a render's input. Inputs are trees
// (JSON), at most kMaxValueDepth deep.
uint64_t InputBytes(const Value& v) {
  if (v.is_string()) return v.str().size();
  uint64_t n = 0;
  if (v.is_list()) {
    for (const Value& item : v.items()) n += InputBytes(item);
  } else if (v.is_dict()) {
    for (const auto& [k, item] : v.dict().entries) n += k.size() + InputBytes(item);
  }
  return n;
}

}  // namespace

std::string RenderTemplate(const Body& body, const DictData& vars) {
  uint64_t input_bytes = 0;
  for (const auto& [k, v] : vars.entries) input_bytes += InputBytes(v);
  WorkMeter meter(kBaseWorkUnits + kWorkUnitsPerInputByte * input_bytes);  // charged by all this render does
  DictData all = MakeGlobals();
  for (const auto& [k, v] : vars.entries) all.Set(k, v);
  return Interpreter(all).Run(body);
}

}  // namespace tandem::jinja
