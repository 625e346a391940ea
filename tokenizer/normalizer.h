// Normalizers of tokenizer.json: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents,
// Prepend, Replace, ByteLevel, Sequence. The reference tracks offsets through normalization;
// Tandem only needs the normalized string.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"

namespace tandem::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Normalizes `text` in place. REQUIRES: `text` is valid UTF-8 (and stays so).
  virtual Status Normalize(std::string& text) const = 0;
};

// Builds the normalizer described by `json` ("normalizer" of tokenizer.json); `path` names it
// in errors ("normalizer.normalizers[2]").
Result<std::unique_ptr<Normalizer>> ParseNormalizer(const Json& json, const std::string& path);

// The pattern object shared by Replace, Split and the Replace decoder: {"String": literal} or
// {"Regex": oniguruma pattern}.
Result<Regex> ParsePattern(const Json& json, const std::string& path);

}  // namespace tandem::tokenizer
