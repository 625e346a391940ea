// Values of the Jinja subset used by chat templates, with Python semantics.
//
// Chat templates are Python-flavoured: they print None as "None", compare 1 == 1.0, index
// strings by code point and iterate dicts in insertion order. Value mirrors exactly the Python
// objects a template can see after transformers' _plain_template_data (None, bool, int, float,
// str, list, tuple, dict) plus what Jinja adds (Undefined, namespace, callables, generators).
//
// Lists and dicts are immutable once built (the reference runs in jinja2's
// ImmutableSandboxedEnvironment), so they are shared by pointer and copying a Value is cheap.
// The one mutable object is the namespace, which has reference semantics like in Python.
//
// Errors inside the engine are thrown as JinjaError and turned into Status at the public
// boundary (chat_template.cc); the evaluator is deeply recursive and every Python operation
// can fail, so threading Result<> through each call would triple the code for no gain.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace tandem::jinja {

struct JinjaError : std::runtime_error {
  explicit JinjaError(std::string msg, bool raised = false)
      : std::runtime_error(msg), message(std::move(msg)), from_raise_exception(raised) {}
  std::string message;
  int line = 0;  // 0 until the evaluator attaches the innermost node's position
  int col = 0;
  bool from_raise_exception = false;  // raise_exception(msg) in the template
};

[[noreturn]] void Fail(std::string message);

// ---- Bounds of a render ----
// jinja2 bounds only range() (in its sandbox). Here neither a template (from a model directory)
// nor the request it renders may run for ever, exhaust memory or overflow the stack, so:
//  - work: every render has a meter, charged 1 unit per expression evaluated, statement run, loop
//    iteration and item visited by an operation over a sequence (comparing, searching, printing,
//    joining, copying), and 1 per 8 bytes of a string copied, built or searched (each about
//    0.1 us). Its budget is kBaseWorkUnits plus kWorkUnitsPerInputByte per byte of the strings
//    given to the render: the real templates (tests/data/chat_templates) use about 1.3 units per
//    input byte and a few thousand units per small conversation, while a template that runs away
//    stops after about 0.1 s. As everything built was paid for, the budget bounds memory as well;
//  - size: strings (the output included) hold at most kMaxStringBytes, sequences kMaxSeqItems
//    items, and lists and dicts nest at most kMaxValueDepth deep (as request JSON).
// Past a bound the render fails with a JinjaError that names it. The meter charged is the one
// of the render running on this thread (RenderTemplate installs it); outside a render only the
// size bounds apply. The parser bounds the template's own nesting (jinja_parser_internal.h).
inline constexpr size_t kMaxStringBytes = size_t{16} << 20;
inline constexpr size_t kMaxSeqItems = size_t{1} << 20;
inline constexpr int kMaxValueDepth = 256;
inline constexpr uint64_t kBaseWorkUnits = 1'000'000;
inline constexpr uint64_t kWorkUnitsPerInputByte = 8;

void ChargeWork(uint64_t units);
inline void ChargeBytes(size_t bytes) { ChargeWork(bytes / 8); }
// Searching `needle` in `haystack` (worst case of a naive search: every offset compared).
inline void ChargeSearch(size_t haystack, size_t needle) { ChargeWork((haystack / 8 + 1) * (needle / 8 + 1)); }
void CheckStringSize(size_t bytes);
void CheckSeqSize(size_t items);

// This thread's meter for its lifetime (renders do not nest, but a previous meter is restored).
class WorkMeter {
 public:
  explicit WorkMeter(uint64_t budget);
  ~WorkMeter();
  WorkMeter(const WorkMeter&) = delete;
  WorkMeter& operator=(const WorkMeter&) = delete;
  void Charge(uint64_t units);

 private:
  uint64_t budget_;
  uint64_t used_ = 0;
  WorkMeter* previous_;
};

class Value;
struct CallArgs;

enum class ValueKind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable, kNamespace };

// Python has several sequence types that print and behave differently; they share ListData.
enum class SeqKind {
  kList,
  kTuple,
  kKeysView,    // dict.keys()
  kValuesView,  // dict.values()
  kItemsView,   // dict.items()
  kGenerator,   // filters such as selectattr/map/reverse: single pass, always truthy, no len()
};

struct ListData {
  std::vector<Value> items;
  SeqKind seq = SeqKind::kList;
  mutable size_t consumed = 0;  // generators only: how many items were already taken
  int depth = 1;                // nesting of lists and dicts, this one included (Value::List)
};

