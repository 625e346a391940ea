// The rules every entry point applies to a request, written once: what makes a request valid
// for a model, and how many KV blocks it holds. The router (which links no kernels), the
// colocated engine and both node roles call these; nothing re-derives them.
#pragma once

#include <cstdint>
#include <span>

#include "common/status.h"
#include "model/kv_blocks.h"
#include "model/model_config.h"
#include "model/sampling_params.h"

namespace tandem {

// A field left 0 is not checked (a router that has not loaded the model's config yet).
struct RequestLimits {
  int64_t vocab_size = 0;      // token ids must lie in [0, vocab_size)
  int64_t context_window = 0;  // prompt + max_tokens <= this (max_position_embeddings)
  int64_t sliding_window = 0;  // 0: none. Beyond it we would silently differ from the reference.
  // The pool that must hold the request for its whole life: KvBlocksForRequest <= pool_blocks.
  // 0 = not checked here (the router checks against the largest decode pool it knows).
  int32_t block_size = 0;
  int32_t pool_blocks = 0;
  // Nodes: a sampled request must carry its seed, so that the prefill node (first token) and the
  // decode node (the rest) draw from one stream. The router draws it when the client gave none.
  bool require_seed = false;

  static RequestLimits ForModel(const ModelConfig& config);
};

// KV blocks a request holds for its whole life where it decodes: prompt + max_tokens tokens.
// The decode node reserves this many, the colocated engine allocates this many at admission,
// and the router charges this many to the decode node it places the request on.
// REQUIRES: block_size > 0.
inline int32_t KvBlocksForRequest(int64_t prompt_tokens, int64_t max_tokens, int32_t block_size) {
  return BlocksForTokens(prompt_tokens + max_tokens, block_size);
}

// InvalidArgument: empty prompt, a token id outside the vocabulary, bad sampling parameters, a
// missing seed (require_seed). OutOfRange: prompt + max_tokens beyond the context or sliding
// window, or more KV blocks than the pool holds (waiting would never help).
Status ValidateRequest(std::span<const int32_t> prompt, const SamplingParams& params, const RequestLimits& limits);

}  // namespace tandem
