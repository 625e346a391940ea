#include "engine/step_executor.h"

#include <algorithm>

#include "model/batch_plan.h"
#include "model/sampler.h"

namespace tandem {

Status StepExecutor::Execute(const StepPlan& plan, StepResult* result, const Transformer::LayerDoneFn& on_layer_done) {
  result->tokens.clear();
  if (plan.empty()) return Status::Ok();
  chunks_.clear();
  for (const ScheduledChunk& c : plan.chunks) {
    SequenceChunk s;
    s.tokens = c.tokens();
    s.start_position = c.start;
    s.block_table = c.request->block_table;
    s.want_logits = c.want_logits;
    chunks_.push_back(s);
  }
  ASSIGN_OR_RETURN(BatchPlan batch, BuildBatchPlan(chunks_, cache_.block_size()));
  RETURN_IF_ERROR(transformer_.Forward(batch, cache_, &logits_, on_layer_done));

  const int64_t vocab = transformer_.config().vocab_size;
  const int32_t num_rows = batch.num_logits();
  result->tokens.resize(static_cast<size_t>(num_rows));
  // Rows are independent and each draw depends only on its own (seed, step): sample them in
  // parallel. The draw for output token i uses step i (0 for the first, on any node).
  const int threads = std::max(1, std::min(transformer_.backend().host_threads(), num_rows));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
  for (int32_t i = 0; i < num_rows; ++i) {
    const Request& r = *plan.chunks[static_cast<size_t>(batch.logits_seq[i])].request;
    std::span<float> row(logits_.data() + static_cast<size_t>(i) * vocab, static_cast<size_t>(vocab));
    result->tokens[static_cast<size_t>(i)] = SampleToken(row, r.params, r.history, r.output.size());
  }
  return Status::Ok();
}

}  // namespace tandem
