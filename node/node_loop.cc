#include "node/node_loop.h"

#include <utility>

namespace tandem {

void NodeLoop::Start(std::function<bool()> iterate) {
  iterate_ = std::move(iterate);
  thread_ = std::thread([this] { Run(); });
}

void NodeLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

void NodeLoop::Stop() {
  stop_.store(true);
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  inbox_.clear();
}

void NodeLoop::Run() {
  bool ran = false;
  while (!stop_.load()) {
    std::deque<std::function<void()>> work;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (inbox_.empty() && !ran) cv_.wait_for(lock, idle_wait_, [this] { return !inbox_.empty() || stop_.load(); });
      work.swap(inbox_);
    }
    for (auto& fn : work) fn();
    ran = iterate_();
  }
}

}  // namespace tandem
