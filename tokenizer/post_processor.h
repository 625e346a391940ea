// Post-processors of tokenizer.json, for single sequences: TemplateProcessing, ByteLevel (no-op on
// ids), RobertaProcessing, BertProcessing, Sequence. Applied only when add_special_tokens is set.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/json_util.h"

namespace tandem::tokenizer {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Rewrites the ids of one encoded sequence (adds BOS/EOS-like tokens).
  virtual void Process(std::vector<TokenId>& ids) const = 0;
  // Number of ids Process adds (for length budgeting).
  virtual size_t AddedCount() const = 0;
};

Result<std::unique_ptr<PostProcessor>> ParsePostProcessor(const Json& json, const std::string& path);

}  // namespace tandem::tokenizer
