// A benchmark's numbers, defined exactly as vLLM's `vllm bench serve` (vllm/benchmarks/serve.py,
// `calculate_metrics`) defines them, so results compare one to one:
//   TTFT   request sent -> first streamed content;
//   TPOT   (E2EL - TTFT) / (output tokens - 1), for requests with more than one output token;
//   ITL    every gap between two streamed chunks, pooled over all requests;
//   E2EL   request sent -> response complete;
//   throughputs over the benchmark's duration (first send -> last response); output tokens are
//   the server's usage.completion_tokens (counted chunks when it sends none);
//   goodput  successful requests that meet every given target (a request with one output token
//   counts TPOT 0) / duration;
//   statistics over successful requests: mean, median, population std, percentiles with
//   numpy's linear interpolation; 0 when there is nothing to average.
// Added here (not in vLLM): SLO attainment as DistServe (OSDI'24) defines it, the share of ALL
// requests (a failed one is a miss) meeting every target ("joint"), and per target; the same per
// SLO class when requests carry one; the exact peak of requests in flight; the client's own lag
// (actual - scheduled send time), so a user sees when the client is the bottleneck.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace tandem::loadgen {

// One request as the client saw it. Times are seconds on the client's steady clock, relative to
// the benchmark's start.
struct RequestResult {
  int64_t index = 0;
  std::string slo_class;   // "" when the workload gave none
  int32_t prompt_len = 0;  // tokens sent (exact for token-id prompts)
  int32_t expected_output_len = 0;
  double scheduled_s = 0;  // when the schedule said to send it
  double sent_s = 0;       // when it went out
  double done_s = -1;      // when it ended, successfully or not (-1: never)
  bool success = false;
  int http_status = 0;          // 0: no response
  std::string error;            // why it failed ("" on success)
  double ttft_s = -1;           // -1: no content arrived
  double latency_s = -1;        // E2EL; -1: it never completed
  std::vector<double> chunk_s;  // arrival of every content chunk, relative to sent_s
  int32_t output_tokens = 0;    // usage.completion_tokens, or chunks counted
  int32_t cached_tokens = 0;    // usage.prompt_tokens_details.cached_tokens (prefix cache), 0 when absent
  int32_t turn = 0;             // multi-turn workloads: the turn in its conversation (0 first)
  std::string generated_text;

  double tpot_s() const;  // 0 with fewer than two output tokens (vLLM's rule for goodput)
};

// Targets in milliseconds; an unset one is not checked.
struct SloTargets {
  std::optional<double> ttft_ms, tpot_ms, e2el_ms;
  bool empty() const { return !ttft_ms && !tpot_ms && !e2el_ms; }
  // "ttft:2000 tpot:50" pairs (vLLM's --goodput). InvalidArgument naming a bad pair.
  static Result<SloTargets> Parse(const std::vector<std::string>& pairs);
  // Every target scaled by `factor` (the slo-scale sweep).
  SloTargets Scaled(double factor) const;
};

// Which targets a request is held to: its class's when it has one and the class is known, the
// default (--goodput) otherwise.
struct SloPolicy {
  SloTargets fallback;
  std::map<std::string, SloTargets> classes;
  const SloTargets& For(const std::string& slo_class) const;
  bool empty() const;
  // The router's --slo-config file (slo/slo_config.h): each class's TTFT and TPOT targets; its
  // default class, if any, for requests without one when `fallback` is empty. InvalidArgument
  // with the file and the field at fault.
  static Result<SloPolicy> FromConfigFile(const std::string& path, SloTargets fallback);
};

// Whether a successful request meets `t`, per target and jointly.
struct SloCheck {
  bool ttft = true, tpot = true, e2el = true;
  bool all() const { return ttft && tpot && e2el; }
};
SloCheck CheckSlo(const RequestResult& r, const SloTargets& t);

struct MetricStats {
  double mean_ms = 0, median_ms = 0, std_ms = 0;
  std::vector<std::pair<double, double>> percentiles_ms;  // (p, value)
};

struct Attainment {
  int64_t requests = 0;
  int64_t met = 0;                      // all targets (a failed request meets none)
  double joint = 0;                     // met / requests
  double ttft = 0, tpot = 0, e2el = 0;  // per target, over all requests
  double goodput = 0;                   // met / duration
};

struct Summary {
  int64_t completed = 0, failed = 0;
  int64_t total_input = 0, total_output = 0;
  int64_t total_cached = 0;  // prompt tokens the server's prefix cache held (its usage says)
  double duration_s = 0;
  double request_throughput = 0, output_throughput = 0, total_token_throughput = 0;
  std::optional<double> request_goodput;  // with targets only
  MetricStats ttft, tpot, itl, e2el;
  double max_output_tokens_per_s = 0;    // vLLM: the busiest one-second bucket
  int64_t max_concurrent_requests = 0;   // vLLM: requests active in that kind of bucket
  int64_t max_in_flight = 0;             // exact peak of requests in flight
  std::optional<Attainment> attainment;  // with targets only
  std::map<std::string, Attainment> by_class;
  MetricStats send_lag;                   // actual - scheduled send, ms
  std::map<std::string, int64_t> errors;  // failure reason -> count
};

Summary Summarize(const std::vector<RequestResult>& results, double duration_s, const std::vector<double>& percentiles,
                  const SloPolicy& slo);

// numpy.percentile's default (linear interpolation between closest ranks). REQUIRES: sorted.
double Percentile(const std::vector<double>& sorted, double p);
MetricStats Stats(std::vector<double> values_s, const std::vector<double>& percentiles);

}  // namespace tandem::loadgen
