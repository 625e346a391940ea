// Prometheus metrics (text exposition format 0.0.4) through prometheus-cpp, the Debian-packaged
// client library: what every process's metrics share. Event metrics (counters, histograms) live
// in a prometheus::Registry and are updated where the event happens; state metrics (queue
// lengths, node states) are read at scrape time and built with MetricSet, so a scrape is always
// current and nothing polls. Metric names follow vLLM's families with the prefix "tandem:".
//
// Threading: prometheus-cpp's registry and metrics are thread-safe; MetricSet is a value.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/labels.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tandem {

// Bucket bounds in seconds for request latencies (TTFT, e2e, queue time: 1 ms to 10 min, as
// vLLM's), for per-token and per-step latencies (0.5 ms to 10 s), and in bytes for KV transfers
// (4 KiB to 16 GiB, powers of 4).
const std::vector<double>& RequestLatencyBuckets();
const std::vector<double>& TokenLatencyBuckets();
const std::vector<double>& ByteBuckets();

// Metric families built at scrape time from a snapshot of state.
class MetricSet {
 public:
  // `labels` are merged with `common` (the process's constant labels).
  explicit MetricSet(prometheus::Labels common = {}) : common_(std::move(common)) {}
  void Gauge(std::string_view name, std::string_view help, double value, const prometheus::Labels& labels = {});
  void Counter(std::string_view name, std::string_view help, double value, const prometheus::Labels& labels = {});
  std::vector<prometheus::MetricFamily>& families() { return families_; }

 private:
  prometheus::MetricFamily& FamilyFor(std::string_view name, std::string_view help, prometheus::MetricType type);
  prometheus::Labels common_;
  std::vector<prometheus::MetricFamily> families_;
};

// The text exposition of `families` (sorted by name, so output is stable).
std::string RenderMetrics(std::vector<prometheus::MetricFamily> families);

// A process's constant labels: model_name, role and (nodes) node_id.
prometheus::Labels ProcessLabels(std::string_view model_name, std::string_view role, std::string_view node_id = "");

}  // namespace tandem
