// SampleToken's documented semantics written the obvious way: sort the whole vocabulary by rank,
// walk prefixes. Milliseconds per token on a large vocabulary, so never on the serving path; it
// is the reference the real sampler is checked against (tests) and timed against (bench).
#pragma once

#include <cstdint>
#include <span>

#include "model/sampling_params.h"

namespace tandem {

// Same contract as SampleToken without penalties (apply them first); does not modify `logits`.
// REQUIRES: !params.greedy(), params.seed has a value.
int32_t SampleTokenBySorting(std::span<const float> logits, const SamplingParams& params, uint64_t step);

}  // namespace tandem
