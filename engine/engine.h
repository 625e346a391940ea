// An engine in one thread: the Scheduler (decisions) and the StepExecutor (the model) driven by
// an injected Clock. `tandem generate`, the warm-up, the colocated worker and the decode node
// use it; the prefill node drives the same two pieces itself, around its KV transfers.
//
// Step() reads as schedule -> run -> postprocess:
//   plan = scheduler.Schedule(now); executor.Execute(plan); scheduler.Postprocess(now, ...)
// and a plan that fails to execute fails exactly its requests (FailStep), so a device fault
// ends the requests it touched with an error instead of stopping the engine.
// Threading: one thread (the caller's).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/scheduler.h"
#include "engine/step_executor.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace tandem {

struct EngineOptions {
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  std::function<double(int32_t, int64_t)> step_time_us = nullptr;  // SchedulerOptions::step_time_us
  KvAllocation kv_allocation = KvAllocation::kGrow;
  bool enable_prefix_caching = false;  // SchedulerOptions::enable_prefix_caching
};

class Engine {
 public:
  Engine(Transformer& transformer, KvCache& cache, EngineOptions options, EngineRole role = EngineRole::kColocated,
         const Clock& clock = SteadyClock::Instance());

  // Validates and queues (see ValidateRequest; the pool must be able to hold the request). A
  // sampled request without a seed gets one here.
  Status Add(Request request);
  // Decode role; see Scheduler::AddPrefilled.
  Status AddPrefilled(Request request);
  // Ends a request now and frees its blocks; NotFound if it is unknown or already finished.
  Status Abort(int64_t request_id);

  bool HasWork() const { return scheduler_.HasWork(); }
  int32_t num_running() const { return scheduler_.num_running(); }
  int32_t num_queued() const { return scheduler_.num_waiting(); }
  // One step. The outputs of a step that failed to execute carry kError and the status; the
  // Result is an error only for a broken invariant.
  Result<std::vector<StepOutput>> Step();
  // Whether the last Step() ran a forward pass (an empty plan means nothing could run now).
  bool last_step_ran() const { return last_step_ran_; }
  const StepShape& last_step_shape() const { return last_step_shape_; }

  // The finished request (record, output), kept until taken.
  std::unique_ptr<Request> TakeFinished(int64_t request_id) { return scheduler_.TakeFinished(request_id); }
  const KvCache& cache() const { return executor_.cache(); }
  Scheduler& scheduler() { return scheduler_; }
  const Scheduler& scheduler() const { return scheduler_; }
  const Clock& clock() const { return clock_; }

 private:
  StepExecutor executor_;
  const Clock& clock_;
  Scheduler scheduler_;
  StepResult result_;
  bool last_step_ran_ = false;
  StepShape last_step_shape_;
};

// The limits an engine over `cache` checks requests against: the model's, and the pool's size.
RequestLimits EngineLimits(const ModelConfig& config, const KvCache& cache);

}  // namespace tandem
