// One request from arrival to finish: ids, sampling parameters, the tokens so far, its KV
// blocks, and the timestamped event log from which TTFT and TPOT are computed.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include "model/sampler.h"
#include "model/sampling_params.h"

namespace tandem {

enum class FinishReason { kNone, kStop, kLength, kAbort, kError };
std::string_view FinishReasonName(FinishReason r);  // OpenAI spelling: "stop", "length", ...

inline int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct RequestTimeline {
  int64_t arrival_us = 0;
  int64_t scheduled_us = 0;      // first time any of its tokens ran
  int64_t first_token_us = 0;
  int64_t finish_us = 0;
  std::vector<int64_t> token_us; // one per output token

  double ttft_ms() const { return (first_token_us - arrival_us) / 1000.0; }
  // Mean time per output token after the first.
  double mean_tpot_ms() const {
    return token_us.size() < 2 ? 0.0
                               : (token_us.back() - token_us.front()) / 1000.0 / (token_us.size() - 1);
  }
};

struct Request {
  int64_t id = 0;
  std::vector<int32_t> prompt;
  SamplingParams params;
  std::vector<int32_t> output;
  std::vector<int32_t> block_table;  // KV blocks reserved for prompt + max_tokens
  int32_t num_computed = 0;          // tokens whose K/V are in the cache
  TokenHistory history;
  FinishReason finish_reason = FinishReason::kNone;
  RequestTimeline timeline;

  int32_t total_tokens() const { return static_cast<int32_t>(prompt.size() + output.size()); }
  bool prefill_done() const { return num_computed >= static_cast<int32_t>(prompt.size()); }
  bool finished() const { return finish_reason != FinishReason::kNone; }
};

}  // namespace tandem
