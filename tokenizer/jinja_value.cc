#include "tokenizer/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_string.h"

namespace tandem::jinja {

void Fail(std::string message) { throw JinjaError(std::move(message)); }

namespace {

thread_local WorkMeter* t_meter = nullptr;

// Nesting of a list or dict value (0 for scalars); namespaces count 1 whatever they hold.
int Depth(const Value& v) {
  if (v.is_list()) return v.list().depth;
  if (v.is_dict()) return v.dict().depth;
  return v.is_namespace() ? 1 : 0;
}

// Copying `items` (Values hold their strings by value).
void ChargeCopy(const std::vector<Value>& items) {
  uint64_t bytes = 0;
  for (const Value& item : items) bytes += item.str().size();
  ChargeWork(items.size());
  ChargeBytes(bytes);
}

}  // namespace

WorkMeter::WorkMeter(uint64_t budget) : budget_(budget), previous_(t_meter) { t_meter = this; }
WorkMeter::~WorkMeter() { t_meter = previous_; }

void WorkMeter::Charge(uint64_t units) {
  used_ += units;
  if (used_ > budget_) {
    Fail("the template exceeded its work budget (" + std::to_string(budget_) +
         " units: a loop or recursion too long for a chat prompt)");
  }
}

void ChargeWork(uint64_t units) {
  if (t_meter != nullptr) t_meter->Charge(units);
}

void CheckStringSize(size_t bytes) {
  if (bytes > kMaxStringBytes) {
    Fail("a string of the template grew past " + std::to_string(kMaxStringBytes) + " bytes");
  }
}

void CheckSeqSize(size_t items) {
  if (items > kMaxSeqItems) Fail("a sequence of the template grew past " + std::to_string(kMaxSeqItems) + " items");
}

const Value* DictData::Find(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k == key) return &v;
  }
  return nullptr;
}

void DictData::Set(const std::string& key, Value value) {
  for (auto& [k, v] : entries) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(key, std::move(value));
}

Value Value::Undefined(std::string hint) {
  Value v;
  v.s_ = std::move(hint);
  return v;
}
Value Value::None() {
  Value v;
  v.kind_ = ValueKind::kNone;
  return v;
}
Value Value::Bool(bool b) {
  Value v;
  v.kind_ = ValueKind::kBool;
  v.b_ = b;
  return v;
}
Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = ValueKind::kInt;
  v.i_ = i;
  return v;
}
Value Value::Float(double f) {
  Value v;
  v.kind_ = ValueKind::kFloat;
  v.f_ = f;
  return v;
}
Value Value::Str(std::string s, bool markup) {
  CheckStringSize(s.size());
  Value v;
  v.kind_ = ValueKind::kString;
  v.s_ = std::move(s);
  v.markup_ = markup;
  return v;
}
Value Value::List(std::vector<Value> items, SeqKind seq) {
  CheckSeqSize(items.size());
  ChargeCopy(items);
  int depth = 0;
  for (const Value& item : items) depth = std::max(depth, Depth(item));
  if (depth >= kMaxValueDepth) Fail("lists nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  Value v;
  v.kind_ = ValueKind::kList;
  auto data = std::make_shared<ListData>();
  data->depth = depth + 1;
  data->items = std::move(items);
  data->seq = seq;
  v.list_ = std::move(data);
  return v;
}
Value Value::Dict(DictData dict) {
  ChargeWork(dict.entries.size());
  int depth = 0;
  for (const auto& [k, item] : dict.entries) depth = std::max(depth, Depth(item));
  if (depth >= kMaxValueDepth) Fail("dicts nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  dict.depth = depth + 1;
  Value v;
  v.kind_ = ValueKind::kDict;
  v.dict_ = std::make_shared<DictData>(std::move(dict));
  return v;
}
Value Value::Namespace(DictData attrs) {
  Value v = Dict(std::move(attrs));
  v.kind_ = ValueKind::kNamespace;
  return v;
}
Value Value::Function(std::string name, NativeFn fn) {
  Value v;
  v.kind_ = ValueKind::kCallable;
  v.fn_ = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

double Value::number_value() const {
  if (kind_ == ValueKind::kFloat) return f_;
  return static_cast<double>(int_value());
}

ArgBinder::ArgBinder(std::string what, const CallArgs& call, std::vector<std::string> params)
    : bound_(params.size()) {
  if (call.args.size() > params.size()) {
    Fail(what + " takes at most " + std::to_string(params.size()) + " argument(s), got " +
         std::to_string(call.args.size()));
  }
  for (size_t i = 0; i < call.args.size(); ++i) bound_[i] = call.args[i];
  for (const auto& [name, value] : call.kwargs) {
    auto it = std::find(params.begin(), params.end(), name);
    if (it == params.end()) Fail(what + " got an unexpected keyword argument '" + name + "'");
    size_t idx = static_cast<size_t>(it - params.begin());
    if (idx < call.args.size()) Fail(what + " got multiple values for argument '" + name + "'");
    bound_[idx] = value;
  }
}

std::string TypeName(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kUndefined: return "Undefined";
    case ValueKind::kNone: return "NoneType";
    case ValueKind::kBool: return "bool";
    case ValueKind::kInt: return "int";
    case ValueKind::kFloat: return "float";
    case ValueKind::kString: return "str";
    case ValueKind::kDict: return "dict";
    case ValueKind::kCallable: return "function";
    case ValueKind::kNamespace: return "Namespace";
    case ValueKind::kList:
      switch (v.seq()) {
        case SeqKind::kList: return "list";
        case SeqKind::kTuple: return "tuple";
        case SeqKind::kKeysView: return "dict_keys";
        case SeqKind::kValuesView: return "dict_values";
        case SeqKind::kItemsView: return "dict_items";
        case SeqKind::kGenerator: return "generator";
      }
  }
  return "object";
}

bool Truthy(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kUndefined:
    case ValueKind::kNone: return false;
    case ValueKind::kBool: return v.bool_value();
    case ValueKind::kInt: return v.int_value() != 0;
    case ValueKind::kFloat: return v.number_value() != 0.0;
    case ValueKind::kString: return !v.str().empty();
    case ValueKind::kList: return v.seq() == SeqKind::kGenerator || !v.items().empty();
    case ValueKind::kDict: return !v.dict().entries.empty();
    case ValueKind::kCallable:
    case ValueKind::kNamespace: return true;
  }
  return false;
}

std::string FloatRepr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // shortest round-trip: "-1.2345e-05"
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e_pos = sci.find('e');
  std::string digits = sci.substr(0, e_pos);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  int exp = std::stoi(sci.substr(e_pos + 1));
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exp) + 1) + "." + digits.substr(static_cast<size_t>(exp) + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char ebuf[16];
  snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
  return out + ebuf;
}

