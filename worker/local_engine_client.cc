#include "worker/local_engine_client.h"

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "engine/warm_up.h"
#include "model/model_weights.h"
#include "model/transformer.h"

namespace tandem {

namespace {
constexpr NodeIndex kWorker = 0;  // the router core's only node
constexpr char kWorkerId[] = "worker";
// How long the engine thread waits when its last round ran no step and nothing arrived.
constexpr std::chrono::milliseconds kIdleWait{5};
}  // namespace

struct LocalEngineClient::Core {
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
  std::vector<std::shared_ptr<const ServingRequest>> orders;  // GUARDED_BY(mu)
  std::vector<int64_t> aborts;                                // GUARDED_BY(mu)
  bool stopping = false;                                      // GUARDED_BY(mu)

  // The router shell this thread reports to; null once the thread is abandoned at shutdown.
  std::mutex shell_mu;
  RouterShell* shell = nullptr;  // GUARDED_BY(shell_mu)

  std::atomic<int64_t> num_steps{0};
  std::promise<void> exited;

  void Run();
  // Everything one round learned, handed to the core in one update.
  void Report(std::vector<std::function<void(RouterCore&, int64_t, RouterActions*)>>& updates);
  NodeLoadReport LoadReport() const;
};

NodeLoadReport LocalEngineClient::Core::LoadReport() const {
  NodeLoadReport r;
  r.queued_requests = static_cast<uint32_t>(engine->num_queued());
  r.queued_tokens = static_cast<uint64_t>(engine->scheduler().pending_prompt_tokens());
  r.running_requests = static_cast<uint32_t>(engine->num_running());
  r.free_blocks = static_cast<uint32_t>(cache->pool().num_free());
  r.total_blocks = static_cast<uint32_t>(cache->num_blocks());
  return r;
}

void LocalEngineClient::Core::Report(std::vector<std::function<void(RouterCore&, int64_t, RouterActions*)>>& updates) {
  NodeLoadReport load = LoadReport();
  std::lock_guard<std::mutex> lock(shell_mu);
  if (shell == nullptr) return;
  shell->Update([&](RouterCore& core, int64_t now, RouterActions* out) {
    for (auto& u : updates) u(core, now, out);
    core.OnLoadReport(kWorker, std::move(load), now, out);
  });
}

void LocalEngineClient::Core::Run() {
  using Update = std::function<void(RouterCore&, int64_t, RouterActions*)>;
  std::vector<std::shared_ptr<const ServingRequest>> taken_orders;
  std::vector<int64_t> taken_aborts;
  bool ran = false;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu);
      if (!ran) {
        cv.wait_for(lock, kIdleWait, [&] { return stopping || !orders.empty() || !aborts.empty(); });
      }
      if (stopping) break;
      taken_orders.swap(orders);
      taken_aborts.swap(aborts);
    }
    std::vector<Update> updates;
    // Orders first, so that an abort racing its own order finds the request.
    for (const auto& order : taken_orders) {
      Request r;
      r.id = order->id;
      r.prompt = order->prompt;
      r.params = order->params;
      r.cache_salt = order->cache_salt;
      r.record.arrival_us = order->arrival_us;
      Status st = engine->Add(std::move(r));
      if (!st.ok()) {
        const int64_t id = order->id;
        updates.push_back([id, st](RouterCore& core, int64_t now, RouterActions* out) {
          core.OnNodeError(kWorker, id, st, now, out);
        });
      }
    }
    taken_orders.clear();
    for (int64_t id : taken_aborts) {
      if (engine->Abort(id).ok()) engine->TakeFinished(id);  // the core ended it already
    }
    const bool changed = !updates.empty() || !taken_aborts.empty();
    taken_aborts.clear();

    Result<std::vector<StepOutput>> outputs = engine->Step();
    ran = engine->last_step_ran();
    if (ran) num_steps.fetch_add(1);
    if (!outputs.ok()) log->error("engine step: {}", outputs.status().ToString());
    for (const StepOutput& out : outputs.ok() ? *outputs : std::vector<StepOutput>{}) {
      const int64_t id = out.request_id;
      if (out.finish_reason == FinishReason::kError) {
        engine->TakeFinished(id);
        updates.push_back([id, st = out.status](RouterCore& core, int64_t now, RouterActions* o) {
          core.OnNodeError(kWorker, id, st, now, o);
        });
        continue;
      }
      const Request* r = engine->scheduler().Find(id);
      std::unique_ptr<Request> done;
      if (r == nullptr) {
        done = engine->TakeFinished(id);
        r = done.get();
      }
      if (r == nullptr) continue;
      const bool finished = out.finish_reason != FinishReason::kNone;
      if (r->output.size() == 1) {
        FirstTokenReport report;
        report.token = out.token;
        report.finished = finished;
        report.finish_reason = out.finish_reason;
        report.prefill_start_us = r->record.prefill_start_us;
        report.prefill_end_us = r->record.prefill_end_us;
        report.cached_tokens = r->record.cached_tokens;
        updates.push_back([id, report](RouterCore& core, int64_t now, RouterActions* o) {
          core.OnFirstToken(kWorker, id, report, now, o);
        });
      } else {
        TokensReport report;
        report.tokens = {out.token};
        report.finished = finished;
        report.finish_reason = out.finish_reason;
        report.preemptions = r->record.preemptions;
        updates.push_back([id, report](RouterCore& core, int64_t now, RouterActions* o) {
          core.OnTokens(kWorker, id, report, now, o);
        });
      }
    }
    if (ran || changed) Report(updates);
  }
  // Stopping: the core has already failed everything in flight; what the engine still holds
  // is dropped with it (its blocks go back with the cache).
}

