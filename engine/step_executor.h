// Runs a StepPlan on the model: one Transformer::Forward over the plan's chunks (whole prompts,
// prompt chunks and decode tokens mixed), then one token sampled per chunk that wants logits.
// Sampling is stateless per row (SampleToken with the request's seed and the index of the token
// being drawn), so rows are sampled in parallel and the result does not depend on the batch.
// Threading: the engine's thread; owns nothing but its logits buffer.
#pragma once

#include <vector>

#include "common/status.h"
#include "engine/scheduler.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace tandem {

class StepExecutor {
 public:
  StepExecutor(Transformer& transformer, KvCache& cache) : transformer_(transformer), cache_(cache) {}

  // Fills result->tokens (one per chunk that wants logits, in plan order). `on_layer_done`
  // (optional) runs after each layer has written its K/V: the prefill node posts that layer's
  // KV transfer there. An error leaves the plan's requests to Scheduler::FailStep.
  Status Execute(const StepPlan& plan, StepResult* result, const Transformer::LayerDoneFn& on_layer_done = nullptr);

  Transformer& transformer() { return transformer_; }
  KvCache& cache() { return cache_; }
  const KvCache& cache() const { return cache_; }

 private:
  Transformer& transformer_;
  KvCache& cache_;
  std::vector<SequenceChunk> chunks_;
  std::vector<float> logits_;
};

}  // namespace tandem
