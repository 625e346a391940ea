// Attribute and item access, Python str/dict methods, and the global functions.
#include <algorithm>
#include <ctime>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_string.h"

namespace tandem::jinja {
namespace {

std::string ObjectTypeRepr(const Value& v) {
  if (v.is_none()) return "None";
  return TypeName(v) + " object";
}

Value MissingAttr(const Value& obj, const std::string& name) {
  return Value::Undefined("'" + ObjectTypeRepr(obj) + "' has no attribute '" + name + "'");
}

std::optional<std::string> OptStr(const Value& v, const char* what) {
  if (v.is_undefined() || v.is_none()) return std::nullopt;
  if (!v.is_string()) Fail(std::string("TypeError: ") + what + " must be str or None, not " + TypeName(v));
  return v.str();
}

const std::string& NeedStr(const Value& v, const char* what) {
  if (!v.is_string()) Fail(std::string("TypeError: ") + what + " must be str, not " + TypeName(v));
  return v.str();
}

int64_t OptInt(const Value& v, int64_t dflt, const char* what) {
  if (v.is_undefined() || v.is_none()) return dflt;
  if (!v.is_integral()) Fail(std::string("TypeError: ") + what + " must be an integer, not " + TypeName(v));
  return v.int_value();
}

Value StrList(std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.push_back(Value::Str(std::move(p)));
  return Value::List(std::move(items));
}

// startswith/endswith accept a str or a tuple of str.
bool AffixMatch(const std::string& s, const Value& affix, bool prefix) {
  auto one = [&](const Value& a) {
    const std::string& x = NeedStr(a, prefix ? "startswith argument" : "endswith argument");
    return prefix ? StartsWith(s, x) : EndsWith(s, x);
  };
  if (affix.is_list() && affix.seq() == SeqKind::kTuple) {
    return std::any_of(affix.items().begin(), affix.items().end(), one);
  }
  return one(affix);
}

bool IsLowerStr(const std::string& s) { return PyLower(s) == s && PyUpper(s) != s; }
bool IsUpperStr(const std::string& s) { return PyUpper(s) == s && PyLower(s) != s; }

template <typename Pred>
bool AllChars(const std::string& s, Pred pred) {
  std::u32string u = DecodeUtf8(s);
  return !u.empty() && std::all_of(u.begin(), u.end(), pred);
}

Value StrMethod(const std::string& s, const std::string& name, const CallArgs& call) {
  const std::string what = "str." + name + "()";
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    ArgBinder a(what, call, {"chars"});
    return Value::Str(PyStrip(s, OptStr(a.Get(0), "chars"), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    ArgBinder a(what, call, {"sep", "maxsplit"});
    return StrList(PySplit(s, OptStr(a.Get(0), "sep"), OptInt(a.Get(1), -1, "maxsplit"), name == "rsplit"));
  }
  if (name == "splitlines") {
    ArgBinder a(what, call, {"keepends"});
    if (Truthy(a.Get(0))) Fail("str.splitlines(keepends=True) is not supported");
    return StrList(PySplitLines(s));
  }
  if (name == "startswith" || name == "endswith") {
    ArgBinder a(what, call, {"affix"});
    if (!a.Has(0)) Fail(what + " takes at least 1 argument");
    return Value::Bool(AffixMatch(s, a.Get(0), name == "startswith"));
  }
  if (name == "replace") {
    ArgBinder a(what, call, {"old", "new", "count"});
    return Value::Str(PyReplace(s, NeedStr(a.Get(0), "old"), NeedStr(a.Get(1), "new"), OptInt(a.Get(2), -1, "count")));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    ArgBinder a(what, call, {"affix"});
    const std::string& x = NeedStr(a.Get(0), "affix");
    if (name == "removeprefix") return Value::Str(StartsWith(s, x) ? s.substr(x.size()) : s);
    return Value::Str(EndsWith(s, x) && !x.empty() ? s.substr(0, s.size() - x.size()) : s);
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    ArgBinder a(what, call, {"sub"});
    const std::string& sub = NeedStr(a.Get(0), "sub");
    if (name == "count") return Value::Int(PyCount(s, sub));
    int64_t at = PyFind(s, sub, name[0] == 'r');
    if (at < 0 && name.find("index") != std::string::npos) Fail("ValueError: substring not found");
    return Value::Int(at);
  }
  if (name == "join") {
    ArgBinder a(what, call, {"iterable"});
    std::string out;
    bool first = true;
    for (const Value& v : Iterate(a.Get(0))) {
      if (!v.is_string()) Fail("TypeError: sequence item: expected str instance, " + TypeName(v) + " found");
      if (!first) out += s;
      first = false;
      out += v.str();
      ChargeBytes(s.size() + v.str().size());
      CheckStringSize(out.size());
    }
    return Value::Str(std::move(out));
  }
  ArgBinder none(what, call, {});
  if (name == "upper") return Value::Str(PyUpper(s));
  if (name == "lower") return Value::Str(PyLower(s));
  if (name == "title") return Value::Str(PyTitle(s));
  if (name == "capitalize") return Value::Str(PyCapitalize(s));
  if (name == "islower") return Value::Bool(IsLowerStr(s));
  if (name == "isupper") return Value::Bool(IsUpperStr(s));
  if (name == "isspace") return Value::Bool(AllChars(s, IsPySpace));
  if (name == "isdigit") return Value::Bool(AllChars(s, [](char32_t c) { return c >= '0' && c <= '9'; }));
  if (name == "isalpha" || name == "isalnum") {
    bool alnum = name == "isalnum";
    if (!AllChars(s, [](char32_t c) { return c < 0x80; })) Fail(what + " on non-ASCII text is not supported");
    return Value::Bool(AllChars(s, [&](char32_t c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (alnum && c >= '0' && c <= '9');
    }));
  }
  Fail("unsupported string method '" + name + "'");
}

bool IsStrMethod(const std::string& name) {
  static const char* kImplemented[] = {
      "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "replace",
      "removeprefix", "removesuffix", "find", "rfind", "index", "rindex", "count", "join", "upper",
      "lower", "title", "capitalize", "islower", "isupper", "isspace", "isdigit", "isalpha", "isalnum"};
  return std::any_of(std::begin(kImplemented), std::end(kImplemented), [&](const char* m) { return name == m; });
}

bool IsOtherStrMethod(const std::string& name) {
  static const char* kOthers[] = {"casefold", "center", "encode", "expandtabs", "format", "format_map",
                                  "isascii", "isdecimal", "isidentifier", "isnumeric", "isprintable",
                                  "istitle", "ljust", "maketrans", "partition", "rjust", "rpartition",
                                  "swapcase", "translate", "zfill"};
  return std::any_of(std::begin(kOthers), std::end(kOthers), [&](const char* m) { return name == m; });
}

Value DictMethod(const Value& d, const std::string& name, const CallArgs& call) {
  const std::string what = "dict." + name + "()";
  if (name == "get") {
    ArgBinder a(what, call, {"key", "default"});
    const Value* v = a.Get(0).is_string() ? d.dict().Find(a.Get(0).str()) : nullptr;
    if (v) return *v;
    return a.Has(1) ? a.Get(1) : Value::None();
  }
  ArgBinder none(what, call, {});
  std::vector<Value> out;
  for (const auto& [k, v] : d.dict().entries) {
    if (name == "keys") out.push_back(Value::Str(k));
    else if (name == "values") out.push_back(v);
    else out.push_back(Value::List({Value::Str(k), v}, SeqKind::kTuple));
  }
  return Value::List(std::move(out), name == "keys" ? SeqKind::kKeysView
                                                    : (name == "values" ? SeqKind::kValuesView : SeqKind::kItemsView));
}

bool IsDictMethod(const std::string& n) { return n == "get" || n == "items" || n == "keys" || n == "values"; }
bool IsOtherDictMethod(const std::string& n) {
  return n == "clear" || n == "copy" || n == "fromkeys" || n == "pop" || n == "popitem" || n == "setdefault" ||
         n == "update";
}
bool IsListMethod(const std::string& n) {
  return n == "append" || n == "clear" || n == "copy" || n == "count" || n == "extend" || n == "index" ||
         n == "insert" || n == "pop" || n == "remove" || n == "reverse" || n == "sort";
}

// Python's slice.indices(): clamps start/stop for a sequence of length n.
void SliceIndices(int64_t n, const Value& start, const Value& stop, const Value& step, int64_t& b, int64_t& e,
                  int64_t& st) {
  auto get = [](const Value& v, bool& present) -> int64_t {
    present = !(v.is_undefined() || v.is_none());
    if (!present) return 0;
    if (!v.is_integral()) Fail("TypeError: slice indices must be integers or None");
    return v.int_value();
  };
  bool has_b, has_e, has_st;
  st = get(step, has_st);
  if (!has_st) st = 1;
  if (st == 0) Fail("ValueError: slice step cannot be zero");
  b = get(start, has_b);
  e = get(stop, has_e);
  auto clamp = [&](int64_t& x, bool has, int64_t dflt) {
    if (!has) {
      x = dflt;
      return;
    }
    if (x < 0) {
      x += n;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= n) {
      x = st < 0 ? n - 1 : n;
    }
  };
  clamp(b, has_b, st < 0 ? n - 1 : 0);
  clamp(e, has_e, st < 0 ? -1 : n);
}

}  // namespace

std::string UndefinedMessage(const Value& u) { return u.str().empty() ? "value is undefined" : u.str(); }

Value GetAttr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case ValueKind::kUndefined: Fail("UndefinedError: " + UndefinedMessage(obj));
    case ValueKind::kString:
      if (IsStrMethod(name)) {
        std::string s = obj.str();
        return Value::Function("str." + name, [s, name](CallArgs& a) { return StrMethod(s, name, a); });
      }
      if (IsOtherStrMethod(name)) Fail("unsupported string method '" + name + "'");
      return MissingAttr(obj, name);
    case ValueKind::kDict: {
      if (IsDictMethod(name)) {
        return Value::Function("dict." + name, [obj, name](CallArgs& a) { return DictMethod(obj, name, a); });
      }
      if (IsOtherDictMethod(name)) Fail("unsupported dict method '" + name + "' (dicts are immutable in templates)");
      const Value* v = obj.dict().Find(name);
      return v ? *v : MissingAttr(obj, name);
    }
    case ValueKind::kNamespace: {
      const Value* v = obj.dict().Find(name);
      return v ? *v : MissingAttr(obj, name);
    }
    case ValueKind::kList:
      if (IsListMethod(name)) Fail("unsupported list method '" + name + "' (lists are immutable in templates)");
      return MissingAttr(obj, name);
    case ValueKind::kBool:
    case ValueKind::kInt:
    case ValueKind::kFloat: {
      static const char* kNumberAttrs[] = {"real", "imag", "numerator", "denominator", "conjugate", "bit_length",
                                           "bit_count", "to_bytes", "from_bytes", "as_integer_ratio", "is_integer",
                                           "hex", "fromhex"};
      for (const char* a : kNumberAttrs) {
        if (name == a) Fail("unsupported attribute '" + name + "' of a number");
      }
      return MissingAttr(obj, name);
    }
    default: return MissingAttr(obj, name);
  }
}