struct DictData {
  std::vector<std::pair<std::string, Value>> entries;  // insertion order, as in Python
  int depth = 1;  // as ListData's, set by Value::Dict (a namespace, mutable, counts as 1)
  const Value* Find(std::string_view key) const;
  void Set(const std::string& key, Value value);
};

using NativeFn = std::function<Value(CallArgs&)>;
struct Callable {
  std::string name;
  NativeFn fn;
};

class Value {
 public:
  Value() = default;  // undefined
  static Value Undefined(std::string hint = "");
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value Str(std::string s, bool markup = false);
  static Value List(std::vector<Value> items, SeqKind seq = SeqKind::kList);
  static Value Dict(DictData dict);
  static Value Namespace(DictData attrs);
  static Value Function(std::string name, NativeFn fn);

  ValueKind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == ValueKind::kUndefined; }
  bool is_none() const { return kind_ == ValueKind::kNone; }
  bool is_bool() const { return kind_ == ValueKind::kBool; }
  bool is_int() const { return kind_ == ValueKind::kInt; }
  bool is_float() const { return kind_ == ValueKind::kFloat; }
  bool is_number() const { return is_bool() || is_int() || is_float(); }
  bool is_integral() const { return is_bool() || is_int(); }  // Python bool is an int
  bool is_string() const { return kind_ == ValueKind::kString; }
  bool is_list() const { return kind_ == ValueKind::kList; }
  bool is_dict() const { return kind_ == ValueKind::kDict; }
  bool is_callable() const { return kind_ == ValueKind::kCallable; }
  bool is_namespace() const { return kind_ == ValueKind::kNamespace; }
  bool is_markup() const { return markup_; }

  bool bool_value() const { return b_; }
  int64_t int_value() const { return kind_ == ValueKind::kBool ? (b_ ? 1 : 0) : i_; }
  double number_value() const;  // REQUIRES: is_number()
  const std::string& str() const { return s_; }            // string; hint for undefined
  const ListData& list() const { return *list_; }          // REQUIRES: is_list()
  const std::vector<Value>& items() const { return list_->items; }
  SeqKind seq() const { return list_->seq; }
  const DictData& dict() const { return *dict_; }          // dict or namespace
  DictData& mutable_namespace() const { return *dict_; }   // REQUIRES: is_namespace()
  const Callable& callable() const { return *fn_; }

 private:
  ValueKind kind_ = ValueKind::kUndefined;
  bool b_ = false;
  bool markup_ = false;  // jinja2 Markup (from |safe): '+' HTML-escapes the other operand
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<const ListData> list_;
  std::shared_ptr<DictData> dict_;
  std::shared_ptr<const Callable> fn_;
};

// Positional and keyword arguments of a call, filter or test.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

// Binds CallArgs to a Python-style signature; unknown or duplicate arguments are errors.
class ArgBinder {
 public:
  ArgBinder(std::string what, const CallArgs& call, std::vector<std::string> params);
  // Bound value, or undefined if the caller did not pass it.
  const Value& Get(size_t index) const { return bound_[index]; }
  bool Has(size_t index) const { return !bound_[index].is_undefined(); }

 private:
  std::vector<Value> bound_;
};

// Python semantics.
std::string TypeName(const Value& v);           // 'str', 'int', 'dict', 'Undefined', ...
bool Truthy(const Value& v);                    // bool(v)
std::string Str(const Value& v);                // str(v); undefined prints as ""
std::string Repr(const Value& v);               // repr(v)
bool Equal(const Value& a, const Value& b);     // a == b
int Compare(const Value& a, const Value& b);    // <0, 0, >0 for a < b; throws on TypeError
std::string FloatRepr(double f);                // repr(float): 1.0, 1e-05, 1e+16
int64_t Length(const Value& v);                 // len(v); throws when not sized
std::vector<Value> Iterate(const Value& v);     // iter(v); consumes generators
bool Contains(const Value& container, const Value& item);  // item in container

// Conversion from the caller's JSON (key order preserved) and json.dumps-compatible output.
Value FromJson(const nlohmann::ordered_json& j);
struct JsonDumpOptions {
  int indent = -1;  // -1: None; >= 0: newline + indent spaces per level
  std::string indent_str;  // used instead of `indent` spaces when non-empty
  bool sort_keys = false;
  std::string item_sep;  // empty: Python default (", " without indent, "," with)
  std::string key_sep = ": ";
  bool ensure_ascii = false;
};
std::string ToJson(const Value& v, const JsonDumpOptions& options);

}  // namespace tandem::jinja
