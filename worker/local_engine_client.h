// The colocated worker: one Engine (continuous batching with chunked prefill) on its own
// engine thread, behind the InferenceClient interface. It is our goodput baseline, and the HTTP
// layer cannot tell it from the disaggregated cluster client.
//
// Engine thread loop:
//   sleep on cv until (inbox non-empty || engine has work || stopping)
//   -> take the inbox (submits, then aborts) under the mutex
//   -> Engine::Add each submit (an Add error becomes that request's final kError event)
//   -> Engine::Abort each abort (final kAbort event; blocks freed at once)
//   -> one Engine::Step; its outputs become events, delivered without holding the mutex
//   -> publish load (free KV blocks) for Load()
// A failed Step fails every request in the engine with a kError event carrying the step's
// status and frees their blocks: the engine does not say which requests the step held, and after
// a failed forward pass no running request's KV cache can be trusted. The loop then goes on
// serving new requests.
//
// Shutdown (Stop or destructor): stop accepting, let the current step finish, give every
// request (queued or running) a final kError event with Unavailable, join the thread. If the
// thread does not exit within shutdown_timeout (a step stuck in a kernel), it is detached with
// the state it owns, so shutdown is bounded; its callbacks are then never invoked.
//
// Load() is published by the engine thread before it delivers a step's events, so whoever saw
// an event reads a load at least as new as the step that produced it.
//
// Threading: every public method may be called from any thread (see inference_client.h).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "kernels/backend.h"
#include "model/engine.h"
#include "model/kv_cache.h"
#include "model/model_config.h"
#include "scheduler/inference_client.h"

namespace tandem {

struct LocalEngineOptions {
  EngineOptions engine;
  KvCacheOptions kv_cache;
  std::chrono::milliseconds shutdown_timeout{10000};
};

class LocalEngineClient final : public InferenceClient {
 public:
  // Loads `model_dir` onto `backend`, sizes the KV cache and starts the engine thread.
  // Errors: the loader's (missing files, bad tensors), InvalidArgument for bad options.
  static Result<std::unique_ptr<LocalEngineClient>> Create(std::unique_ptr<Backend> backend,
                                                           const std::string& model_dir,
                                                           const LocalEngineOptions& options);
  ~LocalEngineClient() override;
  LocalEngineClient(const LocalEngineClient&) = delete;
  LocalEngineClient& operator=(const LocalEngineClient&) = delete;

  Status Submit(ServingRequest request, EventCallback callback) override;
  void Abort(int64_t request_id) override;
  bool Ready() const override;
  LoadInfo Load() const override;
  int64_t MaxSequenceTokens() const override;

  // Idempotent; see the shutdown paragraph above.
  void Stop();

  const ModelConfig& config() const;

  struct Core;  // the state the engine thread owns (defined in the .cc)

 private:
  explicit LocalEngineClient(std::shared_ptr<Core> core);

  std::shared_ptr<Core> core_;
  std::thread thread_;
};

}  // namespace tandem
