#include "apps/http_options.h"

#include <memory>
#include <string>

#include "common/logging.h"
#include "scheduler/slo_placement_policy.h"
#include "slo/latency_model.h"
#include "slo/request_log.h"

namespace tandem {

void AddHttpOptions(CLI::App& sub, HttpServerOptions& http) {
  sub.add_option("--host", http.host, "HTTP address to listen on")->capture_default_str();
  sub.add_option("--port", http.port, "HTTP port (0: any free port)")->capture_default_str();
  sub.add_option("--api-key", http.api_key, "Require 'Authorization: Bearer KEY'");
  sub.add_option("--max-connections", http.max_connections, "Open HTTP connections at most (beyond: 503 and close)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  // Each wait while reading a request, and for a client to read a response (see HttpServerOptions).
  const struct {
    const char* flag;
    int* seconds;
    const char* help;
  } timeouts[] = {
      {"--http-idle-timeout-s", &http.idle_timeout_s,
       "A keep-alive connection with no new request for this long is closed (silently)"},
      {"--http-header-timeout-s", &http.header_timeout_s,
       "From a request's first byte to the end of its headers (beyond: 408 request_timeout, and closed)"},
      {"--http-body-timeout-s", &http.body_timeout_s,
       "From the end of a request's headers to the end of its body (beyond: 408 request_timeout, and closed)"},
      {"--http-write-timeout-s", &http.write_timeout_s,
       "A client that reads none of a response for this long is dropped (its request aborted)"},
  };
  for (const auto& t : timeouts) {
    sub.add_option(t.flag, *t.seconds, t.help)->capture_default_str()->check(CLI::Range(1, 86400));
  }
  sub.add_option("--http-threads", http.num_threads, "HTTP io threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  sub.add_option_function<size_t>(
         "--max-body-kib", [&http](size_t kib) { http.max_body_bytes = kib * 1024; },
         "Largest request body in KiB (413 above)")
      ->default_str(std::to_string(http.max_body_bytes / 1024))
      ->check(CLI::Range(1, 1 << 20));
  sub.add_option_function<std::string>(
      "--slo-config",
      [&http](const std::string& path) {
        auto config = SloConfig::FromFile(path);
        if (!config.ok()) throw CLI::ValidationError("--slo-config", config.status().message());
        http.slo_config = std::make_shared<const SloConfig>(std::move(*config));
      },
      "SLO classes (JSON: {\"classes\": [{\"name\", \"ttft_ms\", \"tpot_ms\", \"priority\", \"default\", "
      "\"max_queued\"}]}); requests pick one with \"slo_class\" or the X-SLO-Class header; beyond a class's "
      "max_queued waiting requests, 503 queue_full");
  // After --slo-config: CLI11 runs the callbacks in the order the options are defined, and a key
  // may pin one of its classes.
  sub.add_option_function<std::string>(
      "--api-keys",
      [&http](const std::string& path) {
        auto keys = ApiKeys::FromFile(path, http.slo_config.get());
        if (!keys.ok()) throw CLI::ValidationError("--api-keys", keys.status().message());
        http.api_keys = std::make_shared<const ApiKeys>(std::move(*keys));
      },
      "API keys (JSON: {\"keys\": [{\"name\", \"sha256\" (printf %s KEY | sha256sum), \"models\", "
      "\"slo_class\", \"requests_per_minute\", \"tokens_per_minute\", \"max_concurrent\"}]})");
}

Result<std::function<void(const RequestRecord&)>> FinishedHook(const AdmissionFlags& flags,
                                                               std::shared_ptr<RouterMetrics> metrics) {
  std::shared_ptr<RequestLog> log;
  if (!flags.request_log.empty()) {
    ASSIGN_OR_RETURN(log, RequestLog::Open(flags.request_log));
  }
  return std::function<void(const RequestRecord&)>([log, metrics](const RequestRecord& r) {
    if (metrics) metrics->ObserveFinished(r);
    if (log) log->Write(r);
  });
}

void AddPlacementOptions(CLI::App& sub, PlacementFlags& flags) {
  sub.add_option("--policy", flags.policy,
                 "Placement policy: least-loaded, or slo (predicted TTFT/TPOT; needs --latency-profile)")
      ->capture_default_str();
  sub.add_option("--latency-profile", flags.latency_profile, "Latency model of the nodes (tandem profile --out)")
      ->check(CLI::ExistingFile);
  sub.add_option("--admission", flags.admission,
                 "queue: a request no node can serve within its SLO still waits (as vLLM); slo: it gets 429 "
                 "slo_unattainable at once")
      ->capture_default_str();
  sub.add_flag("--kv-aware-routing,!--no-kv-aware-routing", flags.kv_aware_routing,
               "Place a prompt on the prefill node that caches its start and the decode node that holds it (from "
               "the nodes' load reports); default: on");
}

Result<std::unique_ptr<PlacementPolicy>> MakePlacementPolicy(const PlacementFlags& flags) {
  ASSIGN_OR_RETURN(AdmissionMode admission, ParseAdmissionMode(flags.admission));
  if (flags.policy != "slo") {
    if (admission == AdmissionMode::kSlo) return InvalidArgumentError("--admission slo needs --policy slo");
    return CreatePlacementPolicy(flags.policy);
  }
  if (flags.latency_profile.empty()) {
    if (admission == AdmissionMode::kSlo) {
      return InvalidArgumentError("--admission slo needs --latency-profile (make one with tandem profile)");
    }
    GetLogger("router")->warn("--policy slo without --latency-profile: placing least-loaded");
    return CreatePlacementPolicy("least-loaded");
  }
  ASSIGN_OR_RETURN(LatencyProfile profile, LoadLatencyProfile(flags.latency_profile));
  GetLogger("router")->info("placement: slo policy on profile {} ({} on {}), admission {}", flags.latency_profile,
                            profile.model, profile.device, flags.admission);
  return std::unique_ptr<PlacementPolicy>(std::make_unique<SloPlacementPolicy>(std::move(profile), admission));
}

void AddAdmissionOptions(CLI::App& sub, AdmissionFlags& flags) {
  sub.add_option_function<double>(
         "--first-token-timeout-s",
         [&flags](double s) { flags.first_token_timeout = std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); },
         "A request with no first token this long after arrival (queued, prefilling, or on a stuck node) fails "
         "(0: never)")
      ->default_str(std::to_string(flags.first_token_timeout.count() / 1000))
      ->check(CLI::Range(0.0, 86400.0));
  sub.add_option_function<double>(
         "--inter-token-timeout-s",
         [&flags](double s) { flags.inter_token_timeout = std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); },
         "A streaming request that gets no token for this long (a wedged decode node) fails (0: never)")
      ->default_str(std::to_string(flags.inter_token_timeout.count() / 1000))
      ->check(CLI::Range(0.0, 86400.0));
  sub.add_option("--request-log", flags.request_log,
                 "Append one JSON line per finished request (its record; also a trace tandem bench replays)");
  sub.add_option("--max-queued-requests", flags.max_queued,
                 "Requests that may wait for KV room before new ones get 429")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 24));
}

}  // namespace tandem
