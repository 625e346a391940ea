// The router's API keys (`--api-keys FILE`): who may call, which models they may use, the SLO
// class they are held to, and their limits. The file holds SHA-256 digests, never keys:
//
//   {"keys": [{"name": "alice", "sha256": "<64 hex digits: printf %s KEY | sha256sum>",
//              "models": ["small"],            // optional; absent or empty: every model
//              "slo_class": "interactive",     // optional; pins the class (see below)
//              "requests_per_minute": 60,      // optional limits; 0 or absent: none
//              "tokens_per_minute": 100000,    //   prompt + max_tokens of each request
//              "max_concurrent": 8}]}
//
// A presented key is hashed and compared with every digest in constant time (no early exit, so
// the time says nothing about which digest nearly matched); keys are never logged, names are.
// A key's `slo_class` must name a class of the router's --slo-config; its requests are held to
// that class, and one that asks for another class (body or X-SLO-Class) is refused.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "slo/slo_config.h"

namespace tandem {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);
// Lower-case hex, as sha256sum prints it (the file's "sha256" field).
std::string DigestHex(const Sha256Digest& digest);

struct ApiKeyLimits {
  double requests_per_minute = 0;  // 0: unlimited
  double tokens_per_minute = 0;
  int32_t max_concurrent = 0;

  bool any() const { return requests_per_minute > 0 || tokens_per_minute > 0 || max_concurrent > 0; }
};

struct ApiKey {
  std::string name;
  Sha256Digest sha256{};
  std::vector<std::string> models;  // empty: every model
  std::string slo_class;            // empty: not pinned
  ApiKeyLimits limits;

  bool MayUse(std::string_view model) const;
};

class ApiKeys {
 public:
  // InvalidArgument naming the file and the entry at fault (bad JSON, a digest that is not 64
  // hex digits, a duplicate name or digest, a negative limit, a class `slo` does not define);
  // NotFound for a missing file. `slo` may be null (then no key may pin a class).
  static Result<ApiKeys> FromFile(const std::string& path, const SloConfig* slo);
  static Result<ApiKeys> FromJson(const std::string& text, const std::string& source, const SloConfig* slo);
  // One key, as --api-key gives it: every model, no class, no limits.
  static ApiKeys Single(std::string_view key);

  // The entry whose digest matches `presented`, or -1. Constant time in which entry matches.
  int Find(std::string_view presented) const;
  const ApiKey& at(int index) const { return keys_[static_cast<size_t>(index)]; }
  int size() const { return static_cast<int>(keys_.size()); }

 private:
  std::vector<ApiKey> keys_;
};

}  // namespace tandem
