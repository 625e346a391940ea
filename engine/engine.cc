#include "engine/engine.h"

#include <random>

namespace tandem {

RequestLimits EngineLimits(const ModelConfig& config, const KvCache& cache) {
  RequestLimits l = RequestLimits::ForModel(config);
  l.block_size = cache.block_size();
  l.pool_blocks = cache.num_blocks();
  return l;
}

namespace {

SchedulerOptions MakeSchedulerOptions(EngineRole role, const EngineOptions& options) {
  SchedulerOptions s{role, options.max_num_seqs, options.max_num_batched_tokens};
  s.step_time_us = options.step_time_us;
  s.kv_allocation = options.kv_allocation;
  s.enable_prefix_caching = options.enable_prefix_caching;
  return s;
}

}  // namespace

Engine::Engine(Transformer& transformer, KvCache& cache, EngineOptions options, EngineRole role, const Clock& clock)
    : executor_(transformer, cache),
      clock_(clock),
      scheduler_(cache.pool(), cache.block_size(), EngineLimits(transformer.config(), cache),
                 transformer.config().eos_token_ids, MakeSchedulerOptions(role, options)) {}

Status Engine::Add(Request r) {
  if (!r.params.seed.has_value()) r.params.seed = std::random_device{}() * 0x100000001ull + std::random_device{}();
  return scheduler_.Add(std::move(r), clock_.NowMicros());
}

Status Engine::AddPrefilled(Request r) { return scheduler_.AddPrefilled(std::move(r), clock_.NowMicros()); }

Status Engine::Abort(int64_t request_id) { return scheduler_.Abort(request_id, clock_.NowMicros()); }

Result<std::vector<StepOutput>> Engine::Step() {
  const StepPlan plan = scheduler_.Schedule(clock_.NowMicros());
  last_step_ran_ = !plan.empty();
  if (plan.empty()) return std::vector<StepOutput>{};
  last_step_shape_ = ShapeOf(plan);
  const Status run = executor_.Execute(plan, &result_);
  if (!run.ok()) return scheduler_.FailStep(clock_.NowMicros(), plan, run.WithContext("engine step failed"));
  return scheduler_.Postprocess(clock_.NowMicros(), plan, result_);
}

}  // namespace tandem