Result<std::unique_ptr<LocalEngineClient>> LocalEngineClient::Create(std::unique_ptr<Backend> backend,
                                                                     const std::string& model_dir,
                                                                     const LocalEngineOptions& options) {
  if (!backend) return InvalidArgumentError("LocalEngineClient needs a backend");
  if (options.engine.max_num_seqs < 1) return InvalidArgumentError("max_num_seqs must be >= 1");
  if (options.engine.max_num_batched_tokens < 1) return InvalidArgumentError("max_num_batched_tokens must be >= 1");
  if (options.max_queued < 0) return InvalidArgumentError("max_queued must be >= 0");
  auto core = std::make_shared<Core>();
  core->options = options;
  core->backend = std::move(backend);
  ASSIGN_OR_RETURN(core->weights, LoadModelWeights(model_dir, *core->backend));
  ASSIGN_OR_RETURN(core->cache, KvCache::Create(*core->backend, core->weights->config, options.kv_cache));
  ASSIGN_OR_RETURN(core->transformer, Transformer::Create(*core->backend, *core->weights));
  RETURN_IF_ERROR(WarmUp(*core->transformer, *core->cache));
  core->engine = std::make_unique<Engine>(*core->transformer, *core->cache, options.engine);
  core->log->info("engine ready: {} KV blocks of {} tokens, max_num_seqs {}, max_num_batched_tokens {}",
                  core->cache->num_blocks(), core->cache->block_size(), options.engine.max_num_seqs,
                  options.engine.max_num_batched_tokens);
  return std::unique_ptr<LocalEngineClient>(new LocalEngineClient(std::move(core)));
}

LocalEngineClient::LocalEngineClient(std::shared_ptr<Core> core) : core_(std::move(core)) {
  RouterCoreOptions co;
  co.first_token_timeout_us = core_->options.first_token_timeout.count() * 1000;
  co.inter_token_timeout_us = core_->options.inter_token_timeout.count() * 1000;
  co.max_queued = core_->options.max_queued;
  co.limits = RequestLimits::ForModel(core_->weights->config);
  auto router = std::make_unique<RouterCore>(std::vector<NodeSpec>{{kWorkerId, NodeRole::kColocated}},
                                             std::make_unique<LeastLoadedPolicy>(), co);
  shell_ = std::make_unique<RouterShell>(std::move(router), static_cast<NodeLink&>(*this), SteadyClock::Instance(),
                                         GetLogger("worker"), core_->options.on_finished);
  const NodeLoadReport load = core_->LoadReport();
  shell_->Update([&](RouterCore& c, int64_t now, RouterActions* out) {
    c.OnNodeConnected(kWorker, static_cast<uint32_t>(core_->cache->block_size()), now, out,
                      core_->options.engine.kv_allocation == KvAllocation::kReserve);
    c.OnLoadReport(kWorker, load, now, out);
  });
  {
    std::lock_guard<std::mutex> lock(core_->shell_mu);
    core_->shell = shell_.get();
  }
  // The thread holds its own reference, so an abandoned (detached) thread keeps what it uses.
  thread_ = std::thread([core = core_] {
    core->Run();
    core->exited.set_value();
  });
}

LocalEngineClient::~LocalEngineClient() { Stop(); }

void LocalEngineClient::Stop() {
  shell_->Stop([this] {
    {
      std::lock_guard<std::mutex> lock(core_->mu);
      core_->stopping = true;
    }
    core_->cv.notify_all();
    if (!thread_.joinable()) return;
    std::future<void> exited = core_->exited.get_future();
    if (exited.wait_for(core_->options.shutdown_timeout) == std::future_status::ready) {
      thread_.join();
      return;
    }
    core_->log->error("engine thread did not stop within {} ms; abandoning it",
                      core_->options.shutdown_timeout.count());
    {
      std::lock_guard<std::mutex> lock(core_->shell_mu);
      core_->shell = nullptr;  // it never reaches the router core again
    }
    thread_.detach();
  });
}

void LocalEngineClient::SendPrefill(const tandem::SendPrefill& order) {
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->orders.push_back(order.request);
  }
  core_->cv.notify_one();
}

void LocalEngineClient::SendAbort(const tandem::SendAbort& order) {
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->aborts.push_back(order.request_id);
  }
  core_->cv.notify_one();
}

Status LocalEngineClient::Submit(ServingRequest request, EventCallback callback) {
  return shell_->Submit(std::move(request), std::move(callback));
}

void LocalEngineClient::Abort(int64_t request_id, FinishReason as) { shell_->Abort(request_id, as); }

bool LocalEngineClient::Ready() const { return shell_->Ready(); }

LoadInfo LocalEngineClient::Load() const {
  LoadInfo info = shell_->Read([](const RouterCore& core) { return core.Load(); });
  info.num_steps = core_->num_steps.load();
  return info;
}

int64_t LocalEngineClient::MaxSequenceTokens() const {
  return static_cast<int64_t>(core_->cache->num_blocks()) * core_->cache->block_size();
}

const ModelConfig& LocalEngineClient::config() const { return core_->weights->config; }

}  // namespace tandem
