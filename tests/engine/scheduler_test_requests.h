// What the Scheduler tests without a model share: limits for a 100-token vocabulary and greedy
// requests whose prompts are easy to recognise.
#pragma once

#include <cstdint>

#include "engine/request.h"
#include "engine/request_rules.h"

namespace tandem::testing {

inline RequestLimits SmallVocabularyLimits() {
  RequestLimits l;
  l.vocab_size = 100;
  l.context_window = 1000;
  return l;
}

// A greedy request with a `prompt_len`-token prompt (ids 10, 11, ...) that stops on EOS.
inline Request GreedyRequest(int64_t id, int prompt_len, int max_tokens) {
  Request r;
  r.id = id;
  for (int i = 0; i < prompt_len; ++i) r.prompt.push_back(10 + i % 80);
  r.params.temperature = 0.0f;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = false;
  return r;
}

}  // namespace tandem::testing
