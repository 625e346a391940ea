// Per-request sampling parameters, with vLLM's names and semantics.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/status.h"

namespace tandem {

struct SamplingParams {
  float temperature = 1.0f;         // 0: greedy
  int32_t top_k = 0;                // 0 or -1: off
  float top_p = 1.0f;               // (0, 1]
  float min_p = 0.0f;               // [0, 1]
  float repetition_penalty = 1.0f;  // > 0; applies to prompt and output tokens
  float presence_penalty = 0.0f;    // [-2, 2]; output tokens only
  float frequency_penalty = 0.0f;   // [-2, 2]; output tokens only
  std::optional<uint64_t> seed;     // unset: the engine draws one at arrival
  int32_t max_tokens = 16;          // >= 1
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;

  bool greedy() const { return temperature <= 0.0f; }
  // Whether a draw reads the token history (the engine keeps it only then).
  bool uses_penalties() const {
    return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f;
  }
  // InvalidArgument naming the field and its allowed range.
  Status Validate() const;
};

}  // namespace tandem
