// The open-loop client: sends every request at its scheduled time on one thread (Asio), whatever
// the server does, with one connection per request and no thread per stream, and records what
// it saw. Requests past --max-concurrency wait for a free slot (their send lag then shows it).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "loadgen/metrics.h"
#include "loadgen/multi_turn.h"
#include "loadgen/workload.h"

namespace tandem::loadgen {

// Where the requests go: http://host:port + path.
struct HttpEndpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::string path = "/v1/completions";
  bool chat() const;
};

// vLLM's two ways: --base-url http://host:port[/prefix] (overrides --host/--port), then
// --endpoint appended to it. InvalidArgument for https or a malformed URL.
Result<HttpEndpoint> ParseEndpoint(const std::string& base_url, const std::string& host, int port,
                                   const std::string& endpoint);

struct RunOptions {
  HttpEndpoint endpoint;
  std::string model;
  std::string api_key;  // "Authorization: Bearer", when set
  bool ignore_eos = false;
  // Send each request's class as X-SLO-Class (a server without that class answers 400, so it
  // is asked for: --send-slo-class).
  bool send_slo_class = false;
  double temperature = 0;
  nlohmann::json extra_body = nlohmann::json::object();  // merged into every request body
  int64_t max_concurrency = 0;                           // 0: unlimited
  double request_timeout_s = 600;
  double multi_turn_think_s = 0;  // a conversation's next turn goes this long after the answer
  // Called about twice a second while running, and once at the end: (sent, done, failed).
  std::function<void(int64_t, int64_t, int64_t, const std::vector<RequestResult>&)> on_progress;
};

struct RunResult {
  std::vector<RequestResult> results;  // in workload order
  double duration_s = 0;               // start -> last request ended (vLLM's benchmark_duration)
};

// The JSON body of one request (exposed for tests): completions send token ids when the prompt
// has them, chat sends the text as the user message; stream with usage; max tokens; the class
// goes in the X-SLO-Class header, not here.
// A multi-turn request is sent as `turn` (loadgen/multi_turn.h) instead of its own prompt.
nlohmann::json BuildRequestBody(const BenchRequest& request, const RunOptions& options,
                                const ComposedTurn* turn = nullptr);

// Sends requests[i] at schedule[i] seconds after the start (multi-turn: the k-th first turn at
// schedule[k], a later turn when the one before it has ended, after multi_turn_think_s; a turn
// after a failed one fails unsent) and returns when every one has
// ended (succeeded, failed, or timed out). InvalidArgument for mismatched sizes or a host that
// does not resolve; everything that goes wrong with one request is that request's failure.
Result<RunResult> RunBenchmark(const std::vector<BenchRequest>& requests, const std::vector<double>& schedule,
                               const RunOptions& options);

// GET /v1/models: the first model's id (what vLLM's client asks when --model is not given).
// Unavailable when nothing answers (resolve, connect, read); FailedPrecondition when the server
// answers but lists no model (an error status, or a body without one).
Result<std::string> FetchFirstModel(const HttpEndpoint& endpoint, const std::string& api_key, double timeout_s);

}  // namespace tandem::loadgen
