// What every disaggregated node loads before serving: backend, weights, the KV transport
// (UCX), the KV pool allocated THROUGH the transport (so same-host peers write it zero-copy
// through shared memory) with a KvCache laid over it, and the Transformer. Shared by the
// prefill and decode services; also the proto <-> internal conversions of the node edge.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/metrics_endpoint.h"
#include "common/rpc/rpc_options.h"
#include "common/rpc/rpc_server.h"
#include "common/status.h"
#include "engine/scheduler.h"
#include "kernels/backend.h"
#include "kv_transfer/kv_layout.h"
#include "kv_transfer/transport.h"
#include "model/kv_cache.h"
#include "model/model_weights.h"
#include "model/transformer.h"
#include "node/node_metrics.h"
#include "proto/tandem.pb.h"
#include "proto/wire_model.h"  // the services convert with it
#include "slo/latency_model.h"

namespace tandem {

struct NodeRuntimeOptions {
  std::string model_dir;
  int threads = 0;            // CPU backend threads; 0 = all cores
  double kv_cache_gib = 1.0;  // KV pool size
  int32_t block_size = 16;
  std::string latency_profile;      // --latency-profile: "" for none
  int metrics_port = -1;            // --metrics-port: GET /metrics there (0: ephemeral; -1: not served)
  std::string cluster_secret_file;  // --cluster-secret-file: peers must prove the secret ("": none)
  rpc::TlsFiles tls;                // --tls-cert, --tls-key, --tls-ca: TLS control plane (none: plain TCP)
};

// Declaration order is destruction order reversed: the cache (a view) goes before the
// transport that owns its memory, the weights before the backend.
struct NodeRuntime {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ModelWeights> weights;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<Transformer> transformer;
  KvLayout layout;
  PeerEndpoint endpoint;  // what peers need to write our pool
  // The latency model of this node (from --latency-profile) and its online correction: each step
  // the node runs is compared with the model's prediction; the factor goes out with the load.
  std::optional<LatencyProfile> profile;
  LatencyCorrection correction;
  // Observes a step (engine thread); a no-op without a profile.
  void ObserveStep(const StepShape& shape, int64_t measured_us);
  float latency_factor() const { return profile ? static_cast<float>(correction.factor()) : 0.0f; }
  // What the node exports (always kept), and where it serves them (null without --metrics-port).
  std::unique_ptr<NodeMetrics> metrics;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint;
  // Makes `metrics` and, with options.metrics_port >= 0, serves them on host:port.
  Status StartMetrics(const NodeRuntimeOptions& options, std::string_view role, std::string_view node_id,
                      const std::string& host);
  uint16_t metrics_port() const { return metrics_endpoint ? metrics_endpoint->port() : 0; }

  ~NodeRuntime();
};

// The layout of `cache` (the KvCache and KvLayout describe the same bytes).
KvLayout LayoutOf(const KvCache& cache, const ModelConfig& config);

// CPU backend only for now (a CUDA pool would be registered as MemoryKind::kCuda instead).
Result<std::unique_ptr<NodeRuntime>> LoadNodeRuntime(const NodeRuntimeOptions& options);

// The timing of a node's LoadReports (engine thread): compute time accumulated since the last
// report, and when the next one is due.
class LoadReporter {
 public:
  explicit LoadReporter(std::chrono::milliseconds interval)
      : interval_us_(interval.count() * 1000), last_us_(SteadyClock::Read()) {}
  void AddBusy(int64_t us) { busy_us_ += us; }
  bool Due() const { return SteadyClock::Read() - last_us_ >= interval_us_; }
  // Completes env's LoadReport (busy fraction since the last report, wall-clock stamp), sends it
  // to every connected router and starts the next interval.
  void Broadcast(proto::Envelope& env, rpc::RpcServer& server);
  // The pool's prefix-cache changes since the last report (the routers' index of which node
  // holds which prefix), or, every kCacheSnapshotEvery reports and the first, the whole cache: a
  // router that connected since, or reconnected, gets an exact view within a few seconds.
  void AddCacheEvents(BlockPool& pool, proto::LoadReport* report);

 private:
  static constexpr int kCacheSnapshotEvery = 50;
  const int64_t interval_us_;
  int64_t last_us_;
  int64_t busy_us_ = 0;
  int64_t cache_reports_ = 0;
};

}  // namespace tandem
