#include "worker/local_engine_client.h"

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "model/model_weights.h"
#include "model/transformer.h"
#include "model/warm_up.h"

namespace tandem {

struct LocalEngineClient::Core {
  struct Pending {
    ServingRequest request;
    EventCallback callback;
  };

  // Immutable after Create.
  LocalEngineOptions options;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ModelWeights> weights;
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<Transformer> transformer;
  std::unique_ptr<Engine> engine;  // engine thread only
  std::shared_ptr<spdlog::logger> log = GetLogger("engine");

  std::mutex mu;
  std::condition_variable cv;
  std::vector<Pending> inbox;             // GUARDED_BY(mu)
  std::vector<int64_t> aborts;            // GUARDED_BY(mu)
  std::unordered_set<int64_t> in_flight;  // GUARDED_BY(mu): accepted, final event not yet sent
  bool stopping = false;                  // GUARDED_BY(mu)

  std::unordered_map<int64_t, EventCallback> callbacks;  // engine thread only: ids in the engine

  std::atomic<bool> ready{false};
  std::atomic<bool> callbacks_disabled{false};  // set when the thread is abandoned at shutdown
  std::atomic<int32_t> num_requests{0};
  std::atomic<int32_t> free_blocks{0};
  std::atomic<int64_t> num_steps{0};
  std::promise<void> exited;

