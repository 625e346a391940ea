#include "frontend/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/file_io.h"

namespace tandem {

Sha256Digest Sha256(std::string_view data) {
  Sha256Digest out{};
  unsigned int len = 0;
  // One-shot digest; cannot fail for SHA-256 with a valid output buffer.
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

std::string DigestHex(const Sha256Digest& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (uint8_t b : digest) {
    hex += kDigits[b >> 4];
    hex += kDigits[b & 15];
  }
  return hex;
}

bool ApiKey::MayUse(std::string_view model) const {
  return models.empty() || std::find(models.begin(), models.end(), model) != models.end();
}

namespace {

bool ParseDigest(const std::string& hex, Sha256Digest* out) {
  if (hex.size() != 64) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < 32; ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

// A non-negative finite number in `entry[field]` (absent: 0).
Status ReadLimit(const nlohmann::json& entry, const char* field, const std::string& who, double* out) {
  if (!entry.contains(field)) return Status::Ok();
  const nlohmann::json& v = entry[field];
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0) {
    return InvalidArgumentError(who + field + " must be a non-negative number");
  }
  *out = v.get<double>();
  return Status::Ok();
}

}  // namespace

Result<ApiKeys> ApiKeys::FromFile(const std::string& path, const SloConfig* slo) {
  auto text = ReadTextFile(path);
  if (!text.ok()) return text.status().WithContext("--api-keys");
  return FromJson(*text, "--api-keys " + path, slo);
}

Result<ApiKeys> ApiKeys::FromJson(const std::string& text, const std::string& source, const SloConfig* slo) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("keys") || !j["keys"].is_array() || j["keys"].empty()) {
    return InvalidArgumentError(source + ": expected {\"keys\": [{\"name\": ..., \"sha256\": ...}]}");
  }
  ApiKeys keys;
  for (size_t i = 0; i < j["keys"].size(); ++i) {
    const nlohmann::json& e = j["keys"][i];
    std::string who = source + ": key " + std::to_string(i) + ": ";
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || e["name"].get<std::string>().empty()) {
      return InvalidArgumentError(who + "needs a non-empty string \"name\"");
    }
    ApiKey key;
    key.name = e["name"].get<std::string>();
    who = source + ": key " + key.name + ": ";
    if (!e.contains("sha256") || !e["sha256"].is_string() ||
        !ParseDigest(e["sha256"].get<std::string>(), &key.sha256)) {
      return InvalidArgumentError(who +
                                  "\"sha256\" must be the key's SHA-256 as 64 hex digits (printf %s KEY | sha256sum)");
    }
    if (e.contains("models")) {
      if (!e["models"].is_array()) return InvalidArgumentError(who + "\"models\" must be an array of model names");
      for (const nlohmann::json& m : e["models"]) {
        if (!m.is_string()) return InvalidArgumentError(who + "\"models\" must be an array of model names");
        key.models.push_back(m.get<std::string>());
      }
    }
    if (e.contains("slo_class")) {
      if (!e["slo_class"].is_string()) return InvalidArgumentError(who + "\"slo_class\" must be a string");
      key.slo_class = e["slo_class"].get<std::string>();
      if (slo == nullptr || slo->Find(key.slo_class) == nullptr) {
        return InvalidArgumentError(who + "SLO class '" + key.slo_class + "' is not defined (" +
                                    (slo ? "known classes: " + slo->Names() : "the router has no --slo-config") + ")");
      }
    }
    RETURN_IF_ERROR(ReadLimit(e, "requests_per_minute", who, &key.limits.requests_per_minute));
    RETURN_IF_ERROR(ReadLimit(e, "tokens_per_minute", who, &key.limits.tokens_per_minute));
    double concurrent = 0;
    RETURN_IF_ERROR(ReadLimit(e, "max_concurrent", who, &concurrent));
    if (concurrent != std::floor(concurrent) || concurrent > 1e6) {
      return InvalidArgumentError(who + "max_concurrent must be a whole number");
    }
    key.limits.max_concurrent = static_cast<int32_t>(concurrent);
    for (const ApiKey& other : keys.keys_) {
      if (other.name == key.name) return InvalidArgumentError(who + "the name is used twice");
      if (other.sha256 == key.sha256) return InvalidArgumentError(who + "the same key as " + other.name);
    }
    keys.keys_.push_back(std::move(key));
  }
  return keys;
}

ApiKeys ApiKeys::Single(std::string_view key) {
  ApiKeys keys;
  ApiKey k;
  k.name = "api-key";
  k.sha256 = Sha256(key);
  keys.keys_.push_back(std::move(k));
  return keys;
}

int ApiKeys::Find(std::string_view presented) const {
  const Sha256Digest digest = Sha256(presented);
  int found = -1;
  for (size_t i = 0; i < keys_.size(); ++i) {
    // Every digest is compared whatever matched before; the select is branch-free on the result.
    const int equal = CRYPTO_memcmp(digest.data(), keys_[i].sha256.data(), digest.size()) == 0;
    found = equal * static_cast<int>(i) + (1 - equal) * found;
  }
  return found;
}

}  // namespace tandem
