#include "model/engine.h"

#include <algorithm>
#include <random>
#include <string>

namespace tandem {

std::string_view FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kError: return "error";
  }
  return "";
}

Engine::Engine(Transformer& transformer, KvCache& cache, EngineOptions options)
    : transformer_(transformer), cache_(cache), options_(options) {}

Status Engine::Add(Request r) {
  const ModelConfig& c = transformer_.config();
  if (r.prompt.empty()) return InvalidArgumentError("prompt is empty");
  for (int32_t t : r.prompt) {
    if (t < 0 || t >= c.vocab_size) {
      return InvalidArgumentError("prompt token id " + std::to_string(t) + " outside the vocabulary [0, " +
                                  std::to_string(c.vocab_size) + ")");
    }
  }
  RETURN_IF_ERROR(r.params.Validate());
  const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.params.max_tokens;
  if (total > c.max_position_embeddings) {
    return OutOfRangeError("prompt (" + std::to_string(r.prompt.size()) + " tokens) + max_tokens (" +
                           std::to_string(r.params.max_tokens) + ") exceeds the context window of " +
                           std::to_string(c.max_position_embeddings) + " tokens");
  }
  // Within the window, full attention is exactly sliding-window attention; beyond it we would
  // silently differ from the reference, so refuse instead.
  if (c.sliding_window > 0 && total > c.sliding_window) {
    return OutOfRangeError("prompt + max_tokens (" + std::to_string(total) + ") exceeds the model's sliding window of " +
                           std::to_string(c.sliding_window) + " tokens, which this runtime does not implement");
  }
  const int32_t blocks = BlocksForTokens(total, cache_.block_size());
  if (blocks > cache_.num_blocks()) {
    return ResourceExhaustedError("request needs " + std::to_string(blocks) + " KV blocks; the pool has " +
                                  std::to_string(cache_.num_blocks()));
  }
  if (!r.params.seed.has_value()) r.params.seed = std::random_device{}() * 0x100000001ull + std::random_device{}();
  if (r.timeline.arrival_us == 0) r.timeline.arrival_us = NowMicros();
  r.history.AddPrompt(r.prompt);
  waiting_.push_back(std::make_unique<Request>(std::move(r)));
  return Status::Ok();
}

Status Engine::AddPrefilled(Request r) {
  if (r.prompt.empty()) return InvalidArgumentError("prompt is empty");
  if (r.output.size() != 1) {
    return InvalidArgumentError("a prefilled request carries exactly its first token, got " +
                                std::to_string(r.output.size()));
  }
  RETURN_IF_ERROR(r.params.Validate());
  if (!r.params.greedy() && !r.params.seed.has_value()) {
    return InvalidArgumentError("a prefilled sampled request needs the seed its first token used");
  }
  const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.params.max_tokens;
  const int32_t need = BlocksForTokens(total, cache_.block_size());
  if (static_cast<int32_t>(r.block_table.size()) < need) {
    return InvalidArgumentError("prefilled request holds " + std::to_string(r.block_table.size()) +
                                " blocks, needs " + std::to_string(need));
  }
  for (int32_t b : r.block_table) {
    if (cache_.pool().RefCount(b) < 1) {
      return InvalidArgumentError("prefilled request names block " + std::to_string(b) + ", which is not held");
    }
  }
  r.num_computed = static_cast<int32_t>(r.prompt.size());
  r.history = TokenHistory();
  r.history.AddPrompt(r.prompt);
  r.history.AddOutput(r.output.front());
  if (r.timeline.arrival_us == 0) r.timeline.arrival_us = NowMicros();
  prefilled_.push_back(std::make_unique<Request>(std::move(r)));
  return Status::Ok();
}

void Engine::Finish(Request& r, FinishReason reason) {
  r.finish_reason = reason;
  r.timeline.finish_us = NowMicros();
  if (!r.block_table.empty()) {
    // The blocks were allocated by this engine, so freeing cannot fail unless state is corrupt.
    Status s = cache_.pool().Free(r.block_table);
    if (!s.ok()) r.finish_reason = FinishReason::kError;
    r.block_table.clear();
  }
}

Status Engine::Abort(int64_t request_id) {
  auto match = [&](const std::unique_ptr<Request>& r) { return r->id == request_id; };
  auto abort_in = [&](auto& queue) {
    auto it = std::find_if(queue.begin(), queue.end(), match);
    if (it == queue.end()) return false;
    Finish(**it, FinishReason::kAbort);
    finished_[request_id] = std::move(*it);
    queue.erase(it);
    return true;
  };
  if (abort_in(running_) || abort_in(waiting_) || abort_in(prefilled_)) return Status::Ok();
  return NotFoundError("request " + std::to_string(request_id) + " is not queued or running");
}

