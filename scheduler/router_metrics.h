// The router's Prometheus metrics (GET /metrics on its HTTP port), also the colocated worker's:
// every finished request's RequestRecord (token counts, finish reasons, TTFT / inter-token / e2e /
// queue / prefill / decode time histograms, the KV transfer and the part of it not hidden behind
// the prefill, SLO attainment by class and by missed target), the front end's rejections by
// reason, and, read at scrape time from the router core's LoadInfo, what is running and waiting,
// the placement decisions and every node's state and up/down transitions.
//
// Names follow vLLM's families with the prefix "tandem:"; every series carries model_name and
// role ("router", or "worker" for the colocated server). The nodes export their own engines'
// metrics (node/node_metrics.h).
//
// Threading: every method may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/metrics.h"
#include "scheduler/inference_client.h"
#include "slo/request_record.h"

namespace tandem {

class RouterMetrics {
 public:
  RouterMetrics(std::string_view model_name, std::string_view role);

  // A request finished (the router shell's on_finished hook).
  void ObserveFinished(const RequestRecord& r);
  // The front end answered a generation request with an error instead of serving it; `reason`
  // is the OpenAI error code (rate_limit_exceeded, slo_unattainable, invalid_value, ...).
  void CountRejection(std::string_view reason);

  // The text exposition: the event metrics, plus the state in `load`.
  std::string Render(const LoadInfo& load) const;

  const std::string& role() const { return role_; }

 private:
  prometheus::Histogram& Histogram(std::string_view name, std::string_view help, const std::vector<double>& buckets);
  prometheus::Family<prometheus::Counter>& CounterFamily(std::string_view name, std::string_view help);

  const std::string role_;
  const prometheus::Labels labels_;
  const std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& prefix_cache_hit_tokens_;
  prometheus::Counter& generation_tokens_;
  prometheus::Counter& preemptions_;
  prometheus::Family<prometheus::Counter>& finished_;
  prometheus::Family<prometheus::Counter>& rejections_;
  prometheus::Family<prometheus::Counter>& slo_requests_;
  prometheus::Family<prometheus::Counter>& slo_met_;
  prometheus::Family<prometheus::Counter>& slo_missed_;
  prometheus::Histogram& ttft_;
  prometheus::Histogram& itl_;
  prometheus::Histogram& tpot_;
  prometheus::Histogram& e2e_;
  prometheus::Histogram& queue_;
  prometheus::Histogram& prefill_;
  prometheus::Histogram& decode_;
  prometheus::Histogram& transfer_;
  prometheus::Histogram& transfer_exposed_;
  prometheus::Histogram& transfer_bytes_;
};

}  // namespace tandem