Value GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) Fail("UndefinedError: " + UndefinedMessage(obj));
  if (obj.is_dict() || obj.is_namespace()) {
    if (key.is_string()) {
      if (const Value* v = obj.dict().Find(key.str()); v && obj.is_dict()) return *v;
      return GetAttr(obj, key.str());
    }
  } else if ((obj.is_list() && obj.seq() != SeqKind::kGenerator && obj.seq() != SeqKind::kKeysView &&
              obj.seq() != SeqKind::kValuesView && obj.seq() != SeqKind::kItemsView) ||
             obj.is_string()) {
    if (key.is_integral()) {
      int64_t i = key.int_value();
      if (obj.is_string()) {
        std::u32string u = DecodeUtf8(obj.str());
        int64_t n = static_cast<int64_t>(u.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::Undefined("'str object' has no element " + std::to_string(key.int_value()));
        return Value::Str(EncodeUtf8(std::u32string_view(u).substr(static_cast<size_t>(i), 1)));
      }
      int64_t n = static_cast<int64_t>(obj.items().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) {
        return Value::Undefined("'" + TypeName(obj) + " object' has no element " + std::to_string(key.int_value()));
      }
      return obj.items()[static_cast<size_t>(i)];
    }
  }
  if (key.is_string()) return GetAttr(obj, key.str());
  return Value::Undefined("'" + ObjectTypeRepr(obj) + "' has no element " + Repr(key));
}

