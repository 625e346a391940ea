#include "model/batch_plan.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace tandem {

Result<BatchPlan> BuildBatchPlan(std::span<const SequenceChunk> chunks, int32_t block_size) {
  if (block_size <= 0) return InvalidArgumentError("block size must be positive");
  BatchPlan plan;
  plan.block_size = block_size;
  plan.query_start.push_back(0);
  for (const SequenceChunk& c : chunks) {
    plan.max_blocks_per_seq = std::max<int32_t>(plan.max_blocks_per_seq,
                                                static_cast<int32_t>(c.block_table.size()));
  }
  plan.block_tables.assign(chunks.size() * plan.max_blocks_per_seq, 0);

  for (size_t s = 0; s < chunks.size(); ++s) {
    const SequenceChunk& c = chunks[s];
    if (c.tokens.empty()) return InvalidArgumentError("sequence chunk " + std::to_string(s) + " has no tokens");
    if (c.start_position < 0) return InvalidArgumentError("negative start position");
    const int32_t q_len = static_cast<int32_t>(c.tokens.size());
    const int32_t context = c.start_position + q_len;
    if (static_cast<int64_t>(c.block_table.size()) * block_size < context) {
      return InvalidArgumentError("sequence chunk " + std::to_string(s) + " needs " +
                                  std::to_string((context + block_size - 1) / block_size) +
                                  " blocks for " + std::to_string(context) + " tokens, has " +
                                  std::to_string(c.block_table.size()));
    }
    std::copy(c.block_table.begin(), c.block_table.end(),
              plan.block_tables.begin() + s * plan.max_blocks_per_seq);
    for (int32_t i = 0; i < q_len; ++i) {
      const int32_t pos = c.start_position + i;
      plan.token_ids.push_back(c.tokens[i]);
      plan.positions.push_back(pos);
      plan.slot_mapping.push_back(static_cast<int64_t>(c.block_table[pos / block_size]) * block_size +
                                  pos % block_size);
    }
    plan.query_start.push_back(plan.query_start.back() + q_len);
    plan.context_lens.push_back(context);
    plan.max_query_len = std::max(plan.max_query_len, q_len);
    plan.max_context_len = std::max(plan.max_context_len, context);
    const int32_t first_logit = c.all_logits ? plan.query_start.back() - q_len
                                : c.want_logits ? plan.query_start.back() - 1
                                                : plan.query_start.back();
    for (int32_t row = first_logit; row < plan.query_start.back(); ++row) {
      plan.logits_indices.push_back(row);
      plan.logits_seq.push_back(static_cast<int32_t>(s));
    }
  }
  return plan;
}

namespace {

// Appends `n` elements of T at an 8-byte-aligned offset of the staging area.
template <typename T>
size_t Stage(std::vector<char>& staging, const std::vector<T>& values) {
  size_t offset = (staging.size() + 7) & ~size_t{7};
  staging.resize(offset + values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(staging.data() + offset, values.data(), values.size() * sizeof(T));
  return offset;
}

}  // namespace

Status DevicePlan::Upload(Backend& backend, const BatchPlan& plan) {
  std::vector<char> staging;
  const size_t o_tokens = Stage(staging, plan.token_ids);
  const size_t o_pos = Stage(staging, plan.positions);
  const size_t o_slots = Stage(staging, plan.slot_mapping);
  const size_t o_qstart = Stage(staging, plan.query_start);
  const size_t o_ctx = Stage(staging, plan.context_lens);
  const size_t o_tables = Stage(staging, plan.block_tables);
  const size_t o_logits = Stage(staging, plan.logits_indices);
  if (staging.size() > buffer_.bytes()) {
    // Grow geometrically so steady-state steps never allocate.
    ASSIGN_OR_RETURN(buffer_, backend.Allocate(std::max(staging.size(), 2 * buffer_.bytes())));
  }
  RETURN_IF_ERROR(backend.CopyToDevice(buffer_.data(), staging.data(), staging.size()));
  char* base = static_cast<char*>(buffer_.data());
  token_ids_ = reinterpret_cast<const int32_t*>(base + o_tokens);
  logits_indices_ = reinterpret_cast<const int32_t*>(base + o_logits);
  view_.num_tokens = plan.num_tokens();
  view_.num_seqs = plan.num_seqs();
  view_.positions = reinterpret_cast<const int32_t*>(base + o_pos);
  view_.slot_mapping = reinterpret_cast<const int64_t*>(base + o_slots);
  view_.query_start = reinterpret_cast<const int32_t*>(base + o_qstart);
  view_.context_lens = reinterpret_cast<const int32_t*>(base + o_ctx);
  view_.block_tables = reinterpret_cast<const int32_t*>(base + o_tables);
  view_.max_blocks_per_seq = plan.max_blocks_per_seq;
  view_.max_query_len = plan.max_query_len;
  view_.max_context_len = plan.max_context_len;
  return Status::Ok();
}

}  // namespace tandem
