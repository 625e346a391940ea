// The colocated worker: one Engine (continuous batching with chunked prefill) on its own engine
// thread, behind the InferenceClient interface. It is our goodput baseline, so it is driven by
// the same router core as the disaggregated cluster (scheduler/router_core.h, with one colocated
// node): requests are validated, queued when the pool is full, placed, timed out and recorded
// exactly alike; only the NodeLink differs (this engine thread's inbox instead of RPC).
//
// Engine thread loop:
//   wait until (inbox non-empty || the last step ran || stopping), at most idle_wait
//   -> take the inbox under its mutex: orders to run (SendPrefill), then aborts
//   -> Engine::Add each order (an Add error fails that request through the core)
//   -> Engine::Abort each abort (its blocks are free at once; the core already ended it)
//   -> one Engine::Step; its outputs (first token, tokens, errors) and the engine's load go to
//      the core in one update
// A failed step fails the requests in it (kError with the step's status; their blocks are
// freed); the other requests and the loop go on.
//
// Shutdown (Stop or destructor): the core fails everything in flight (final kError events,
// Unavailable), the engine thread stops after its current step and is joined; if it does not
// exit within shutdown_timeout (a step stuck in a kernel) it is detached with the state it owns
// and never reaches the core again, so shutdown is bounded.
//
// Threading: every public method may be called from any thread (see inference_client.h).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "engine/engine.h"
#include "kernels/backend.h"
#include "model/kv_cache.h"
#include "model/model_config.h"
#include "scheduler/inference_client.h"
#include "scheduler/router_shell.h"

namespace tandem {

struct LocalEngineOptions {
  EngineOptions engine;
  KvCacheOptions kv_cache;
  std::chrono::milliseconds shutdown_timeout{10000};
  // As ClusterClientOptions: arrival -> first token, and between two tokens. 0 = no limit.
  std::chrono::milliseconds first_token_timeout{60000};
  std::chrono::milliseconds inter_token_timeout{60000};
  int32_t max_queued = 1024;  // requests waiting for KV blocks; beyond it, 429
  std::function<void(const RequestRecord&)> on_finished;  // dispatcher thread; optional
};

class LocalEngineClient final : public InferenceClient, private NodeLink {
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
  void Abort(int64_t request_id, FinishReason as = FinishReason::kAbort) override;
  bool Ready() const override;
  LoadInfo Load() const override;
  int64_t MaxSequenceTokens() const override;

  // Idempotent; see the shutdown paragraph above.
  void Stop();

  const ModelConfig& config() const;

  struct Core;  // the state the engine thread owns (defined in the .cc)

 private:
  explicit LocalEngineClient(std::shared_ptr<Core> core);

  // NodeLink (called with the shell's mutex held: only queue).
  void SendPrefill(const tandem::SendPrefill& order) override;
  void SendAbort(const tandem::SendAbort& order) override;
  void SendClusterView(const tandem::SendClusterView&) override {}

  std::shared_ptr<Core> core_;
  std::unique_ptr<RouterShell> shell_;
  std::thread thread_;
};

}  // namespace tandem