bool Engine::IsStopToken(const Request& r, int32_t token) const {
  if (!r.params.ignore_eos) {
    const auto& eos = transformer_.config().eos_token_ids;
    if (std::find(eos.begin(), eos.end(), token) != eos.end()) return true;
  }
  const auto& stop = r.params.stop_token_ids;
  return std::find(stop.begin(), stop.end(), token) != stop.end();
}

Result<std::vector<StepOutput>> Engine::Step() {
  // --- schedule ---
  while (!prefilled_.empty() && static_cast<int32_t>(running_.size()) < options_.max_num_seqs) {
    running_.push_back(std::move(prefilled_.front()));
    prefilled_.pop_front();
  }
  int32_t budget = options_.max_num_batched_tokens;
  std::vector<Request*> batch;
  std::vector<SequenceChunk> chunks;
  const int64_t now = NowMicros();
  for (auto& r : running_) {
    if (!r->prefill_done() || budget <= 0) continue;
    SequenceChunk c;
    c.tokens = std::span<const int32_t>(&r->output.back(), 1);
    c.start_position = r->num_computed;
    c.block_table = r->block_table;
    batch.push_back(r.get());
    chunks.push_back(c);
    --budget;
  }
  // Admit waiting requests while their blocks are free and the sequence cap allows.
  while (!waiting_.empty() && static_cast<int32_t>(running_.size()) < options_.max_num_seqs && budget > 0) {
    Request& r = *waiting_.front();
    const int32_t blocks = BlocksForTokens(static_cast<int64_t>(r.prompt.size()) + r.params.max_tokens,
                                           cache_.block_size());
    if (!cache_.pool().CanAllocate(blocks)) break;  // FCFS: nobody overtakes the head
    ASSIGN_OR_RETURN(r.block_table, cache_.pool().Allocate(blocks));
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  for (auto& r : running_) {
    if (r->prefill_done() || budget <= 0) continue;
    const int32_t remaining = static_cast<int32_t>(r->prompt.size()) - r->num_computed;
    const int32_t take = std::min(remaining, budget);
    SequenceChunk c;
    c.tokens = std::span<const int32_t>(r->prompt).subspan(r->num_computed, take);
    c.start_position = r->num_computed;
    c.block_table = r->block_table;
    c.want_logits = take == remaining;
    if (r->timeline.scheduled_us == 0) r->timeline.scheduled_us = now;
    batch.push_back(r.get());
    chunks.push_back(c);
    budget -= take;
  }
  std::vector<StepOutput> outputs;
  if (batch.empty()) return outputs;

  // --- run ---
  ASSIGN_OR_RETURN(BatchPlan plan, BuildBatchPlan(chunks, cache_.block_size()));
  RETURN_IF_ERROR(transformer_.Forward(plan, cache_, &logits_));

  // --- postprocess ---
  const int64_t vocab = transformer_.config().vocab_size;
  const int64_t t_done = NowMicros();
  for (size_t s = 0; s < batch.size(); ++s) batch[s]->num_computed += static_cast<int32_t>(chunks[s].tokens.size());
  // Rows are independent and each draw depends only on its own (seed, step): sample them in
  // parallel, then do the bookkeeping in order.
  const int32_t num_rows = plan.num_logits();
  sampled_.resize(static_cast<size_t>(num_rows));
  const int threads = std::max(1, std::min(transformer_.backend().host_threads(), num_rows));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
  for (int32_t i = 0; i < num_rows; ++i) {
    Request& r = *batch[plan.logits_seq[i]];
    std::span<float> row(logits_.data() + static_cast<size_t>(i) * vocab, static_cast<size_t>(vocab));
    sampled_[i] = SampleToken(row, r.params, r.history, r.output.size());
  }
  for (int32_t i = 0; i < num_rows; ++i) {
    Request& r = *batch[plan.logits_seq[i]];
    const int32_t token = sampled_[i];
    r.output.push_back(token);
    r.history.AddOutput(token);
    if (r.output.size() == 1) r.timeline.first_token_us = t_done;
    r.timeline.token_us.push_back(t_done);
    FinishReason reason = FinishReason::kNone;
    if (IsStopToken(r, token)) {
      reason = FinishReason::kStop;
    } else if (static_cast<int32_t>(r.output.size()) >= r.params.max_tokens) {
      reason = FinishReason::kLength;
    }
    if (reason != FinishReason::kNone) Finish(r, reason);
    outputs.push_back({r.id, token, reason});
  }
  for (auto it = running_.begin(); it != running_.end();) {
    if ((*it)->finished()) {
      finished_[(*it)->id] = std::move(*it);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  return outputs;
}

std::unique_ptr<Request> Engine::TakeFinished(int64_t request_id) {
  auto it = finished_.find(request_id);
  if (it == finished_.end()) return nullptr;
  auto r = std::move(it->second);
  finished_.erase(it);
  return r;
}

}  // namespace tandem
