#include "scheduler/router_metrics.h"

#include <algorithm>

namespace tandem {

namespace {
constexpr double kUsPerS = 1e6;
}

prometheus::Histogram& RouterMetrics::Histogram(std::string_view name, std::string_view help,
                                                const std::vector<double>& buckets) {
  return prometheus::BuildHistogram()
      .Name(std::string(name))
      .Help(std::string(help))
      .Labels(labels_)
      .Register(*registry_)
      .Add({}, buckets);
}

prometheus::Family<prometheus::Counter>& RouterMetrics::CounterFamily(std::string_view name, std::string_view help) {
  return prometheus::BuildCounter()
      .Name(std::string(name))
      .Help(std::string(help))
      .Labels(labels_)
      .Register(*registry_);
}

RouterMetrics::RouterMetrics(std::string_view model_name, std::string_view role)
    : role_(role),
      labels_(ProcessLabels(model_name, role)),
      registry_(std::make_shared<prometheus::Registry>()),
      prompt_tokens_(CounterFamily("tandem:prompt_tokens_total", "Prompt tokens of finished requests").Add({})),
      prefix_cache_hit_tokens_(CounterFamily("tandem:prefix_cache_hit_tokens_total",
                                             "Prompt tokens of finished requests whose KV came from a prefix cache "
                                             "(not computed); over tandem:prompt_tokens_total: the hit rate")
                                   .Add({})),
      generation_tokens_(CounterFamily("tandem:generation_tokens_total", "Output tokens of finished requests").Add({})),
      preemptions_(CounterFamily("tandem:num_preemptions_total",
                                 "Times finished requests had their KV blocks taken back (and recomputed)")
                       .Add({})),
      finished_(CounterFamily("tandem:request_success_total", "Finished requests, by finish reason")),
      rejections_(CounterFamily("tandem:request_rejections_total",
                                "Generation requests answered with an error instead of served, by error code")),
      slo_requests_(CounterFamily("tandem:slo_requests_total", "Finished requests that carried an SLO, by class")),
      slo_met_(CounterFamily("tandem:slo_met_total",
                             "Finished requests that met every target of their SLO (finished normally), by class")),
      slo_missed_(CounterFamily("tandem:slo_missed_total",
                                "SLO misses by class and by what was missed: ttft, tpot, or finish (did not finish "
                                "normally); a request can miss more than one")),
      ttft_(Histogram("tandem:time_to_first_token_seconds", "Arrival to first token", RequestLatencyBuckets())),
      itl_(Histogram("tandem:inter_token_latency_seconds", "Time between consecutive output tokens",
                     TokenLatencyBuckets())),
      tpot_(Histogram("tandem:request_time_per_output_token_seconds",
                      "Per request: (last token - first token) / (tokens - 1)", TokenLatencyBuckets())),
      e2e_(Histogram("tandem:e2e_request_latency_seconds", "Arrival to finish", RequestLatencyBuckets())),
      queue_(Histogram("tandem:request_queue_time_seconds",
                       "Queued to its first prompt chunk scheduled: the router's queue and the prefill node's (or "
                       "the engine's)",
                       RequestLatencyBuckets())),
      prefill_(Histogram("tandem:request_prefill_time_seconds", "First prompt chunk scheduled to first token sampled",
                         RequestLatencyBuckets())),
      decode_(Histogram("tandem:request_decode_time_seconds", "First token to last token", RequestLatencyBuckets())),
      transfer_(Histogram("tandem:kv_transfer_seconds", "KV transfer, first write posted to every byte visible",
                          TokenLatencyBuckets())),
      transfer_exposed_(Histogram("tandem:kv_transfer_exposed_seconds",
                                  "The part of the KV transfer not hidden behind the prefill (prefill end to "
                                  "transfer end; 0 when the transfer finished with the prefill)",
                                  TokenLatencyBuckets())),
      transfer_bytes_(Histogram("tandem:kv_transfer_bytes", "KV bytes moved per request", ByteBuckets())) {}

void RouterMetrics::ObserveFinished(const RequestRecord& r) {
  prompt_tokens_.Increment(r.prompt_tokens);
  if (r.cached_tokens > 0) prefix_cache_hit_tokens_.Increment(r.cached_tokens);
  generation_tokens_.Increment(r.output_tokens);
  if (r.preemptions > 0) preemptions_.Increment(r.preemptions);
  finished_.Add({{"finished_reason", std::string(FinishReasonName(r.finish_reason))}}).Increment();
  if (r.first_token_us) ttft_.Observe((r.first_token_us - r.arrival_us) / kUsPerS);
  for (size_t i = 1; i < r.token_us.size(); ++i) itl_.Observe((r.token_us[i] - r.token_us[i - 1]) / kUsPerS);
  if (r.output_tokens >= 2) tpot_.Observe(r.tpot_ms() / 1000.0);
  if (r.finish_us) e2e_.Observe((r.finish_us - r.arrival_us) / kUsPerS);
  if (r.queued_us && (r.prefill_start_us || r.placed_us)) {
    const int64_t left = r.prefill_start_us ? r.prefill_start_us : r.placed_us;
    queue_.Observe(std::max<int64_t>(0, left - r.queued_us) / kUsPerS);
  }
  if (r.prefill_start_us && r.prefill_end_us) {
    prefill_.Observe(std::max<int64_t>(0, r.prefill_end_us - r.prefill_start_us) / kUsPerS);
  }
  if (r.output_tokens >= 2) decode_.Observe((r.last_token_us - r.first_token_us) / kUsPerS);
  if (r.transfer_start_us && r.transfer_end_us) {
    transfer_.Observe(std::max<int64_t>(0, r.transfer_end_us - r.transfer_start_us) / kUsPerS);
    if (r.prefill_end_us)
      transfer_exposed_.Observe(std::max<int64_t>(0, r.transfer_end_us - r.prefill_end_us) / kUsPerS);
  }
  if (r.kv_bytes > 0) transfer_bytes_.Observe(static_cast<double>(r.kv_bytes));
  if (!r.slo.empty()) {
    const prometheus::Labels cls{{"slo_class", r.slo.class_name.empty() ? "custom" : r.slo.class_name}};
    slo_requests_.Add(cls).Increment();
    if (r.slo_met()) {
      slo_met_.Add(cls).Increment();
    } else {
      auto missed = [&](const char* target) {
        prometheus::Labels l = cls;
        l["target"] = target;
        slo_missed_.Add(l).Increment();
      };
      if (r.finish_reason != FinishReason::kStop && r.finish_reason != FinishReason::kLength) missed("finish");
      if (r.slo.ttft_ms > 0 && (r.ttft_ms() < 0 || r.ttft_ms() > r.slo.ttft_ms)) missed("ttft");
      if (r.slo.tpot_ms > 0 && r.tpot_ms() > r.slo.tpot_ms) missed("tpot");
    }
  }
}

void RouterMetrics::CountRejection(std::string_view reason) {
  rejections_.Add({{"reason", reason.empty() ? "unknown" : std::string(reason)}}).Increment();
}

std::string RouterMetrics::Render(const LoadInfo& load) const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  MetricSet state(labels_);
  state.Gauge("tandem:num_requests_running", "Requests placed on the nodes and not finished",
              load.num_requests - load.num_queued);
  state.Gauge("tandem:num_requests_waiting", "Requests waiting in the router's queue for a placement", load.num_queued);
  if (role_ == "worker" && load.num_total_kv_blocks > 0) {
    state.Gauge("tandem:kv_cache_usage_perc", "Share of the KV cache's blocks in use (0 to 1)",
                1.0 - static_cast<double>(load.num_free_kv_blocks) / load.num_total_kv_blocks);
  }
  const RouterDecisionCounts& d = load.decisions;
  const char* kDecisions = "The router's placement decisions, by outcome";
  state.Counter("tandem:placement_decisions_total", kDecisions, d.placed, {{"decision", "placed"}});
  state.Counter("tandem:placement_decisions_total", kDecisions, d.queued, {{"decision", "queued"}});
  state.Counter("tandem:placement_decisions_total", kDecisions, d.rejected, {{"decision", "rejected"}});
  state.Counter("tandem:placement_decisions_total", kDecisions, d.queue_full, {{"decision", "queue_full"}});
  state.Counter("tandem:placement_decisions_total", kDecisions, d.shed, {{"decision", "shed"}});
  state.Counter("tandem:placement_decisions_total", kDecisions, d.reservation_refused,
                {{"decision", "reservation_refused"}});
  state.Counter("tandem:placement_decisions_total", kDecisions, d.timed_out, {{"decision", "timed_out"}});
  for (const NodeView& n : load.nodes) {
    const prometheus::Labels node{{"node_id", n.id}, {"node_role", std::string(NodeRoleName(n.role))}};
    state.Gauge("tandem:node_up", "1 while the router can place on the node (connected and reporting)",
                n.healthy() ? 1 : 0, node);
    prometheus::Labels up = node, down = node;
    up["to"] = "up";
    down["to"] = "down";
    const char* kTransitions = "Times the router's connection to a node came up or went down";
    state.Counter("tandem:node_transitions_total", kTransitions, static_cast<double>(n.times_up), up);
    state.Counter("tandem:node_transitions_total", kTransitions, static_cast<double>(n.times_down), down);
  }
  for (auto& f : state.families()) families.push_back(std::move(f));
  return RenderMetrics(std::move(families));
}

}  // namespace tandem
