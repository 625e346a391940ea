#include "node/node_metrics.h"

namespace tandem {

namespace {
prometheus::Gauge& MakeGauge(prometheus::Registry& r, const prometheus::Labels& l, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Labels(l).Register(r).Add({});
}
prometheus::Counter& MakeCounter(prometheus::Registry& r, const prometheus::Labels& l, const char* name,
                                 const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Labels(l).Register(r).Add({});
}
prometheus::Histogram& MakeHistogram(prometheus::Registry& r, const prometheus::Labels& l, const char* name,
                                     const char* help, const std::vector<double>& buckets) {
  return prometheus::BuildHistogram().Name(name).Help(help).Labels(l).Register(r).Add({}, buckets);
}
}  // namespace

NodeMetrics::NodeMetrics(std::string_view model_name, std::string_view role, std::string_view node_id)
    : labels_(ProcessLabels(model_name, role, node_id)),
      registry_(std::make_shared<prometheus::Registry>()),
      running_(MakeGauge(*registry_, labels_, "tandem:num_requests_running",
                         "Requests in the engine's batch (prefill nodes: also those whose KV is still moving)")),
      waiting_(MakeGauge(*registry_, labels_, "tandem:num_requests_waiting",
                         "Requests waiting: for prefill (prefill nodes), for their KV or for a batch slot (decode)")),
      kv_usage_(MakeGauge(*registry_, labels_, "tandem:kv_cache_usage_perc",
                          "Share of the KV pool's blocks in use, reservations included (0 to 1)")),
      reserved_unfilled_(MakeGauge(*registry_, labels_, "tandem:kv_blocks_reserved_unfilled",
                                   "KV blocks reserved for requests whose KV has not landed yet")),
      prompt_tokens_(MakeCounter(*registry_, labels_, "tandem:prompt_tokens_total",
                                 "Prompt tokens computed (prefills, chunks and recomputes of preempted requests)")),
      generation_tokens_(MakeCounter(*registry_, labels_, "tandem:generation_tokens_total", "Tokens sampled")),
      preemptions_(MakeCounter(*registry_, labels_, "tandem:num_preemptions_total",
                               "Running requests whose KV blocks were taken back (to be recomputed)")),
      transfers_(MakeCounter(*registry_, labels_, "tandem:kv_transfers_total", "KV transfers completed")),
      step_(MakeHistogram(*registry_, labels_, "tandem:engine_step_seconds", "One engine step (forward pass)",
                          TokenLatencyBuckets())),
      transfer_(MakeHistogram(*registry_, labels_, "tandem:kv_transfer_seconds",
                              "KV transfer, first write posted to every byte visible", TokenLatencyBuckets())),
      transfer_exposed_(MakeHistogram(*registry_, labels_, "tandem:kv_transfer_exposed_seconds",
                                      "The part of the KV transfer after the prefill ended (prefill nodes)",
                                      TokenLatencyBuckets())),
      transfer_bytes_(
          MakeHistogram(*registry_, labels_, "tandem:kv_transfer_bytes", "KV bytes moved per request", ByteBuckets())),
      decodes_(role != "prefill") {}

void NodeMetrics::ObserveStep(const StepShape& shape, int64_t step_us) {
  step_.Observe(static_cast<double>(step_us) / 1e6);
  if (shape.prefill.tokens > 0) prompt_tokens_.Increment(static_cast<double>(shape.prefill.tokens));
  if (decodes_ && shape.decode_batch > 0) generation_tokens_.Increment(shape.decode_batch);
}

void NodeMetrics::AddGeneratedTokens(int64_t n) {
  if (n > 0) generation_tokens_.Increment(static_cast<double>(n));
}

void NodeMetrics::ObserveTransfer(int64_t bytes, int64_t transfer_us, int64_t exposed_us) {
  transfers_.Increment();
  if (bytes > 0) transfer_bytes_.Observe(static_cast<double>(bytes));
  if (transfer_us >= 0) transfer_.Observe(static_cast<double>(transfer_us) / 1e6);
  if (exposed_us >= 0) transfer_exposed_.Observe(static_cast<double>(exposed_us) / 1e6);
}

void NodeMetrics::SetState(const State& s) {
  running_.Set(s.running);
  waiting_.Set(s.waiting);
  kv_usage_.Set(s.total_blocks > 0 ? static_cast<double>(s.used_blocks) / s.total_blocks : 0.0);
  if (s.reserved_unfilled_blocks >= 0) reserved_unfilled_.Set(s.reserved_unfilled_blocks);
  if (s.preemptions > preemptions_seen_) {
    preemptions_.Increment(static_cast<double>(s.preemptions - preemptions_seen_));
    preemptions_seen_ = s.preemptions;
  }
}

}  // namespace tandem