namespace {

std::string JoinRepr(const std::vector<Value>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += Repr(items[i]);
    ChargeWork(1);
    CheckStringSize(out.size());
  }
  return out;
}

std::string DictRepr(const DictData& d) {
  std::string out = "{";
  for (size_t i = 0; i < d.entries.size(); ++i) {
    if (i) out += ", ";
    out += PyStrRepr(d.entries[i].first) + ": " + Repr(d.entries[i].second);
    ChargeWork(1);
    CheckStringSize(out.size());
  }
  return out + "}";
}

}  // namespace

std::string Repr(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kUndefined: return "Undefined";
    case ValueKind::kString: return PyStrRepr(v.str());
    case ValueKind::kDict: return DictRepr(v.dict());
    case ValueKind::kList:
      switch (v.seq()) {
        case SeqKind::kList: return "[" + JoinRepr(v.items()) + "]";
        case SeqKind::kTuple:
          return v.items().size() == 1 ? "(" + Repr(v.items()[0]) + ",)" : "(" + JoinRepr(v.items()) + ")";
        case SeqKind::kKeysView: return "dict_keys([" + JoinRepr(v.items()) + "])";
        case SeqKind::kValuesView: return "dict_values([" + JoinRepr(v.items()) + "])";
        case SeqKind::kItemsView: return "dict_items([" + JoinRepr(v.items()) + "])";
        case SeqKind::kGenerator: break;
      }
      Fail("cannot render a generator object (add '|list')");
    default: return Str(v);
  }
}

std::string Str(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kUndefined: return "";
    case ValueKind::kNone: return "None";
    case ValueKind::kBool: return v.bool_value() ? "True" : "False";
    case ValueKind::kInt: return std::to_string(v.int_value());
    case ValueKind::kFloat: return FloatRepr(v.number_value());
    case ValueKind::kString: return v.str();
    case ValueKind::kNamespace: return "<Namespace " + DictRepr(v.dict()) + ">";
    case ValueKind::kCallable: Fail("cannot render callable '" + v.callable().name + "' (missing call parentheses?)");
    default: return Repr(v);
  }
}