  void Run();
  void AddToEngine(Pending pending);
  void AbortInEngine(int64_t id);
  void RunStep();
  void FailAllInEngine(const Status& status);
  void Deliver(EventCallback& callback, InferenceEvent event);
  void Finalize(int64_t id);
};

namespace {

InferenceEvent FinalEvent(int64_t id, FinishReason reason, Status status) {
  InferenceEvent ev;
  ev.request_id = id;
  ev.emitted_us = NowMicros();
  ev.finish_reason = reason;
  ev.status = std::move(status);
  return ev;
}

}  // namespace

void LocalEngineClient::Core::Deliver(EventCallback& callback, InferenceEvent event) {
  if (callbacks_disabled.load()) return;
  const int64_t id = event.request_id;
  // A throwing callback must not take the engine thread (and every other request) down.
  try {
    callback(std::move(event));
  } catch (const std::exception& e) {
    log->error("event callback for request {} threw: {}", id, e.what());
  }
}

void LocalEngineClient::Core::Finalize(int64_t id) {
  {
    std::lock_guard<std::mutex> lock(mu);
    in_flight.erase(id);
  }
  num_requests.fetch_sub(1);
}

void LocalEngineClient::Core::AddToEngine(Pending pending) {
  const int64_t id = pending.request.id;
  Request r;
  r.id = id;
  r.prompt = std::move(pending.request.prompt);
  r.params = pending.request.params;
  r.timeline.arrival_us = pending.request.arrival_us;
  Status st = engine->Add(std::move(r));
  if (!st.ok()) {
    Finalize(id);
    Deliver(pending.callback, FinalEvent(id, FinishReason::kError, st));
    return;
  }
  callbacks.emplace(id, std::move(pending.callback));
}

void LocalEngineClient::Core::AbortInEngine(int64_t id) {
  auto it = callbacks.find(id);
  if (it == callbacks.end()) return;  // finished before the abort got here
  if (!engine->Abort(id).ok()) return;
  free_blocks.store(cache->pool().num_free());
  std::unique_ptr<Request> done = engine->TakeFinished(id);
  InferenceEvent ev = FinalEvent(id, FinishReason::kAbort, Status::Ok());
  if (done) ev.timeline = done->timeline;
  EventCallback callback = std::move(it->second);
  callbacks.erase(it);
  Finalize(id);
  Deliver(callback, std::move(ev));
}

void LocalEngineClient::Core::FailAllInEngine(const Status& status) {
  std::vector<int64_t> ids;
  ids.reserve(callbacks.size());
  for (const auto& [id, cb] : callbacks) ids.push_back(id);
  for (int64_t id : ids) {
    engine->Abort(id).IgnoreError();  // NotFound only if it had already finished: still fail it
    std::unique_ptr<Request> done = engine->TakeFinished(id);
    InferenceEvent ev = FinalEvent(id, FinishReason::kError, status);
    if (done) ev.timeline = done->timeline;
    EventCallback callback = std::move(callbacks[id]);
    callbacks.erase(id);
    free_blocks.store(cache->pool().num_free());
    Finalize(id);
    Deliver(callback, std::move(ev));
  }
}

void LocalEngineClient::Core::RunStep() {
  Result<std::vector<StepOutput>> outputs = engine->Step();
  num_steps.fetch_add(1);
  // Published before any event of the step goes out, so a caller that saw an event sees a
  // Load() at least as new as the step that produced it.
  free_blocks.store(cache->pool().num_free());
  if (!outputs.ok()) {
    log->error("engine step failed; failing {} request(s): {}", callbacks.size(), outputs.status().ToString());
    FailAllInEngine(InternalError("engine step failed: " + outputs.status().ToString()));
    return;
  }
  const int64_t now = NowMicros();
  for (const StepOutput& out : *outputs) {
    auto it = callbacks.find(out.request_id);
    if (it == callbacks.end()) continue;
    InferenceEvent ev;
    ev.request_id = out.request_id;
    ev.emitted_us = now;
    if (out.token >= 0) ev.tokens.push_back(out.token);
    ev.finish_reason = out.finish_reason;
    if (!ev.final()) {
      Deliver(it->second, std::move(ev));
      continue;
    }
    if (ev.finish_reason == FinishReason::kError) ev.status = InternalError("the engine failed to free the request's KV blocks");
    if (std::unique_ptr<Request> done = engine->TakeFinished(out.request_id)) ev.timeline = done->timeline;
    EventCallback callback = std::move(it->second);
    callbacks.erase(it);
    Finalize(out.request_id);
    Deliver(callback, std::move(ev));
  }
}

void LocalEngineClient::Core::Run() {
  std::vector<Pending> submits;
  std::vector<int64_t> abort_ids;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return stopping || !inbox.empty() || !aborts.empty() || engine->HasWork(); });
      if (stopping) break;
      submits.swap(inbox);
      abort_ids.swap(aborts);
    }
    // Submits first, so that an abort racing its own submit finds the request.
    for (Pending& p : submits) AddToEngine(std::move(p));
    submits.clear();
    for (int64_t id : abort_ids) AbortInEngine(id);
    abort_ids.clear();
    if (engine->HasWork()) RunStep();
    free_blocks.store(cache->pool().num_free());
  }
  // Shutdown: nothing new gets in (stopping is set under mu), so this drains everything.
  {
    std::lock_guard<std::mutex> lock(mu);
    submits.swap(inbox);
    aborts.clear();
  }
  const Status shutting_down = UnavailableError("the engine is shutting down");
  for (Pending& p : submits) {
    Finalize(p.request.id);
    Deliver(p.callback, FinalEvent(p.request.id, FinishReason::kError, shutting_down));
  }
  FailAllInEngine(shutting_down);
  free_blocks.store(cache->pool().num_free());
}

Result<std::unique_ptr<LocalEngineClient>> LocalEngineClient::Create(std::unique_ptr<Backend> backend,
                                                                     const std::string& model_dir,
                                                                     const LocalEngineOptions& options) {
  if (!backend) return InvalidArgumentError("LocalEngineClient needs a backend");
  if (options.engine.max_num_seqs < 1) return InvalidArgumentError("max_num_seqs must be >= 1");
  if (options.engine.max_num_batched_tokens < 1) return InvalidArgumentError("max_num_batched_tokens must be >= 1");
  auto core = std::make_shared<Core>();
  core->options = options;
  core->backend = std::move(backend);
  ASSIGN_OR_RETURN(core->weights, LoadModelWeights(model_dir, *core->backend));
  ASSIGN_OR_RETURN(core->cache, KvCache::Create(*core->backend, core->weights->config, options.kv_cache));
  ASSIGN_OR_RETURN(core->transformer, Transformer::Create(*core->backend, *core->weights));
  RETURN_IF_ERROR(WarmUp(*core->transformer, *core->cache));
  core->engine = std::make_unique<Engine>(*core->transformer, *core->cache, options.engine);
  core->free_blocks.store(core->cache->pool().num_free());
  core->log->info("engine ready: {} KV blocks of {} tokens, max_num_seqs {}, max_num_batched_tokens {}",
                  core->cache->num_blocks(), core->cache->block_size(), options.engine.max_num_seqs,
                  options.engine.max_num_batched_tokens);
  return std::unique_ptr<LocalEngineClient>(new LocalEngineClient(std::move(core)));
}

