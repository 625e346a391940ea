#include "engine/warm_up.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "common/logging.h"
#include "engine/engine.h"

namespace tandem {

Status WarmUp(Transformer& transformer, KvCache& cache, int prompt_tokens) {
  const auto t0 = std::chrono::steady_clock::now();
  const int32_t vocab = static_cast<int32_t>(transformer.config().vocab_size);
  prompt_tokens = std::max(1, std::min(prompt_tokens, cache.block_size() * (cache.pool().num_free() - 1)));
  if (prompt_tokens < 1 || cache.pool().num_free() < 2) return Status::Ok();  // nothing to warm with
  Engine engine(transformer, cache, EngineOptions{});
  Request r;
  r.id = 1;
  for (int i = 0; i < prompt_tokens; ++i) r.prompt.push_back((i * 7919 + 1) % vocab);
  r.params.temperature = 0.0f;
  r.params.max_tokens = 2;
  r.params.ignore_eos = true;
  RETURN_IF_ERROR(engine.Add(std::move(r)).WithContext("warm-up"));
  while (engine.HasWork()) {
    auto step = engine.Step();
    if (!step.ok()) return step.status().WithContext("warm-up");
    for (const StepOutput& out : *step) {
      if (out.finish_reason == FinishReason::kError) return out.status.WithContext("warm-up");
    }
  }
  (void)engine.TakeFinished(1);  // its blocks are back in the pool
  GetLogger("model")->debug("warm-up: {} prompt tokens + 2 decoded in {:.1f} ms", prompt_tokens,
                            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return Status::Ok();
}

}  // namespace tandem