bool Equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.int_value() == b.int_value();
    return a.number_value() == b.number_value();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case ValueKind::kUndefined:
    case ValueKind::kNone: return true;
    case ValueKind::kString: return a.str() == b.str();
    case ValueKind::kList: {
      if (a.seq() != b.seq() || a.seq() == SeqKind::kGenerator) return &a.list() == &b.list();
      if (a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i) {
        ChargeWork(1);
        if (!Equal(a.items()[i], b.items()[i])) return false;
      }
      return true;
    }
    case ValueKind::kDict: {
      if (a.dict().entries.size() != b.dict().entries.size()) return false;
      for (const auto& [k, v] : a.dict().entries) {
        ChargeWork(b.dict().entries.size());  // Find is a linear scan
        const Value* other = b.dict().Find(k);
        if (!other || !Equal(v, *other)) return false;
      }
      return true;
    }
    case ValueKind::kNamespace: return &a.dict() == &b.dict();
    case ValueKind::kCallable: return &a.callable() == &b.callable();
    default: return false;
  }
}

int Compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) {
      return a.int_value() < b.int_value() ? -1 : (a.int_value() > b.int_value() ? 1 : 0);
    }
    double x = a.number_value(), y = b.number_value();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) return a.str().compare(b.str()) < 0 ? -1 : (a.str() == b.str() ? 0 : 1);
  if (a.is_list() && b.is_list() && a.seq() == b.seq() &&
      (a.seq() == SeqKind::kList || a.seq() == SeqKind::kTuple)) {
    size_t n = std::min(a.items().size(), b.items().size());
    for (size_t i = 0; i < n; ++i) {
      ChargeWork(1);
      if (!Equal(a.items()[i], b.items()[i])) return Compare(a.items()[i], b.items()[i]);
    }
    return a.items().size() < b.items().size() ? -1 : (a.items().size() > b.items().size() ? 1 : 0);
  }
  Fail("TypeError: '<' not supported between instances of '" + TypeName(a) + "' and '" + TypeName(b) + "'");
}

int64_t Length(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kUndefined: return 0;
    case ValueKind::kString: return static_cast<int64_t>(DecodeUtf8(v.str()).size());
    case ValueKind::kDict: return static_cast<int64_t>(v.dict().entries.size());
    case ValueKind::kList:
      if (v.seq() != SeqKind::kGenerator) return static_cast<int64_t>(v.items().size());
      break;
    default: break;
  }
  Fail("TypeError: object of type '" + TypeName(v) + "' has no len()");
}

std::vector<Value> Iterate(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kUndefined: return {};
    case ValueKind::kList: {
      const ListData& l = v.list();
      ChargeCopy(l.items);
      if (l.seq != SeqKind::kGenerator) return l.items;
      std::vector<Value> rest(l.items.begin() + static_cast<std::ptrdiff_t>(l.consumed), l.items.end());
      l.consumed = l.items.size();
      return rest;
    }
    case ValueKind::kDict: {
      std::vector<Value> keys;
      ChargeWork(v.dict().entries.size());
      for (const auto& [k, unused] : v.dict().entries) keys.push_back(Value::Str(k));
      return keys;
    }
    case ValueKind::kString: {
      std::vector<Value> chars;
      ChargeWork(v.str().size());
      CheckSeqSize(v.str().size());
      for (char32_t c : DecodeUtf8(v.str())) {
        std::string s;
        AppendUtf8(s, c);
        chars.push_back(Value::Str(std::move(s)));
      }
      return chars;
    }
    default: Fail("TypeError: '" + TypeName(v) + "' object is not iterable");
  }
}

bool Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case ValueKind::kUndefined: return false;
    case ValueKind::kString:
      if (!item.is_string()) {
        Fail("TypeError: 'in <string>' requires string as left operand, not " + TypeName(item));
      }
      ChargeSearch(container.str().size(), item.str().size());
      return container.str().find(item.str()) != std::string::npos;
    case ValueKind::kDict:
      ChargeWork(container.dict().entries.size());
      return item.is_string() && container.dict().Find(item.str()) != nullptr;
    case ValueKind::kList: {
      const ListData& l = container.list();
      ChargeWork(l.items.size());
      if (l.seq != SeqKind::kGenerator) {
        return std::any_of(l.items.begin(), l.items.end(), [&](const Value& x) { return Equal(x, item); });
      }
      while (l.consumed < l.items.size()) {
        if (Equal(l.items[l.consumed++], item)) return true;
      }
      return false;
    }
    default: Fail("TypeError: argument of type '" + TypeName(container) + "' is not iterable");
  }
}

