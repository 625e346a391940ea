// The flags of an OpenAI-API server (tandem router, worker, serve), written straight into its
// HttpServerOptions, and of the router core that admits its requests.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "frontend/http_server.h"
#include "scheduler/placement_policy.h"

namespace tandem {

// --host, --port, --api-key, --max-connections, --http-{idle,header,body,write}-timeout-s,
// --http-threads, --max-body-kib, --slo-config, --api-keys. `http`'s current values are the
// defaults shown in --help.
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

// The router core's on_finished hook: `metrics` (may be null) observes every finished request,
// and --request-log writes it; the log stays open as long as the hook lives. A Status naming the
// file when it cannot be opened.
Result<std::function<void(const RequestRecord&)>> FinishedHook(const AdmissionFlags& flags,
                                                               std::shared_ptr<RouterMetrics> metrics);

// Where the router places requests: --policy least-loaded|slo, --latency-profile (the slo
// policy's model, from `tandem profile`), --admission queue|slo.
struct PlacementFlags {
  std::string policy = "least-loaded";
  std::string latency_profile;
  std::string admission = "queue";
  bool kv_aware_routing = true;  // --no-kv-aware-routing: place without the nodes' prefix caches
};
void AddPlacementOptions(CLI::App& sub, PlacementFlags& flags);
// The policy the flags name. "slo" without a profile falls back to least-loaded (logged), as a
// cluster that was never profiled must still serve; --admission slo needs the slo policy and a
// profile. InvalidArgument for unknown names and a profile that does not load.
Result<std::unique_ptr<PlacementPolicy>> MakePlacementPolicy(const PlacementFlags& flags);

}  // namespace tandem
