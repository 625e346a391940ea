// One sequence in the engine core, from arrival to finish: ids, sampling parameters, the tokens
// so far, its KV blocks, and its RequestRecord (the node-side stamps: queued, prefill start and
// end, first token, each token, finish).
//
// Its "prefill" is the run of tokens whose K/V must be in the cache before the next token is
// drawn: the prompt, or, after a preemption dropped its blocks, the prompt and every output token
// but the last (recomputed; decoding then resumes with the last output token as input, so the
// next token is drawn by a decode step exactly as without the preemption).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/block_hash.h"
#include "model/sampler.h"
#include "model/sampling_params.h"
#include "slo/request_record.h"

namespace tandem {

struct Request {
  int64_t id = 0;
  std::vector<int32_t> prompt;
  SamplingParams params;
  std::vector<int32_t> output;
  std::vector<int32_t> block_table;    // KV blocks held (see the Scheduler for how many)
  int32_t num_computed = 0;            // tokens whose K/V are in the cache
  std::vector<int32_t> resume_tokens;  // after a preemption: prompt + output[:-1]; else empty
  // Prefix caching: the tenant's salt (requests share cached blocks only with equal salts), and
  // how many leading blocks of block_table have their content hash known (matched at admission
  // or registered once computed), with the hash of the last of them (the chain continues there).
  std::string cache_salt;
  int32_t hashed_blocks = 0;
  BlockHash prefix_hash;
  TokenHistory history;
  FinishReason finish_reason = FinishReason::kNone;
  Status status;  // why it failed (kError)
  RequestRecord record;

  int32_t total_tokens() const { return static_cast<int32_t>(prompt.size() + output.size()); }
  // Tokens to prefill (see above): the prompt, or total - 1 once there is output.
  int32_t prefill_target() const { return output.empty() ? static_cast<int32_t>(prompt.size()) : total_tokens() - 1; }
  // The tokens the prefill runs over (positions 0 .. prefill_target()).
  const std::vector<int32_t>& prefill_tokens() const { return resume_tokens.empty() ? prompt : resume_tokens; }
  int32_t remaining_prefill() const { return prefill_target() - num_computed; }
  bool prefill_done() const { return num_computed >= prefill_target(); }
  bool finished() const { return finish_reason != FinishReason::kNone; }
  // The token at `position` of prompt + output.
  int32_t token_at(int32_t position) const {
    const int32_t p = static_cast<int32_t>(prompt.size());
    return position < p ? prompt[position] : output[position - p];
  }
};

}  // namespace tandem
