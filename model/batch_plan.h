// The host-side plan of one forward step (FlashInfer's "plan" idea): which tokens of which
// sequences run, where they sit, and where their K/V go. Built once per step, uploaded once,
// used by every layer.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"

namespace tandem {

// A run of consecutive tokens of one sequence in this step: a prompt (or a chunk of it) for
// prefill, one token for decode.
struct SequenceChunk {
  std::span<const int32_t> tokens;        // the tokens to run
  int32_t start_position = 0;             // position of tokens[0]; earlier ones are in the cache
  std::span<const int32_t> block_table;   // blocks covering [0, start_position + tokens.size())
  bool want_logits = true;                // logits of the chunk's last token
  bool all_logits = false;                // logits of every token (tests, prompt logprobs)
};

struct BatchPlan {
  int32_t block_size = 16;
  std::vector<int32_t> token_ids;      // [num_tokens]
  std::vector<int32_t> positions;      // [num_tokens]
  std::vector<int64_t> slot_mapping;   // [num_tokens]
  std::vector<int32_t> query_start;    // [num_seqs + 1]
  std::vector<int32_t> context_lens;   // [num_seqs]
  std::vector<int32_t> block_tables;   // [num_seqs, max_blocks_per_seq], padded with 0
  int32_t max_blocks_per_seq = 0;
  int32_t max_query_len = 0;
  int32_t max_context_len = 0;
  std::vector<int32_t> logits_indices; // token rows whose logits are wanted, in chunk order
  std::vector<int32_t> logits_seq;     // [num_logits] chunk index of each logits row

  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
  int32_t num_seqs() const { return static_cast<int32_t>(context_lens.size()); }
  int32_t num_logits() const { return static_cast<int32_t>(logits_indices.size()); }
};

// Builds the plan. Fails (InvalidArgument) if a chunk's block table is too short for it.
Result<BatchPlan> BuildBatchPlan(std::span<const SequenceChunk> chunks, int32_t block_size);

// The plan's arrays in backend memory, owning them for the step.
class DevicePlan {
 public:
  Status Upload(Backend& backend, const BatchPlan& plan);
  const AttentionPlanView& attention() const { return view_; }
  const int32_t* token_ids() const { return token_ids_; }
  const int32_t* positions() const { return view_.positions; }
  const int64_t* slot_mapping() const { return view_.slot_mapping; }
  const int32_t* logits_indices() const { return logits_indices_; }

 private:
  DeviceBuffer buffer_;
  AttentionPlanView view_;
  const int32_t* token_ids_ = nullptr;
  const int32_t* logits_indices_ = nullptr;
};

}  // namespace tandem
