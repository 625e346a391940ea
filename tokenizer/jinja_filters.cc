// jinja2's built-in filters and tests, with transformers' tojson override.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_string.h"

namespace tandem::jinja {
namespace {

using FilterFn = Value (*)(const Value& v, const CallArgs& call);
using TestFn = bool (*)(const Value& v, const CallArgs& call);

Value Gen(std::vector<Value> items) { return Value::List(std::move(items), SeqKind::kGenerator); }

// soft_str: undefined renders as "", everything else through str().
std::string S(const Value& v) { return Str(v); }

// make_attrgetter: "a.b.0" looks up each part with getitem; integer parts index lists.
Value AttrGet(const Value& item, const Value& attribute) {
  if (attribute.is_integral()) return GetItem(item, attribute);
  Value cur = item;
  std::string path = S(attribute);
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = GetItem(cur, digits ? Value::Int(std::stoll(part)) : Value::Str(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value IgnoreCase(const Value& v) { return v.is_string() ? Value::Str(PyLower(v.str())) : v; }

Value KeyOf(const Value& item, const Value& attribute, bool case_sensitive) {
  Value k = attribute.is_undefined() || attribute.is_none() ? item : AttrGet(item, attribute);
  return case_sensitive ? k : IgnoreCase(k);
}

Value FAbs(const Value& v, const CallArgs& c) {
  ArgBinder("abs", c, {});
  if (v.is_float()) return Value::Float(std::fabs(v.number_value()));
  if (v.is_integral()) return Value::Int(std::llabs(v.int_value()));
  Fail("TypeError: bad operand type for abs(): '" + TypeName(v) + "'");
}
Value FCapitalize(const Value& v, const CallArgs& c) {
  ArgBinder("capitalize", c, {});
  return Value::Str(PyCapitalize(S(v)));
}
Value FLength(const Value& v, const CallArgs& c) {
  ArgBinder("length", c, {});
  return Value::Int(Length(v));
}
Value FDefault(const Value& v, const CallArgs& c) {
  ArgBinder a("default", c, {"default_value", "boolean"});
  if (v.is_undefined() || (Truthy(a.Get(1)) && !Truthy(v))) return a.Has(0) ? a.Get(0) : Value::Str("");
  return v;
}
Value FFirst(const Value& v, const CallArgs& c) {
  ArgBinder("first", c, {});
  if (v.is_list() && v.seq() == SeqKind::kGenerator) {
    const ListData& l = v.list();
    if (l.consumed < l.items.size()) return l.items[l.consumed++];
  } else {
    std::vector<Value> items = Iterate(v);
    if (!items.empty()) return items.front();
  }
  return Value::Undefined("No first item, sequence was empty.");
}
Value FLast(const Value& v, const CallArgs& c) {
  ArgBinder("last", c, {});
  if (v.is_list() && v.seq() == SeqKind::kGenerator) Fail("TypeError: 'generator' object is not reversible");
  std::vector<Value> items = Iterate(v);
  if (!items.empty()) return items.back();
  return Value::Undefined("No last item, sequence was empty.");
}
Value FFloat(const Value& v, const CallArgs& c) {
  ArgBinder a("float", c, {"default"});
  Value dflt = a.Has(0) ? a.Get(0) : Value::Float(0.0);
  if (v.is_number()) return Value::Float(v.number_value());
  if (v.is_string()) {
    std::string t = PyStrip(v.str(), std::nullopt, true, true);
    char* end = nullptr;
    double d = std::strtod(t.c_str(), &end);
    if (!t.empty() && *end == '\0' && t.find_first_of("xXpP") == std::string::npos) return Value::Float(d);
    return dflt;
  }
  if (v.is_undefined()) Fail("UndefinedError: " + UndefinedMessage(v));
  return dflt;
}
Value FInt(const Value& v, const CallArgs& c) {
  ArgBinder a("int", c, {"default", "base"});
  Value dflt = a.Has(0) ? a.Get(0) : Value::Int(0);
  if (v.is_integral()) return Value::Int(v.int_value());
  if (v.is_float()) {
    double d = v.number_value();
    if (!std::isfinite(d)) return dflt;
    return Value::Int(static_cast<int64_t>(std::trunc(d)));
  }
  if (v.is_string()) {
    std::string t = PyStrip(v.str(), std::nullopt, true, true);
    t.erase(std::remove(t.begin(), t.end(), '_'), t.end());
    int base = a.Has(1) ? static_cast<int>(a.Get(1).int_value()) : 10;
    char* end = nullptr;
    errno = 0;
    long long i = std::strtoll(t.c_str(), &end, base);
    if (!t.empty() && *end == '\0' && errno == 0) return Value::Int(i);
    double d = std::strtod(t.c_str(), &end);
    if (!t.empty() && *end == '\0' && std::isfinite(d)) return Value::Int(static_cast<int64_t>(std::trunc(d)));
    return dflt;
  }
  if (v.is_undefined()) Fail("UndefinedError: " + UndefinedMessage(v));
  return dflt;
}
Value FJoin(const Value& v, const CallArgs& c) {
  ArgBinder a("join", c, {"d", "attribute"});
  std::string sep = a.Has(0) ? S(a.Get(0)) : "";
  std::string out;
  bool first = true;
  for (const Value& item : Iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += S(a.Has(1) ? AttrGet(item, a.Get(1)) : item);
    ChargeBytes(sep.size());
    CheckStringSize(out.size());
  }
  return Value::Str(std::move(out));
}
Value FList(const Value& v, const CallArgs& c) {
  ArgBinder("list", c, {});
  return Value::List(Iterate(v));
}
Value FLower(const Value& v, const CallArgs& c) {
  ArgBinder("lower", c, {});
  return Value::Str(PyLower(S(v)));
}
Value FUpper(const Value& v, const CallArgs& c) {
  ArgBinder("upper", c, {});
  return Value::Str(PyUpper(S(v)));
}
Value FTitle(const Value& v, const CallArgs& c) {
  ArgBinder("title", c, {});
  return Value::Str(JinjaTitle(S(v)));
}
Value FTrim(const Value& v, const CallArgs& c) {
  ArgBinder a("trim", c, {"chars"});
  std::optional<std::string> chars;
  if (a.Has(0) && !a.Get(0).is_none()) chars = S(a.Get(0));
  return Value::Str(PyStrip(S(v), chars, true, true));
}
Value FReplace(const Value& v, const CallArgs& c) {
  ArgBinder a("replace", c, {"old", "new", "count"});
  int64_t count = a.Has(2) && !a.Get(2).is_none() ? a.Get(2).int_value() : -1;
  return Value::Str(PyReplace(S(v), S(a.Get(0)), S(a.Get(1)), count));
}
Value FString(const Value& v, const CallArgs& c) {
  ArgBinder("string", c, {});
  return v.is_string() ? v : Value::Str(S(v));
}
Value FSafe(const Value& v, const CallArgs& c) {
  ArgBinder("safe", c, {});
  return Value::Str(S(v), /*markup=*/true);
}
Value FIndent(const Value& v, const CallArgs& c) {
  ArgBinder a("indent", c, {"width", "first", "blank"});
  if (v.is_undefined()) Fail("UndefinedError: " + UndefinedMessage(v));  // do_indent does `s += "\n"`
  if (a.Has(0) && !a.Get(0).is_string())
    CheckStringSize(static_cast<size_t>(std::max<int64_t>(0, a.Get(0).int_value())));
  std::string ind = !a.Has(0) ? "    " : (a.Get(0).is_string() ? a.Get(0).str()
                                                               : std::string(static_cast<size_t>(std::max<int64_t>(0, a.Get(0).int_value())), ' '));
  std::vector<std::string> lines = PySplitLines(S(v) + "\n");
  std::string rv;
  if (Truthy(a.Get(2))) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv.append("\n").append(ind);
      rv.append(lines[i]);
      ChargeBytes(ind.size());
      CheckStringSize(rv.size());
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv.append("\n");
      if (!lines[i].empty()) rv.append(ind).append(lines[i]);
      ChargeBytes(ind.size());
      CheckStringSize(rv.size());
    }
  }
  if (Truthy(a.Get(1))) rv = ind + rv;
  return Value::Str(std::move(rv));
}
Value FReverse(const Value& v, const CallArgs& c) {
  ArgBinder("reverse", c, {});
  if (v.is_string()) {
    std::u32string u = DecodeUtf8(v.str());
    std::reverse(u.begin(), u.end());
    return Value::Str(EncodeUtf8(u));
  }
  bool was_generator = v.is_list() && v.seq() == SeqKind::kGenerator;
  std::vector<Value> items = Iterate(v);
  std::reverse(items.begin(), items.end());
  // reversed() of a generator fails, so jinja2 falls back to a reversed list.
  return was_generator ? Value::List(std::move(items)) : Gen(std::move(items));
}
Value FUnique(const Value& v, const CallArgs& c) {
  ArgBinder a("unique", c, {"case_sensitive", "attribute"});
  std::vector<Value> out, seen;
  for (const Value& item : Iterate(v)) {
    Value key = KeyOf(item, a.Get(1), Truthy(a.Get(0)));
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return Equal(s, key); })) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return Gen(std::move(out));
}
Value FItems(const Value& v, const CallArgs& c) {
  ArgBinder("items", c, {});
  if (v.is_undefined()) return Gen({});
  if (!v.is_dict()) Fail("TypeError: can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, val] : v.dict().entries) out.push_back(Value::List({Value::Str(k), val}, SeqKind::kTuple));
  return Gen(std::move(out));
}
Value FToJson(const Value& v, const CallArgs& c) {
  ArgBinder a("tojson", c, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions o;
  o.ensure_ascii = Truthy(a.Get(0));
  const Value& indent = a.Get(1);
  if (indent.is_string()) o.indent_str = indent.str(), o.indent = 0;
  else if (indent.is_integral()) o.indent = static_cast<int>(std::max<int64_t>(0, indent.int_value()));
  else if (!indent.is_undefined() && !indent.is_none()) Fail("tojson: indent must be an int or a string");
  if (indent.is_string() && indent.str().empty()) o.indent = 0;
  if (a.Has(2) && !a.Get(2).is_none()) {
    const Value& sep = a.Get(2);
    if (!sep.is_list() || sep.items().size() != 2 || !sep.items()[0].is_string() || !sep.items()[1].is_string()) {
      Fail("tojson: separators must be a (item_separator, key_separator) pair of strings");
    }
    o.item_sep = sep.items()[0].str();
    o.key_sep = sep.items()[1].str();
    if (o.item_sep.empty()) Fail("tojson: an empty item separator is not supported");
  }
  o.sort_keys = Truthy(a.Get(3));
  return Value::Str(ToJson(v, o));
}
Value FMap(const Value& v, const CallArgs& c) {
  std::vector<Value> out;
  if (c.args.empty()) {
    ArgBinder a("map", c, {"attribute", "default"});
    if (!a.Has(0)) Fail("map requires a filter name or attribute=");
    for (const Value& item : Iterate(v)) {
      Value r = AttrGet(item, a.Get(0));
      out.push_back(r.is_undefined() && a.Has(1) ? a.Get(1) : r);
    }
    return Gen(std::move(out));
  }
  if (!c.args[0].is_string()) Fail("map: the filter name must be a string");
  std::string name = c.args[0].str();
  if (!HasFilter(name)) Fail("map: unknown or unsupported filter '" + name + "'");
  CallArgs rest{std::vector<Value>(c.args.begin() + 1, c.args.end()), c.kwargs};
  for (const Value& item : Iterate(v)) out.push_back(ApplyFilter(name, item, rest));
  return Gen(std::move(out));
}
Value SelectOrReject(const Value& v, const CallArgs& c, bool select, bool attr) {
  std::vector<Value> out;
  if (!Truthy(v)) return Gen({});
  size_t off = attr ? 1 : 0;
  if (attr && c.args.empty()) Fail("Missing parameter for attribute name");
  std::string test;
  if (c.args.size() > off) {
    if (!c.args[off].is_string()) Fail("select/reject: the test name must be a string");
    test = c.args[off].str();
    if (!HasTest(test)) Fail("unknown or unsupported test '" + test + "'");
  }
  CallArgs rest;
  if (c.args.size() > off + 1) rest.args.assign(c.args.begin() + static_cast<std::ptrdiff_t>(off + 1), c.args.end());
  rest.kwargs = c.kwargs;
  for (const Value& item : Iterate(v)) {
    Value x = attr ? AttrGet(item, c.args[0]) : item;
    bool ok = test.empty() ? Truthy(x) : ApplyTest(test, x, rest);
    if (ok == select) out.push_back(item);
  }
  return Gen(std::move(out));
}
Value FSelect(const Value& v, const CallArgs& c) { return SelectOrReject(v, c, true, false); }
Value FReject(const Value& v, const CallArgs& c) { return SelectOrReject(v, c, false, false); }
Value FSelectAttr(const Value& v, const CallArgs& c) { return SelectOrReject(v, c, true, true); }
Value FRejectAttr(const Value& v, const CallArgs& c) { return SelectOrReject(v, c, false, true); }
Value FSort(const Value& v, const CallArgs& c) {
  ArgBinder a("sort", c, {"reverse", "case_sensitive", "attribute"});
  std::vector<Value> items = Iterate(v);
  bool cs = Truthy(a.Get(1));
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& it : items) keyed.emplace_back(KeyOf(it, a.Get(2), cs), it);
  bool rev = Truthy(a.Get(0));
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return rev ? Compare(y.first, x.first) < 0 : Compare(x.first, y.first) < 0;
  });
  std::vector<Value> out;
  for (auto& [k, it] : keyed) out.push_back(it);
  return Value::List(std::move(out));
}
Value MinMax(const Value& v, const CallArgs& c, bool want_max) {
  ArgBinder a(want_max ? "max" : "min", c, {"case_sensitive", "attribute"});
  std::vector<Value> items = Iterate(v);
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key = KeyOf(items[0], a.Get(1), Truthy(a.Get(0)));
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = KeyOf(items[i], a.Get(1), Truthy(a.Get(0)));
    if (want_max ? Compare(k, best_key) > 0 : Compare(k, best_key) < 0) best = i, best_key = k;
  }
  return items[best];
}
Value FMin(const Value& v, const CallArgs& c) { return MinMax(v, c, false); }
Value FMax(const Value& v, const CallArgs& c) { return MinMax(v, c, true); }
Value FSum(const Value& v, const CallArgs& c) {
  ArgBinder a("sum", c, {"attribute", "start"});
  Value total = a.Has(1) ? a.Get(1) : Value::Int(0);
  for (const Value& item : Iterate(v)) {
    Value x = a.Has(0) ? AttrGet(item, a.Get(0)) : item;
    if (!x.is_number() || !total.is_number()) Fail("TypeError: sum of non-numbers is not supported");
    if (x.is_integral() && total.is_integral()) total = Value::Int(total.int_value() + x.int_value());
    else total = Value::Float(total.number_value() + x.number_value());
  }
  return total;
}
Value FDictSort(const Value& v, const CallArgs& c) {
  ArgBinder a("dictsort", c, {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) Fail("TypeError: dictsort requires a mapping");
  std::string by = a.Has(1) ? S(a.Get(1)) : "key";
  if (by != "key" && by != "value") Fail("FilterArgumentError: You can only sort by either \"key\" or \"value\"");
  std::vector<Value> pairs;
  for (const auto& [k, val] : v.dict().entries) pairs.push_back(Value::List({Value::Str(k), val}, SeqKind::kTuple));
  bool cs = Truthy(a.Get(0)), rev = Truthy(a.Get(2));
  size_t idx = by == "key" ? 0 : 1;
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
    Value kx = cs ? x.items()[idx] : IgnoreCase(x.items()[idx]);
    Value ky = cs ? y.items()[idx] : IgnoreCase(y.items()[idx]);
    return rev ? Compare(ky, kx) < 0 : Compare(kx, ky) < 0;
  });
  return Value::List(std::move(pairs));
}

