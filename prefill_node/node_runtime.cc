#include "prefill_node/node_runtime.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "common/logging.h"
#include "kv_transfer/ucx_transport.h"
#include "prefill_node/prefill_engine.h"

namespace tandem {

NodeRuntime::~NodeRuntime() {
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
  const ModelConfig& c = rt->weights->config;
  const DType dtype = rt->backend->kv_cache_dtype();
  const uint64_t per_block = 2ull * c.num_layers * c.num_kv_heads * options.block_size * c.head_dim * DTypeSize(dtype);
  const uint64_t want = static_cast<uint64_t>(options.kv_cache_gib * (1ull << 30));
  const uint64_t num_blocks = want / per_block;
  if (num_blocks == 0) {
    return InvalidArgumentError("--kv-cache-gib " + std::to_string(options.kv_cache_gib) +
                                " holds no block of " + std::to_string(per_block) + " bytes");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<UcxTransport> ucx, UcxTransport::Create());
  rt->transport = std::move(ucx);
  ASSIGN_OR_RETURN(RegisteredRegion region, rt->transport->AllocateMemory(num_blocks * per_block, MemoryKind::kHost));
  KvCacheOptions kv;
  kv.block_size = options.block_size;
  kv.num_blocks = static_cast<int32_t>(num_blocks);
  ASSIGN_OR_RETURN(rt->cache, KvCache::CreateOver(region.base, num_blocks * per_block, dtype, c, kv));
  ASSIGN_OR_RETURN(rt->transformer, Transformer::Create(*rt->backend, *rt->weights));
  rt->layout = LayoutOf(*rt->cache, c);
  ASSIGN_OR_RETURN(rt->endpoint, rt->transport->LocalEndpoint());
  GetLogger("node")->info("model {}: {} KV blocks of {} tokens ({:.1f} MiB, UCX-registered)", options.model_dir,
                          num_blocks, options.block_size, num_blocks * per_block / 1048576.0);
  return rt;
}

SamplingParams SamplingFromProto(const proto::SamplingParams& p) {
  SamplingParams s;
  s.temperature = p.temperature();
  s.top_k = p.top_k();
  s.top_p = p.top_p() == 0.0f ? 1.0f : p.top_p();
  s.min_p = p.min_p();
  s.repetition_penalty = p.repetition_penalty() == 0.0f ? 1.0f : p.repetition_penalty();
  s.presence_penalty = p.presence_penalty();
  s.frequency_penalty = p.frequency_penalty();
  if (p.has_seed()) s.seed = p.seed();
  s.max_tokens = static_cast<int32_t>(p.max_tokens());
  s.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  s.ignore_eos = p.ignore_eos();
  return s;
}

void SamplingToProto(const SamplingParams& s, proto::SamplingParams* p) {
  p->set_temperature(s.temperature);
  p->set_top_k(s.top_k);
  p->set_top_p(s.top_p);
  p->set_min_p(s.min_p);
  p->set_repetition_penalty(s.repetition_penalty);
  p->set_presence_penalty(s.presence_penalty);
  p->set_frequency_penalty(s.frequency_penalty);
  if (s.seed) p->set_seed(*s.seed);
  p->set_max_tokens(static_cast<uint32_t>(s.max_tokens));
  for (int32_t t : s.stop_token_ids) p->add_stop_token_ids(t);
  p->set_ignore_eos(s.ignore_eos);
}

proto::FinishReason FinishReasonToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return proto::FINISH_REASON_UNSPECIFIED;
    case FinishReason::kStop: return proto::FINISH_REASON_STOP;
    case FinishReason::kLength: return proto::FINISH_REASON_LENGTH;
    case FinishReason::kAbort: return proto::FINISH_REASON_ABORT;
    case FinishReason::kError: return proto::FINISH_REASON_ERROR;
  }
  return proto::FINISH_REASON_UNSPECIFIED;
}

void BroadcastLoadReport(proto::Envelope& env, int64_t busy_us, int64_t interval_us, rpc::RpcServer& server) {
  proto::LoadReport* r = env.mutable_load_report();
  r->set_busy_fraction(interval_us > 0 ? std::min(1.0f, static_cast<float>(busy_us) / interval_us) : 0.0f);
  r->set_report_unix_us(std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
  for (const auto& peer : server.ReadyPeers()) {
    if (peer->peer_hello().role() == proto::ROLE_ROUTER) (void)peer->Send(env);
  }
}

}  // namespace tandem