namespace {

// Request JSON is untrusted: bound the nesting so that conversion cannot exhaust the stack.
constexpr int kMaxJsonDepth = 256;

Value FromJsonAt(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxJsonDepth) Fail("JSON input nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::None();
    case nlohmann::ordered_json::value_t::boolean: return Value::Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) Fail("integer " + std::to_string(u) + " is out of range");
      return Value::Int(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value::Float(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value::Str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromJsonAt(e, depth + 1));
      return Value::List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      DictData d;
      // ordered_json keys are unique, so append instead of the O(n) DictData::Set.
      d.entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) d.entries.emplace_back(it.key(), FromJsonAt(it.value(), depth + 1));
      return Value::Dict(std::move(d));
    }
    default: Fail("unsupported JSON value (binary or discarded)");
  }
}

}  // namespace

Value FromJson(const nlohmann::ordered_json& j) { return FromJsonAt(j, 0); }

namespace {

void JsonEscapeByte(std::string& out, char ch) {
  auto c = static_cast<unsigned char>(ch);
  switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      if (c < 0x20) {
        char buf[8];
        snprintf(buf, sizeof(buf), "\\u%04x", c);
        out += buf;
      } else {
        out += ch;
      }
  }
}

// json.dumps string escaping; with ensure_ascii, non-ASCII becomes \uXXXX (surrogate pairs).
void JsonString(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  if (!ensure_ascii) {
    for (char ch : s) JsonEscapeByte(out, ch);
  } else {
    char buf[16];
    for (char32_t c : DecodeUtf8(s)) {
      if (c < 0x7f) {
        JsonEscapeByte(out, static_cast<char>(c));
      } else if (c < 0x10000) {
        snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
        out += buf;
      } else {
        unsigned v = static_cast<unsigned>(c) - 0x10000;
        snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
        out += buf;
      }
    }
  }
  out += '"';
}

void JsonDump(std::string& out, const Value& v, const JsonDumpOptions& o, int level) {
  switch (v.kind()) {
    case ValueKind::kNone: out += "null"; return;
    case ValueKind::kBool: out += v.bool_value() ? "true" : "false"; return;
    case ValueKind::kInt: out += std::to_string(v.int_value()); return;
    case ValueKind::kFloat: {
      double f = v.number_value();
      if (std::isnan(f)) out += "NaN";
      else if (std::isinf(f)) out += f > 0 ? "Infinity" : "-Infinity";
      else out += FloatRepr(f);
      return;
    }
    case ValueKind::kString:
      ChargeBytes(v.str().size());
      JsonString(out, v.str(), o.ensure_ascii);
      CheckStringSize(out.size());
      return;
    default: break;
  }
  const bool pretty = o.indent >= 0 || !o.indent_str.empty();
  CheckStringSize(static_cast<size_t>(std::max(o.indent, 0)));
  std::string unit = !o.indent_str.empty() ? o.indent_str : std::string(static_cast<size_t>(std::max(o.indent, 0)), ' ');
  std::string item_sep = !o.item_sep.empty() ? o.item_sep : (pretty ? "," : ", ");
  auto newline = [&](int lvl) {
    if (!pretty) return;
    out += '\n';
    for (int i = 0; i < lvl; ++i) {
      out += unit;
      ChargeBytes(unit.size());
      CheckStringSize(out.size());
    }
  };
  if (v.is_list() && (v.seq() == SeqKind::kList || v.seq() == SeqKind::kTuple)) {
    if (v.items().empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (size_t i = 0; i < v.items().size(); ++i) {
      if (i) out += item_sep;
      newline(level + 1);
      JsonDump(out, v.items()[i], o, level + 1);
      ChargeWork(1);
      CheckStringSize(out.size());
    }
    newline(level);
    out += ']';
    return;
  }
  if (v.is_dict()) {
    if (v.dict().entries.empty()) {
      out += "{}";
      return;
    }
    std::vector<const std::pair<std::string, Value>*> entries;
    for (const auto& e : v.dict().entries) entries.push_back(&e);
    if (o.sort_keys) {
      std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
    }
    out += '{';
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) out += item_sep;
      newline(level + 1);
      JsonString(out, entries[i]->first, o.ensure_ascii);
      out += o.key_sep;
      JsonDump(out, entries[i]->second, o, level + 1);
      ChargeWork(1);
      CheckStringSize(out.size());
    }
    newline(level);
    out += '}';
    return;
  }
  Fail("TypeError: Object of type " + TypeName(v) + " is not JSON serializable");
}

}  // namespace

std::string ToJson(const Value& v, const JsonDumpOptions& options) {
  std::string out;
  JsonDump(out, v, options, 0);
  return out;
}

}  // namespace tandem::jinja
