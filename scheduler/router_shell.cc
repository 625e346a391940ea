#include "scheduler/router_shell.h"

#include <exception>
#include <random>

namespace tandem {

namespace {
// How often the dispatcher ticks the core when nothing else wakes it: deadlines are seconds,
// so this bounds how late a timeout fires, not how often anything is placed.
constexpr std::chrono::milliseconds kTickInterval{50};
}  // namespace

RouterShell::RouterShell(std::unique_ptr<RouterCore> core, NodeLink& link, const Clock& clock,
                         std::shared_ptr<spdlog::logger> log, std::function<void(const RequestRecord&)> on_finished)
    : core_(std::move(core)), link_(link), clock_(clock), log_(std::move(log)), on_finished_(std::move(on_finished)) {
  dispatcher_ = std::thread([this] { DispatchLoop(); });
}

RouterShell::~RouterShell() { Stop({}); }

Status RouterShell::Submit(ServingRequest request, EventCallback callback) {
  if (!callback) return InvalidArgumentError("no event callback");
  if (!request.params.seed) {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    request.params.seed = rng();
  }
  if (request.arrival_us == 0) request.arrival_us = clock_.NowMicros();
  auto shared = std::make_shared<const ServingRequest>(std::move(request));
  Status status;
  Update([&](RouterCore& core, int64_t now, RouterActions* out) {
    status = core.Submit(shared, now, out);
    if (status.ok()) callbacks_[shared->id] = std::move(callback);
  });
  return status;
}

void RouterShell::Abort(int64_t request_id, FinishReason as) {
  Update([&](RouterCore& core, int64_t now, RouterActions* out) { core.Abort(request_id, as, now, out); });
}

void RouterShell::Update(const std::function<void(RouterCore&, int64_t, RouterActions*)>& fn) {
  RouterActions actions;
  std::lock_guard<std::mutex> lock(mu_);
  fn(*core_, clock_.NowMicros(), &actions);
  ExecuteLocked(actions);
  cv_.notify_all();
}

void RouterShell::ExecuteLocked(RouterActions& actions) {
  for (RouterAction& action : actions) {
    if (auto* p = std::get_if<SendPrefill>(&action)) {
      link_.SendPrefill(*p);
    } else if (auto* a = std::get_if<SendAbort>(&action)) {
      link_.SendAbort(*a);
    } else if (auto* v = std::get_if<SendClusterView>(&action)) {
      link_.SendClusterView(*v);
    } else if (auto* e = std::get_if<DeliverEvent>(&action)) {
      auto it = callbacks_.find(e->event.request_id);
      if (it == callbacks_.end()) continue;  // a request refused at Submit has no callback
      Delivery d;
      d.event = std::move(e->event);
      if (d.event.final()) {
        d.callback = std::move(it->second);
        callbacks_.erase(it);
      } else {
        d.callback = it->second;
      }
      work_.push_back(std::move(d));
    }
  }
}

bool RouterShell::Ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return core_->Ready();
}

InferenceClient::Health RouterShell::GetHealth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {core_->Serving(), core_->Ready() ? "" : core_->NotReadyReason()};
}

Status RouterShell::WaitReady(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  const bool ok = cv_.wait_for(lock, timeout, [this] { return core_->shutting_down() || core_->Ready(); });
  if (core_->shutting_down()) return UnavailableError("the router is shutting down");
  if (ok) return Status::Ok();
  return DeadlineExceededError("cluster not ready after " + std::to_string(timeout.count()) +
                               " ms: " + core_->NotReadyReason());
}

void RouterShell::Deliver(Delivery& d) {
  const int64_t id = d.event.request_id;
  const bool final = d.event.final();
  if (final) {
    log_->info("{}", d.event.record.Summary());
    // Before the client hears the end: whoever has its answer finds it in the metrics and log.
    if (on_finished_) {
      try {
        on_finished_(d.event.record);
      } catch (const std::exception& e) {
        log_->error("on_finished for request {} threw: {}", id, e.what());
      }
    }
  } else if (threw_.count(id)) {
    return;  // its callback threw on an earlier event: only the final one goes out now
  }
  try {
    d.callback(std::move(d.event));
  } catch (const std::exception& e) {
    log_->error("the event callback of request {} threw: {}", id, e.what());
    if (!final && threw_.insert(id).second) {
      Update([&](RouterCore& core, int64_t now, RouterActions* out) {
        core.Fail(id, InternalError(std::string("the event callback threw: ") + e.what()), now, out);
      });
    }
  } catch (...) {
    log_->error("the event callback of request {} threw a non-exception", id);
    if (!final && threw_.insert(id).second) {
      Update([&](RouterCore& core, int64_t now, RouterActions* out) {
        core.Fail(id, InternalError("the event callback threw"), now, out);
      });
    }
  }
  if (final) threw_.erase(id);
}

void RouterShell::DispatchLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  auto next_tick = std::chrono::steady_clock::now() + kTickInterval;
  while (true) {
    cv_.wait_until(lock, next_tick, [this] { return !work_.empty() || exit_; });
    if (work_.empty() && exit_) return;
    if (std::chrono::steady_clock::now() >= next_tick) {
      next_tick = std::chrono::steady_clock::now() + kTickInterval;
      if (!exit_) {
        RouterActions actions;
        core_->Tick(clock_.NowMicros(), &actions);
        ExecuteLocked(actions);
      }
    }
    if (work_.empty()) continue;
    std::deque<Delivery> batch;
    batch.swap(work_);
    lock.unlock();
    for (Delivery& d : batch) Deliver(d);  // user callbacks: never under mu_
    batch.clear();                         // release captured callbacks outside the lock too
    lock.lock();
  }
}

void RouterShell::Stop(const std::function<void()>& after_sends) {
  std::call_once(stop_once_, [&] {
    Update([](RouterCore& core, int64_t now, RouterActions* out) { core.Shutdown(now, out); });
    if (after_sends) after_sends();
    {
      std::lock_guard<std::mutex> lock(mu_);
      exit_ = true;
    }
    cv_.notify_all();
    if (dispatcher_.joinable()) dispatcher_.join();
  });
}

}  // namespace tandem
