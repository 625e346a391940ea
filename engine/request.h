// One sequence in the engine core, from arrival to finish: ids, sampling parameters, the tokens
// so far, its KV blocks, and its RequestRecord (the node-side stamps: queued, prefill start and
// end, first token, each token, finish).
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "model/sampler.h"
#include "model/sampling_params.h"
#include "slo/request_record.h"

namespace tandem {

struct Request {
  int64_t id = 0;
  std::vector<int32_t> prompt;
  SamplingParams params;
  std::vector<int32_t> output;
  std::vector<int32_t> block_table;  // KV blocks held (see the Scheduler for how many)
  int32_t num_computed = 0;          // tokens whose K/V are in the cache
  TokenHistory history;
  FinishReason finish_reason = FinishReason::kNone;
  Status status;  // why it failed (kError)
  RequestRecord record;

  int32_t total_tokens() const { return static_cast<int32_t>(prompt.size() + output.size()); }
  int32_t remaining_prompt() const { return static_cast<int32_t>(prompt.size()) - num_computed; }
  bool prefill_done() const { return num_computed >= static_cast<int32_t>(prompt.size()); }
  bool finished() const { return finish_reason != FinishReason::kNone; }
};

}  // namespace tandem
