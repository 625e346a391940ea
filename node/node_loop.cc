#include "node/node_loop.h"

#include <utility>

namespace tandem {

void NodeLoop::Start(std::function<bool()> busy, std::function<void()> iterate) {
  busy_ = std::move(busy);
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
  while (!stop_.load()) {
    std::deque<std::function<void()>> work;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (inbox_.empty() && !busy_()) cv_.wait_for(lock, idle_wait_);
      work.swap(inbox_);
    }
    for (auto& fn : work) fn();
    iterate_();
  }
}

}  // namespace tandem
