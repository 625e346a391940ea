#include "engine/request_rules.h"

#include <string>

namespace tandem {

RequestLimits RequestLimits::ForModel(const ModelConfig& config) {
  RequestLimits l;
  l.vocab_size = config.vocab_size;
  l.context_window = config.max_position_embeddings;
  l.sliding_window = config.sliding_window;
  return l;
}

Status ValidateRequest(std::span<const int32_t> prompt, const SamplingParams& params, const RequestLimits& limits) {
  if (prompt.empty()) return InvalidArgumentError("prompt is empty");
  for (int32_t t : prompt) {
    if (t < 0 || (limits.vocab_size > 0 && t >= limits.vocab_size)) {
      return InvalidArgumentError("prompt token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                                  std::to_string(limits.vocab_size) + ")");
    }
  }
  RETURN_IF_ERROR(params.Validate());
  if (limits.require_seed && !params.greedy() && !params.seed.has_value()) {
    return InvalidArgumentError("sampled request without a seed (the router draws it, so that the prefill and "
                                "decode nodes draw from the same stream)");
  }
  const int64_t total = static_cast<int64_t>(prompt.size()) + params.max_tokens;
  if (limits.context_window > 0 && total > limits.context_window) {
    return OutOfRangeError("prompt (" + std::to_string(prompt.size()) + " tokens) + max_tokens (" +
                           std::to_string(params.max_tokens) + ") exceeds the context window of " +
                           std::to_string(limits.context_window) + " tokens");
  }
  // Within the window, full attention is exactly sliding-window attention.
  if (limits.sliding_window > 0 && total > limits.sliding_window) {
    return OutOfRangeError("prompt + max_tokens (" + std::to_string(total) + ") exceeds the model's sliding window of " +
                           std::to_string(limits.sliding_window) + " tokens, which this runtime does not implement");
  }
  if (limits.pool_blocks > 0 && limits.block_size > 0) {
    const int32_t blocks = KvBlocksForRequest(static_cast<int64_t>(prompt.size()), params.max_tokens, limits.block_size);
    if (blocks > limits.pool_blocks) {
      return OutOfRangeError("prompt + max_tokens (" + std::to_string(total) + " tokens) needs " +
                             std::to_string(blocks) + " KV blocks; the pool holds " +
                             std::to_string(limits.pool_blocks));
    }
  }
  return Status::Ok();
}

}  // namespace tandem
