// Decoders of tokenizer.json: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder,
// Sequence. Like the reference, each rewrites the list of token strings (decode_chain) and the
// final text is their concatenation.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "tokenizer/json_util.h"

namespace tandem::tokenizer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>& tokens) const = 0;
};

Result<std::unique_ptr<Decoder>> ParseDecoder(const Json& json, const std::string& path);

}  // namespace tandem::tokenizer
