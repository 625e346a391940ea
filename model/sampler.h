// Turns one sequence's logits into its next token. Stateless: everything a draw depends on
// (the request's seed, the index of the token being drawn, the token history) is passed in,
// so the same seed gives the same tokens whatever else shares the batch, on any node.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "model/sampling_params.h"

namespace tandem {

// Token counts a penalty needs: every token seen (prompt + output) and output tokens only.
class TokenHistory {
 public:
  void AddPrompt(std::span<const int32_t> tokens);
  void AddOutput(int32_t token);
  const std::unordered_map<int32_t, int32_t>& output_counts() const { return output_counts_; }
  const std::unordered_map<int32_t, int32_t>& all_counts() const { return all_counts_; }

 private:
  std::unordered_map<int32_t, int32_t> all_counts_;
  std::unordered_map<int32_t, int32_t> output_counts_;
};

// A uniform double in [0, 1) from (seed, step) with a counter-based generator; the CUDA
// sampler implements the same function.
double SampleUniform(uint64_t seed, uint64_t step);

// Samples a token from `logits` (modified in place: penalties, temperature, filters).
// `step` is the index of the output token being drawn (0 for the first).
// REQUIRES: params.Validate().ok(); params.seed has a value unless greedy.
int32_t SampleToken(std::span<float> logits, const SamplingParams& params,
                    const TokenHistory& history, uint64_t step);

}  // namespace tandem
