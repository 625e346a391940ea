#include "frontend/output_processor.h"

namespace tandem {

OutputProcessor::OutputProcessor(const Tokenizer& tokenizer, std::span<const int32_t> prompt,
                                 std::vector<std::string> stop)
    : decoder_(tokenizer, /*skip_special_tokens=*/true, prompt), matcher_(std::move(stop)) {}

std::string OutputProcessor::Add(std::span<const int32_t> tokens, FinishReason engine_finish) {
  std::string out;
  if (finished_) return out;
  for (int32_t token : tokens) {
    ++num_output_tokens_;
    out += matcher_.Add(decoder_.Step(token));
    if (matcher_.stopped()) {
      finished_ = true;
      finish_reason_ = FinishReason::kStop;
      return out;
    }
  }
  if (engine_finish == FinishReason::kNone) return out;
  out += matcher_.Add(decoder_.Flush());  // the tail may still complete a stop string
  if (!matcher_.stopped()) out += matcher_.Flush();
  finished_ = true;
  finish_reason_ = matcher_.stopped() ? FinishReason::kStop : engine_finish;
  return out;
}

}  // namespace tandem
