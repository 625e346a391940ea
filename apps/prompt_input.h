// Turns the prompt flags of `generate` (and later the serving commands) into token ids, and
// the generated ids back into streamed text.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

// Parses "1,2,3" (spaces allowed) into ids; InvalidArgument naming the bad item.
Result<std::vector<int32_t>> ParseTokenIds(const std::string& text);

// Streams text for generated ids without ever printing a broken UTF-8 sequence.
class TextStreamer {
 public:
  virtual ~TextStreamer() = default;
  virtual std::string Add(int32_t token) = 0;
  virtual std::string Finish() = 0;
};

struct PromptInput {
  std::vector<int32_t> ids;
  std::string model_dir;
  Result<std::unique_ptr<TextStreamer>> MakeStreamer() const;
};

// Exactly one of `text` or `ids_csv` is non-empty. With `chat`, `text` becomes one user message
// rendered with the model's chat template (generation prompt on).
Result<PromptInput> PreparePrompt(const std::string& model_dir, const std::string& text,
                                  const std::string& ids_csv, bool chat);

}  // namespace tandem
