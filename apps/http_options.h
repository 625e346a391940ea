// The flags of an OpenAI-API server (tandem router, worker, serve), written straight into its
// HttpServerOptions, and of the router core that admits its requests.
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "frontend/http_server.h"

namespace tandem {

// --host, --port, --api-key, --http-threads, --max-body-kib, --slo-config. `http`'s current
// values are the defaults shown in --help.
void AddHttpOptions(CLI::App& sub, HttpServerOptions& http);

// How long a request may wait, and how many may queue, whatever runs them (cluster or worker).
struct AdmissionFlags {
  std::chrono::milliseconds first_token_timeout{60000};
  std::chrono::milliseconds inter_token_timeout{60000};
  int32_t max_queued = 1024;
  std::string request_log;  // --request-log FILE ("" = none)
};
// --first-token-timeout-s, --inter-token-timeout-s, --max-queued-requests, --request-log.
void AddAdmissionOptions(CLI::App& sub, AdmissionFlags& flags);

// The router core's on_finished hook for --request-log (nullptr without one); the log stays
// open as long as the hook lives. A Status naming the file when it cannot be opened.
Result<std::function<void(const RequestRecord&)>> RequestLogHook(const AdmissionFlags& flags);

}  // namespace tandem
