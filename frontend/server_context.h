// State shared by every connection of one HttpServer (internal to scheduler/).
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "frontend/http_server.h"
#include "frontend/openai_protocol.h"
#include "frontend/rate_limiter.h"
#include "frontend/served_model.h"
#include "scheduler/inference_client.h"

namespace tandem {

struct ServerContext {
  ServerContext(HttpServerOptions o, std::shared_ptr<const ServedModel> m, InferenceClient& c);

  // "cmpl-<32 hex>" / "chatcmpl-<32 hex>": unique per process (a bijection of the router id)
  // and unguessable across processes (a random salt).
  std::string PublicId(ApiKind kind, int64_t id) const;
  int64_t NextRequestId() { return next_request_id.fetch_add(1); }

  // Runs `post` (which posts an event to a connection's strand) unless the server is stopping.
  // Client threads call this; Stop closes the gate before the io_context goes away, so no
  // event is ever posted to a destroyed executor.
  template <typename F>
  void PostIfOpen(F&& post) {
    std::lock_guard<std::mutex> lock(gate_mu);
    if (gate_open) std::forward<F>(post)();
  }
  void CloseGate() {
    std::lock_guard<std::mutex> lock(gate_mu);
    gate_open = false;
  }

  const HttpServerOptions options;
  const std::shared_ptr<const ServedModel> model;
  InferenceClient& client;
  const std::shared_ptr<spdlog::logger> log;
  const uint64_t id_salt;
  // Who may call (null: anyone): api_keys, or the one api_key; and their limits.
  const std::shared_ptr<const ApiKeys> keys;
  const std::unique_ptr<RateLimiter> limiter;
  const std::shared_ptr<RouterMetrics> metrics;  // never null
  std::atomic<int64_t> next_request_id{1};
  std::atomic<int32_t> open_connections{0};  // HttpSessions alive (see max_connections)

 private:
  std::mutex gate_mu;
  bool gate_open = true;  // GUARDED_BY(gate_mu)
};

}  // namespace tandem
