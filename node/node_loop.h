// The engine thread of a node (prefill or decode). io threads Post() closures; the loop runs
// them in order, then one iteration of the node's own work (progress the transport, poll
// transfers, run an engine step, dispatch events, report load). An iteration that ran no step
// (nothing runnable: an empty queue, or requests waiting for a reservation or for blocks) is
// followed by a wait of up to `idle_wait`, cut short by a Post: the loop never spins, yet the UCX
// worker is still progressed (puts into our pool may need it) and load reports go out while
// idle. Everything the closures and the iteration touch is owned by this one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace tandem {

class NodeLoop {
 public:
  explicit NodeLoop(std::chrono::milliseconds idle_wait = std::chrono::milliseconds(1)) : idle_wait_(idle_wait) {}
  ~NodeLoop() { Stop(); }
  NodeLoop(const NodeLoop&) = delete;
  NodeLoop& operator=(const NodeLoop&) = delete;

  // `iterate`: one round of the node's work; returns whether it ran an engine step (then the
  // next round follows at once).
  void Start(std::function<bool()> iterate);
  void Post(std::function<void()> fn);  // any thread
  // Joins the thread; closures still queued are dropped. Idempotent.
  void Stop();

 private:
  void Run();

  const std::chrono::milliseconds idle_wait_;
  std::function<bool()> iterate_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> inbox_;  // GUARDED_BY(mu_)
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace tandem
