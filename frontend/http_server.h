// The router's OpenAI-compatible HTTP/1.1 server (Boost.Beast on Asio): keep-alive
// connections, each an async state machine on its own strand, run by a small io_context pool.
//
// Endpoints: POST /v1/completions, POST /v1/chat/completions (JSON or SSE streams),
// GET /v1/models, GET /health, POST /tokenize, POST /detokenize (vLLM's bodies), and
// GET /v1/load (the InferenceClient's LoadInfo as JSON, read-only), GET /metrics (Prometheus text
// format: scheduler/router_metrics.h; like /health it needs no key, as in vLLM).
// With api_key or api_keys set every route but /health needs "Authorization: Bearer <key>";
// api_keys also limit each key's models, SLO class, rate and concurrency (429 with Retry-After
// and x-ratelimit-* headers). Slow clients are bounded by the timeouts in HttpServerOptions.
//
// Threading: Start and Stop from one controlling thread; port() from any thread after Start.
// The InferenceClient and the ServedModel must outlive the server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "frontend/api_keys.h"
#include "frontend/served_model.h"
#include "scheduler/inference_client.h"
#include "scheduler/router_metrics.h"
#include "slo/slo_config.h"

namespace tandem {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;             // 0: an ephemeral port (read it back with port())
  int num_threads = 2;              // io_context threads
  size_t max_body_bytes = 1 << 20;  // larger request bodies get 413
  std::string api_key;              // empty: no authentication (one key; see api_keys)
  // --api-keys: many keys, each with its models, SLO class and limits (frontend/api_keys.h).
  // Null: none. Not together with api_key.
  std::shared_ptr<const ApiKeys> api_keys;
  // Reading a request, in three bounded waits (as nginx and Envoy do): for its first byte on an
  // open connection (idle: closed without an answer), from there to the end of its headers, and
  // from there to the end of its body (either: 408 request_timeout, and closed).
  int idle_timeout_s = 60;
  int header_timeout_s = 10;
  int body_timeout_s = 30;
  int write_timeout_s = 30;                     // a client that stops reading is dropped (and aborted)
  int32_t max_connections = 4096;               // open connections; beyond: 503 at once, and closed
  std::shared_ptr<const SloConfig> slo_config;  // --slo-config: the SLO classes (null: none)
  // What GET /metrics shows; the same object should see every finished request (the client's
  // on_finished hook). Null: the server makes its own (role "router"), which sees rejections only.
  std::shared_ptr<RouterMetrics> metrics;
};

struct ServerContext;  // shared by the connections (scheduler/server_context.h)

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, std::shared_ptr<const ServedModel> model, InferenceClient& client);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the io threads. Errors: Unavailable when the address cannot be
  // bound, InvalidArgument for a bad host, thread count or timeout (each must be positive).
  Status Start();
  // Stops accepting, drops open connections (aborting their requests) and joins the threads.
  // Idempotent.
  void Stop();

  uint16_t port() const { return port_; }

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace tandem