const std::map<std::string, FilterFn>& Filters() {
  static const std::map<std::string, FilterFn> kFilters = {
      {"abs", FAbs}, {"capitalize", FCapitalize}, {"count", FLength}, {"d", FDefault}, {"default", FDefault},
      {"dictsort", FDictSort}, {"first", FFirst}, {"float", FFloat}, {"indent", FIndent}, {"int", FInt},
      {"items", FItems}, {"join", FJoin}, {"last", FLast}, {"length", FLength}, {"list", FList},
      {"lower", FLower}, {"map", FMap}, {"max", FMax}, {"min", FMin}, {"reject", FReject},
      {"rejectattr", FRejectAttr}, {"replace", FReplace}, {"reverse", FReverse}, {"safe", FSafe},
      {"select", FSelect}, {"selectattr", FSelectAttr}, {"sort", FSort}, {"string", FString}, {"sum", FSum},
      {"title", FTitle}, {"tojson", FToJson}, {"trim", FTrim}, {"unique", FUnique}, {"upper", FUpper},
  };
  return kFilters;
}

// ---- tests ----

const Value& Arg0(const CallArgs& c, const char* test) {
  if (c.args.size() != 1 || !c.kwargs.empty()) Fail(std::string("test '") + test + "' takes exactly one argument");
  return c.args[0];
}
void NoArgs(const CallArgs& c, const char* test) {
  if (!c.args.empty() || !c.kwargs.empty()) Fail(std::string("test '") + test + "' takes no arguments");
}
int64_t IntOf(const Value& v, const char* test) {
  if (!v.is_integral()) Fail(std::string("TypeError: test '") + test + "' needs an integer, got " + TypeName(v));
  return v.int_value();
}
int64_t PyMod(int64_t a, int64_t b) {
  if (b == 0) Fail("ZeroDivisionError: integer modulo by zero");
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

#define TANDEM_SIMPLE_TEST(fn, name, expr) \
  bool fn(const Value& v, const CallArgs& c) { \
    NoArgs(c, name);                            \
    return expr;                                \
  }
TANDEM_SIMPLE_TEST(TDefined, "defined", !v.is_undefined())
TANDEM_SIMPLE_TEST(TUndefined, "undefined", v.is_undefined())
TANDEM_SIMPLE_TEST(TNone, "none", v.is_none())
TANDEM_SIMPLE_TEST(TBoolean, "boolean", v.is_bool())
TANDEM_SIMPLE_TEST(TFalse, "false", v.is_bool() && !v.bool_value())
TANDEM_SIMPLE_TEST(TTrue, "true", v.is_bool() && v.bool_value())
TANDEM_SIMPLE_TEST(TInteger, "integer", v.is_int())
TANDEM_SIMPLE_TEST(TFloat, "float", v.is_float())
TANDEM_SIMPLE_TEST(TNumber, "number", v.is_number())
TANDEM_SIMPLE_TEST(TString, "string", v.is_string())
TANDEM_SIMPLE_TEST(TMapping, "mapping", v.is_dict())
TANDEM_SIMPLE_TEST(TCallable, "callable", v.is_callable())
TANDEM_SIMPLE_TEST(TEscaped, "escaped", v.is_markup())
TANDEM_SIMPLE_TEST(TIterable, "iterable", v.is_undefined() || v.is_string() || v.is_list() || v.is_dict())
TANDEM_SIMPLE_TEST(TSequence, "sequence",
                   v.is_undefined() || v.is_string() || v.is_dict() ||
                       (v.is_list() && (v.seq() == SeqKind::kList || v.seq() == SeqKind::kTuple)))
TANDEM_SIMPLE_TEST(TLower, "lower", PyLower(S(v)) == S(v) && PyUpper(S(v)) != S(v))
TANDEM_SIMPLE_TEST(TUpper, "upper", PyUpper(S(v)) == S(v) && PyLower(S(v)) != S(v))
TANDEM_SIMPLE_TEST(TOdd, "odd", PyMod(IntOf(v, "odd"), 2) == 1)
TANDEM_SIMPLE_TEST(TEven, "even", PyMod(IntOf(v, "even"), 2) == 0)
#undef TANDEM_SIMPLE_TEST

bool TDivisibleBy(const Value& v, const CallArgs& c) {
  return PyMod(IntOf(v, "divisibleby"), IntOf(Arg0(c, "divisibleby"), "divisibleby")) == 0;
}
bool TEq(const Value& v, const CallArgs& c) { return Equal(v, Arg0(c, "eq")); }
bool TNe(const Value& v, const CallArgs& c) { return !Equal(v, Arg0(c, "ne")); }
bool TLt(const Value& v, const CallArgs& c) { return Compare(v, Arg0(c, "lt")) < 0; }
bool TLe(const Value& v, const CallArgs& c) { return Compare(v, Arg0(c, "le")) <= 0; }
bool TGt(const Value& v, const CallArgs& c) { return Compare(v, Arg0(c, "gt")) > 0; }
bool TGe(const Value& v, const CallArgs& c) { return Compare(v, Arg0(c, "ge")) >= 0; }
bool TIn(const Value& v, const CallArgs& c) { return Contains(Arg0(c, "in"), v); }
bool TSameAs(const Value& v, const CallArgs& c) {
  const Value& o = Arg0(c, "sameas");
  if (v.is_none() || o.is_none() || v.is_bool() || o.is_bool()) {
    return v.kind() == o.kind() && (!v.is_bool() || v.bool_value() == o.bool_value());
  }
  Fail("test 'sameas' is only supported against none, true and false");
}
bool TFilter(const Value& v, const CallArgs& c) { return NoArgs(c, "filter"), v.is_string() && HasFilter(v.str()); }
bool TTest(const Value& v, const CallArgs& c) { return NoArgs(c, "test"), v.is_string() && HasTest(v.str()); }

const std::map<std::string, TestFn>& Tests() {
  static const std::map<std::string, TestFn> kTests = {
      {"defined", TDefined}, {"undefined", TUndefined}, {"none", TNone}, {"boolean", TBoolean},
      {"false", TFalse}, {"true", TTrue}, {"integer", TInteger}, {"float", TFloat}, {"number", TNumber},
      {"string", TString}, {"mapping", TMapping}, {"callable", TCallable}, {"escaped", TEscaped},
      {"iterable", TIterable}, {"sequence", TSequence}, {"lower", TLower}, {"upper", TUpper}, {"odd", TOdd},
      {"even", TEven}, {"divisibleby", TDivisibleBy}, {"eq", TEq}, {"equalto", TEq}, {"==", TEq},
      {"ne", TNe}, {"!=", TNe}, {"lt", TLt}, {"lessthan", TLt}, {"<", TLt}, {"le", TLe}, {"<=", TLe},
      {"gt", TGt}, {"greaterthan", TGt}, {">", TGt}, {"ge", TGe}, {">=", TGe}, {"in", TIn},
      {"sameas", TSameAs}, {"filter", TFilter}, {"test", TTest},
  };
  return kTests;
}

}  // namespace

bool HasFilter(const std::string& name) { return Filters().count(name) != 0; }
bool HasTest(const std::string& name) { return Tests().count(name) != 0; }

Value ApplyFilter(const std::string& name, const Value& input, const CallArgs& args) {
  auto it = Filters().find(name);
  if (it == Filters().end()) Fail("unknown or unsupported filter '" + name + "'");
  return it->second(input, args);
}

bool ApplyTest(const std::string& name, const Value& input, const CallArgs& args) {
  auto it = Tests().find(name);
  if (it == Tests().end()) Fail("unknown or unsupported test '" + name + "'");
  return it->second(input, args);
}

}  // namespace tandem::jinja
