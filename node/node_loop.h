// The engine thread of a node (prefill or decode). io threads Post() closures; the loop runs
// them in order, then one iteration of the node's own work (progress the transport, poll
// transfers, run an engine step, dispatch events, report load). With nothing to do it still
// wakes every `idle_wait`: the UCX worker must be progressed (puts into our pool may need it)
// and load reports must go out while idle. Everything the closures and the iteration touch is
// therefore owned by this one thread.
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

  // `busy`: whether the node has work now (then there is no wait); `iterate`: one round of it.
  void Start(std::function<bool()> busy, std::function<void()> iterate);
  void Post(std::function<void()> fn);  // any thread
  // Joins the thread; closures still queued are dropped. Idempotent.
  void Stop();

 private:
  void Run();

  const std::chrono::milliseconds idle_wait_;
  std::function<bool()> busy_;
  std::function<void()> iterate_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> inbox_;  // GUARDED_BY(mu_)
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace tandem
