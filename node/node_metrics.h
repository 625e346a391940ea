// A node's Prometheus metrics (prefill or decode), served on its own port (`--metrics-port`,
// common/metrics.h MetricsEndpoint): what its engine runs and holds, and the KV transfers it
// sends or receives. Every series carries model_name, role ("prefill", "decode") and node_id.
//
// The node's engine thread updates them (the service's Iterate and its report tick); the
// endpoint's thread reads them through the registry (prometheus-cpp is thread-safe).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/metrics.h"
#include "engine/scheduler.h"

namespace tandem {

class NodeMetrics {
 public:
  NodeMetrics(std::string_view model_name, std::string_view role, std::string_view node_id);

  // A step ran: its prompt tokens (prompts, chunks, recomputes) and decode rows, and its time.
  void ObserveStep(const StepShape& shape, int64_t step_us);
  // First tokens sampled by a prefill node (a decode node's tokens are its decode rows).
  void AddGeneratedTokens(int64_t n);
  // A request's KV transfer finished (sent by a prefill node, received by a decode node);
  // `exposed_us`: the part after the prefill ended (-1: unknown, not observed).
  void ObserveTransfer(int64_t bytes, int64_t transfer_us, int64_t exposed_us = -1);
  // The engine's state, at each report tick. `preemptions`: the node's running total.
  struct State {
    int32_t running = 0;
    int32_t waiting = 0;
    int32_t used_blocks = 0;
    int32_t total_blocks = 0;
    int32_t reserved_unfilled_blocks = -1;  // decode nodes: blocks reserved whose KV has not landed
    int64_t preemptions = -1;               // -1: not a decoding role
  };
  void SetState(const State& s);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  const prometheus::Labels labels_;
  const std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge& running_;
  prometheus::Gauge& waiting_;
  prometheus::Gauge& kv_usage_;
  prometheus::Gauge& reserved_unfilled_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& generation_tokens_;
  prometheus::Counter& preemptions_;
  prometheus::Counter& transfers_;
  prometheus::Histogram& step_;
  prometheus::Histogram& transfer_;
  prometheus::Histogram& transfer_exposed_;
  prometheus::Histogram& transfer_bytes_;
  int64_t preemptions_seen_ = 0;
  bool decodes_;
};

}  // namespace tandem
