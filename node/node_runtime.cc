#include "node/node_runtime.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>

#include "common/logging.h"
#include "engine/warm_up.h"
#include "kv_transfer/ucx_transport.h"

namespace tandem {

KvLayout LayoutOf(const KvCache& cache, const ModelConfig& config) {
  KvLayout l;
  l.num_layers = cache.num_layers();
  l.num_blocks = cache.num_blocks();
  l.num_kv_heads = static_cast<int>(config.num_kv_heads);
  l.block_size = cache.block_size();
  l.head_dim = static_cast<int>(config.head_dim);
  l.dtype = cache.dtype();
  return l;
}

NodeRuntime::~NodeRuntime() {
  metrics_endpoint.reset();  // no scrape reads the metrics while they go
  transformer.reset();
  cache.reset();
  transport.reset();
}

Result<std::unique_ptr<NodeRuntime>> LoadNodeRuntime(const NodeRuntimeOptions& options) {
  if (!(options.kv_cache_gib > 0) || !std::isfinite(options.kv_cache_gib)) {
    return InvalidArgumentError("--kv-cache-gib must be positive, got " + std::to_string(options.kv_cache_gib));
  }
  auto rt = std::make_unique<NodeRuntime>();
  BackendOptions bo;
  bo.num_threads = options.threads;
  ASSIGN_OR_RETURN(rt->backend, CreateBackend("cpu", bo));
  ASSIGN_OR_RETURN(rt->weights, LoadModelWeights(options.model_dir, *rt->backend));
  if (!options.latency_profile.empty()) {
    ASSIGN_OR_RETURN(LatencyProfile profile, LoadLatencyProfile(options.latency_profile));
    if (profile.num_layers != rt->weights->config.num_layers) {
      return InvalidArgumentError("--latency-profile " + options.latency_profile + " was measured for a model of " +
                                  std::to_string(profile.num_layers) + " layers, not this one's " +
                                  std::to_string(rt->weights->config.num_layers));
    }
    rt->profile = std::move(profile);
  }
  const ModelConfig& c = rt->weights->config;
  const DType dtype = rt->backend->kv_cache_dtype();
  const uint64_t per_block = 2ull * c.num_layers * c.num_kv_heads * options.block_size * c.head_dim * DTypeSize(dtype);
  const uint64_t want = static_cast<uint64_t>(options.kv_cache_gib * (1ull << 30));
  const uint64_t num_blocks = want / per_block;
  if (num_blocks == 0) {
    return InvalidArgumentError("--kv-cache-gib " + std::to_string(options.kv_cache_gib) + " holds no block of " +
                                std::to_string(per_block) + " bytes");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<UcxTransport> ucx, UcxTransport::Create());
  rt->transport = std::move(ucx);
  ASSIGN_OR_RETURN(RegisteredRegion region, rt->transport->AllocateMemory(num_blocks * per_block, MemoryKind::kHost));
  KvCacheOptions kv;
  kv.block_size = options.block_size;
  kv.num_blocks = static_cast<int32_t>(num_blocks);
  ASSIGN_OR_RETURN(rt->cache, KvCache::CreateOver(region.base, num_blocks * per_block, dtype, c, kv));
  ASSIGN_OR_RETURN(rt->transformer, Transformer::Create(*rt->backend, *rt->weights));
  RETURN_IF_ERROR(WarmUp(*rt->transformer, *rt->cache));
  rt->layout = LayoutOf(*rt->cache, c);
  ASSIGN_OR_RETURN(rt->endpoint, rt->transport->LocalEndpoint());
  GetLogger("node")->info("model {}: {} KV blocks of {} tokens ({:.1f} MiB, UCX-registered)", options.model_dir,
                          num_blocks, options.block_size, num_blocks * per_block / 1048576.0);
  return rt;
}

Status NodeRuntime::StartMetrics(const NodeRuntimeOptions& options, std::string_view role, std::string_view node_id,
                                 const std::string& host) {
  // The router serves the model under the directory's name unless told otherwise.
  std::string name = std::filesystem::path(options.model_dir).lexically_normal().filename().string();
  if (name.empty())
    name = std::filesystem::path(options.model_dir).lexically_normal().parent_path().filename().string();
  metrics = std::make_unique<NodeMetrics>(name, role, node_id);
  if (options.metrics_port < 0) return Status::Ok();
  ASSIGN_OR_RETURN(metrics_endpoint, MetricsEndpoint::Start(host, options.metrics_port, metrics->registry()));
  return Status::Ok();
}

void NodeRuntime::ObserveStep(const StepShape& shape, int64_t measured_us) {
  if (metrics) metrics->ObserveStep(shape, measured_us);
  if (!profile) return;
  // A node's step is mostly one phase: a prefill node's prompt chunks, or a decode node's batch
  // (with the recompute of a preempted request now and then: both parts count).
  double predicted = 0;
  if (shape.prefill.tokens > 0) predicted += profile->PrefillUs(shape.prefill);
  if (shape.decode_batch > 0) predicted += profile->DecodeStepUs(shape.decode_batch, shape.decode_context);
  correction.Observe(predicted, static_cast<double>(measured_us));
}

void LoadReporter::AddCacheEvents(BlockPool& pool, proto::LoadReport* r) {
  if (!pool.prefix_caching()) return;
  r->set_cache_block_size(static_cast<uint32_t>(pool.cache_block_size()));
  BlockPool::CacheEvents events = pool.TakeCacheEvents();
  if (cache_reports_++ % kCacheSnapshotEvery == 0) {
    r->set_cache_snapshot(true);
    AppendBlockHashes(pool.CachedHashes(), r->mutable_cache_stored());
    return;
  }
  AppendBlockHashes(events.stored, r->mutable_cache_stored());
  AppendBlockHashes(events.removed, r->mutable_cache_removed());
}

void LoadReporter::Broadcast(proto::Envelope& env, rpc::RpcServer& server) {
  const int64_t now = SteadyClock::Read();
  const int64_t interval_us = now - last_us_;
  proto::LoadReport* r = env.mutable_load_report();
  r->set_busy_fraction(interval_us > 0 ? std::min(1.0f, static_cast<float>(busy_us_) / interval_us) : 0.0f);
  r->set_report_unix_us(UnixNowMicros());
  for (const auto& peer : server.ReadyPeers()) {
    if (peer->peer_hello().role() == proto::ROLE_ROUTER) (void)peer->Send(env);
  }
  last_us_ = now;
  busy_us_ = 0;
}

}  // namespace tandem