LocalEngineClient::LocalEngineClient(std::shared_ptr<Core> core) : core_(std::move(core)) {
  core_->ready.store(true);
  // The thread holds its own reference, so an abandoned (detached) thread keeps what it uses.
  thread_ = std::thread([core = core_] {
    core->Run();
    core->exited.set_value();
  });
}

LocalEngineClient::~LocalEngineClient() { Stop(); }

void LocalEngineClient::Stop() {
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    if (core_->stopping) return;
    core_->stopping = true;
  }
  core_->ready.store(false);
  core_->cv.notify_all();
  if (!thread_.joinable()) return;
  std::future<void> exited = core_->exited.get_future();
  if (exited.wait_for(core_->options.shutdown_timeout) == std::future_status::ready) {
    thread_.join();
    return;
  }
  core_->log->error("engine thread did not stop within {} ms; abandoning it",
                    core_->options.shutdown_timeout.count());
  core_->callbacks_disabled.store(true);
  thread_.detach();
}

Status LocalEngineClient::Submit(ServingRequest request, EventCallback callback) {
  if (!callback) return InvalidArgumentError("Submit needs a callback");
  // The engine checks all of this again on its thread; checking here turns the common
  // mistakes into a synchronous error the router can answer with at once.
  const ModelConfig& c = core_->weights->config;
  if (request.prompt.empty()) return InvalidArgumentError("prompt is empty");
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= c.vocab_size) {
      return InvalidArgumentError("prompt token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                                  std::to_string(c.vocab_size) + ")");
    }
  }
  RETURN_IF_ERROR(request.params.Validate());
  const int64_t total = static_cast<int64_t>(request.prompt.size()) + request.params.max_tokens;
  if (total > c.max_position_embeddings) {
    return OutOfRangeError("prompt (" + std::to_string(request.prompt.size()) + " tokens) + max_tokens (" +
                           std::to_string(request.params.max_tokens) + ") exceeds the context window of " +
                           std::to_string(c.max_position_embeddings) + " tokens");
  }
  const int32_t blocks = BlocksForTokens(total, core_->cache->block_size());
  if (blocks > core_->cache->num_blocks()) {
    return OutOfRangeError("prompt + max_tokens (" + std::to_string(total) + " tokens) needs " +
                           std::to_string(blocks) + " KV blocks; this worker has " +
                           std::to_string(core_->cache->num_blocks()));
  }
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    if (core_->stopping) return UnavailableError("the engine is shutting down");
    if (!core_->in_flight.insert(request.id).second) {
      return AlreadyExistsError("request " + std::to_string(request.id) + " is already in flight");
    }
    core_->num_requests.fetch_add(1);
    core_->inbox.push_back({std::move(request), std::move(callback)});
  }
  core_->cv.notify_one();
  return Status::Ok();
}

void LocalEngineClient::Abort(int64_t request_id) {
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    if (core_->stopping || !core_->in_flight.count(request_id)) return;
    core_->aborts.push_back(request_id);
  }
  core_->cv.notify_one();
}

bool LocalEngineClient::Ready() const { return core_->ready.load(); }

LoadInfo LocalEngineClient::Load() const {
  LoadInfo info;
  info.num_requests = core_->num_requests.load();
  info.num_free_kv_blocks = core_->free_blocks.load();
  info.num_total_kv_blocks = core_->cache->num_blocks();
  info.num_steps = core_->num_steps.load();
  return info;
}

int64_t LocalEngineClient::MaxSequenceTokens() const {
  return static_cast<int64_t>(core_->cache->num_blocks()) * core_->cache->block_size();
}

const ModelConfig& LocalEngineClient::config() const { return core_->weights->config; }

}  // namespace tandem
