// What a chat template can call: jinja2's filters and tests, Python's str/dict methods, and
// the globals transformers adds (raise_exception, strftime_now, namespace, dict) plus range.
// Anything jinja2 has but this subset lacks is an error, never a silently different result.
#pragma once

#include <string>

#include "tokenizer/jinja_value.h"

namespace tandem::jinja {

bool HasFilter(const std::string& name);
bool HasTest(const std::string& name);
Value ApplyFilter(const std::string& name, const Value& input, const CallArgs& args);
bool ApplyTest(const std::string& name, const Value& input, const CallArgs& args);

// jinja2 Environment.getattr / getitem: `x.name` tries the Python attribute (str and dict
// methods) before the item, `x[key]` the item before the attribute; misses are undefined.
Value GetAttr(const Value& obj, const std::string& name);
Value GetItem(const Value& obj, const Value& key);
// obj[start:stop:step]; each bound may be none or undefined (omitted).
Value GetSlice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// The "'dict object' has no attribute 'x'" style hint carried by undefined results.
std::string UndefinedMessage(const Value& undefined);

// Globals of transformers' environment: range, dict, namespace, raise_exception, strftime_now.
DictData MakeGlobals();

}  // namespace tandem::jinja