Value GetSlice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) Fail("UndefinedError: " + UndefinedMessage(obj));
  const bool is_str = obj.is_string();
  if (!is_str && !(obj.is_list() && (obj.seq() == SeqKind::kList || obj.seq() == SeqKind::kTuple))) {
    return Value::Undefined("'" + ObjectTypeRepr(obj) + "' cannot be sliced");
  }
  std::u32string u;
  if (is_str) u = DecodeUtf8(obj.str());
  int64_t n = is_str ? static_cast<int64_t>(u.size()) : static_cast<int64_t>(obj.items().size());
  int64_t b, e, st;
  SliceIndices(n, start, stop, step, b, e, st);
  std::u32string out_s;
  std::vector<Value> out_l;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) {
    if (is_str) out_s.push_back(u[static_cast<size_t>(i)]);
    else out_l.push_back(obj.items()[static_cast<size_t>(i)]);
  }
  if (is_str) return Value::Str(EncodeUtf8(out_s));
  return Value::List(std::move(out_l), obj.seq());
}

DictData MakeGlobals() {
  DictData g;
  g.Set("raise_exception", Value::Function("raise_exception", [](CallArgs& a) -> Value {
          ArgBinder b("raise_exception()", a, {"message"});
          throw JinjaError(Str(b.Get(0)), /*raised=*/true);
        }));
  g.Set("strftime_now", Value::Function("strftime_now", [](CallArgs& a) {
          ArgBinder b("strftime_now()", a, {"format"});
          const std::string& fmt = NeedStr(b.Get(0), "format");
          std::time_t now = std::time(nullptr);
          std::tm tm{};
          localtime_r(&now, &tm);
          std::string buf(256 + fmt.size() * 8, '\0');
          size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
          if (n == 0 && !fmt.empty()) Fail("strftime_now: format produced no output");
          buf.resize(n);
          return Value::Str(std::move(buf));
        }));
  auto make_dict = [](const CallArgs& a, const char* what) {
    if (a.args.size() > 1) Fail(std::string(what) + " expected at most 1 positional argument");
    DictData d;
    if (!a.args.empty()) {
      if (!a.args[0].is_dict()) Fail(std::string(what) + ": positional argument must be a dict");
      d = a.args[0].dict();
    }
    for (const auto& [k, v] : a.kwargs) d.Set(k, v);
    return d;
  };
  g.Set("dict", Value::Function("dict", [make_dict](CallArgs& a) { return Value::Dict(make_dict(a, "dict()")); }));
  g.Set("namespace", Value::Function("namespace", [make_dict](CallArgs& a) {
          DictData d = make_dict(a, "namespace()");
          for (const auto& [k, v] : d.entries) {
            if (!k.empty() && k[0] == '_') Fail("SecurityError: namespace attributes cannot start with '_': " + k);
          }
          return Value::Namespace(std::move(d));
        }));
  g.Set("range", Value::Function("range", [](CallArgs& a) {
          if (!a.kwargs.empty() || a.args.empty() || a.args.size() > 3) Fail("range() takes 1 to 3 positional arguments");
          for (const Value& v : a.args) {
            if (!v.is_integral()) Fail("TypeError: '" + TypeName(v) + "' object cannot be interpreted as an integer");
          }
          int64_t start = 0, stop, step = 1;
          if (a.args.size() == 1) {
            stop = a.args[0].int_value();
          } else {
            start = a.args[0].int_value();
            stop = a.args[1].int_value();
            if (a.args.size() == 3) step = a.args[2].int_value();
          }
          if (step == 0) Fail("ValueError: range() arg 3 must not be zero");
          std::vector<Value> out;
          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (out.size() >= 100000) Fail("range too big (at most 100000 items, as in jinja2's sandbox)");
            out.push_back(Value::Int(i));
          }
          return Value::List(std::move(out));
        }));
  return g;
}

}  // namespace tandem::jinja
