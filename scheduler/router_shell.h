// The I/O side that every InferenceClient built on the RouterCore shares: one mutex around the
// core, the callbacks of accepted requests, and one dispatcher thread that delivers events (in
// the order the core produced them, never under the mutex) and ticks the core (deadlines, the
// queue). What reaches the nodes goes through a NodeLink: RPC connections for the cluster
// (ClusterClient), the engine thread's inbox for the colocated worker.
//
// A callback that throws fails its request: the exception is caught on the dispatcher thread,
// logged, and the core fails the request (Abort to its nodes, a final kError event, which is
// delivered to the same callback). Nothing an application callback does can take the router
// down or disturb another request.
//
// The finished request's RequestRecord is logged here, once (RequestRecord::Summary), and handed
// to `on_finished` before the final event goes to the request's callback (so a client that has
// its answer finds the request counted in the metrics and written to the request log).
//
// Threading: every public method may be called from any thread; Update() is how io threads feed
// the core. NodeLink methods run with the mutex held: they must only queue, never block, and
// never call back into the shell.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "scheduler/router_core.h"

namespace tandem {

class NodeLink {
 public:
  virtual ~NodeLink() = default;
  virtual void SendPrefill(const SendPrefill& order) = 0;
  virtual void SendAbort(const SendAbort& order) = 0;
  virtual void SendClusterView(const SendClusterView& order) = 0;
};

class RouterShell {
 public:
  // `link` must outlive the shell's Stop(); `clock` the shell.
  RouterShell(std::unique_ptr<RouterCore> core, NodeLink& link, const Clock& clock, std::shared_ptr<spdlog::logger> log,
              std::function<void(const RequestRecord&)> on_finished = nullptr);
  ~RouterShell();  // Stop({})
  RouterShell(const RouterShell&) = delete;
  RouterShell& operator=(const RouterShell&) = delete;

  // InferenceClient::Submit: draws the seed of a request that has none (the prefill node samples
  // the first token and the decode node the rest, from one stream) and stamps arrival.
  Status Submit(ServingRequest request, EventCallback callback);
  void Abort(int64_t request_id, FinishReason as);

  // Runs fn(core, now, actions) under the mutex and carries out the actions.
  void Update(const std::function<void(RouterCore&, int64_t, RouterActions*)>& fn);
  // Reads the core under the mutex.
  template <typename Fn>
  auto Read(Fn&& fn) const {
    std::lock_guard<std::mutex> lock(mu_);
    return fn(static_cast<const RouterCore&>(*core_));
  }

  bool Ready() const;
  InferenceClient::Health GetHealth() const;
  // Blocks until Ready() or the timeout (DeadlineExceeded naming what is not ready).
  Status WaitReady(std::chrono::milliseconds timeout) const;

  // Fails everything in flight (the core's Shutdown: Aborts to the nodes, final events), then
  // runs `after_sends` (the cluster closes its connections there, which flushes the Aborts; the
  // worker stops its engine), then delivers the final events and joins the dispatcher: no
  // callback runs after Stop returns. Idempotent.
  void Stop(const std::function<void()>& after_sends);

  const Clock& clock() const { return clock_; }

 private:
  struct Delivery {
    EventCallback callback;
    InferenceEvent event;
  };

  void ExecuteLocked(RouterActions& actions);
  void DispatchLoop();
  void Deliver(Delivery& d);

  const std::unique_ptr<RouterCore> core_;  // GUARDED_BY(mu_)
  NodeLink& link_;
  const Clock& clock_;
  const std::shared_ptr<spdlog::logger> log_;
  const std::function<void(const RequestRecord&)> on_finished_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;                    // work for the dispatcher; core state changes (WaitReady)
  std::unordered_map<int64_t, EventCallback> callbacks_;  // GUARDED_BY(mu_): accepted, not final
  std::deque<Delivery> work_;                             // GUARDED_BY(mu_)
  bool exit_ = false;                                     // GUARDED_BY(mu_)
  std::unordered_set<int64_t> threw_;                     // dispatcher thread: requests whose callback threw
  std::thread dispatcher_;
  std::once_flag stop_once_;
};

}  // namespace tandem
