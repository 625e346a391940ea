// Field accessors for tokenizer.json that never throw and name the JSON path in their errors
// ("pre_tokenizer.pretokenizers[0].pattern: expected a string").
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace tandem::tokenizer {

using Json = nlohmann::json;

inline std::string JoinPath(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
}

inline Status FieldError(std::string_view path, std::string_view what) {
  return InvalidArgumentError(std::string(path) + ": " + std::string(what));
}

// The member `key` of `obj`, or nullptr when absent or null.
inline const Json* FindField(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

inline Result<std::string> GetString(const Json& obj, std::string_view key, std::string_view path) {
  const Json* v = FindField(obj, key);
  if (v == nullptr) return FieldError(JoinPath(path, key), "missing");
  if (!v->is_string()) return FieldError(JoinPath(path, key), "expected a string");
  return v->get<std::string>();
}

inline Result<std::string> GetStringOr(const Json& obj, std::string_view key, std::string_view path,
                                       std::string fallback) {
  const Json* v = FindField(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_string()) return FieldError(JoinPath(path, key), "expected a string");
  return v->get<std::string>();
}

inline Result<bool> GetBoolOr(const Json& obj, std::string_view key, std::string_view path,
                              bool fallback) {
  const Json* v = FindField(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return FieldError(JoinPath(path, key), "expected a boolean");
  return v->get<bool>();
}

inline Result<int64_t> GetIntOr(const Json& obj, std::string_view key, std::string_view path,
                                int64_t fallback) {
  const Json* v = FindField(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_number_integer()) return FieldError(JoinPath(path, key), "expected an integer");
  return v->get<int64_t>();
}

inline Result<const Json*> GetArray(const Json& obj, std::string_view key, std::string_view path) {
  const Json* v = FindField(obj, key);
  if (v == nullptr) return FieldError(JoinPath(path, key), "missing");
  if (!v->is_array()) return FieldError(JoinPath(path, key), "expected an array");
  return v;
}

// "type" of a component object, with a precise error when it is not an object or has no type.
inline Result<std::string> GetType(const Json& obj, std::string_view path) {
  if (!obj.is_object()) return FieldError(path, "expected an object");
  return GetString(obj, "type", path);
}

}  // namespace tandem::tokenizer
