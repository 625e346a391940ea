#include "node/latency_profiler.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "common/logging.h"
#include "kv_transfer/kv_layout.h"
#include "kv_transfer/ucx_transport.h"
#include "model/batch_plan.h"
#include "model/kv_blocks.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "slo/least_squares.h"

namespace tandem {
namespace {

using Clock = std::chrono::steady_clock;

double MicrosSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int32_t MaxContext(const ModelConfig& config, const ProfilerOptions& o) {
  return static_cast<int32_t>(std::min<int64_t>(o.max_context, config.max_position_embeddings));
}

uint64_t KvBytesPerToken(const ModelConfig& c, DType dtype) {
  return 2ull * c.num_layers * c.num_kv_heads * c.head_dim * DTypeSize(dtype);
}

// Blocks a decode shape holds.
int64_t DecodeBlocks(const DecodeShape& shape, int32_t block_size) {
  int64_t blocks = 0;
  for (int32_t ctx : shape) blocks += BlocksForTokens(ctx, block_size);
  return blocks;
}

}  // namespace

ProfileShapes GridShapes(const ModelConfig& config, const ProfilerOptions& o) {
  ProfileShapes s;
  const int32_t budget = o.max_num_batched_tokens;
  const int32_t max_ctx = MaxContext(config, o);
  // Sizes at powers of two and halfway between, so no regime boundary hides between samples.
  std::vector<int32_t> sizes;
  for (int32_t n = 8; n <= 1 << 20; n *= 2) {
    sizes.push_back(n);
    sizes.push_back(n + n / 2);
  }
  for (int32_t n : sizes) {
    if (n <= std::min(budget, max_ctx)) s.prefill.push_back({{0, n}});
  }
  for (int32_t n : {32, 128, 512}) {
    for (int32_t seqs : {2, 4, 8}) {
      if (n * seqs <= budget && n <= max_ctx) s.prefill.push_back(PrefillShape(static_cast<size_t>(seqs), {0, n}));
    }
  }
  // Later chunks of long prompts: a chunk behind context already in the cache.
  for (int32_t start : {256, 512, 1024, 1536}) {
    for (int32_t n : {64, 256, 512}) {
      if (start + n <= max_ctx && n <= budget) s.prefill.push_back({{start, n}});
    }
  }
  // Decode batches at every size class, each sequence's context spread around the nominal
  // length (real batches are never uniform).
  std::vector<int32_t> batches;
  for (int32_t b = 1; b <= o.max_num_seqs; b *= 2) {
    batches.push_back(b);
    if (b >= 2 && b + b / 2 <= o.max_num_seqs) batches.push_back(b + b / 2);
  }
  for (int32_t b : batches) {
    for (int32_t ctx : {32, 128, 512, 1024, 2048}) {
      if (ctx > max_ctx) continue;
      DecodeShape shape(static_cast<size_t>(b));
      for (size_t i = 0; i < shape.size(); ++i) {
        shape[i] = std::clamp<int32_t>(ctx * (2 + static_cast<int32_t>(i % 5)) / 4, 2, max_ctx);  // 0.5x .. 1.5x
      }
      s.decode.push_back(shape);
    }
  }
  if (o.measure_transfer) {
    for (int32_t n : sizes) {
      if (n >= 16 && n <= max_ctx) s.transfer.push_back(n);
    }
  }
  return s;
}

ProfileShapes HeldOutShapes(const ModelConfig& config, const ProfilerOptions& o) {
  ProfileShapes s;
  std::mt19937_64 rng(o.seed);
  auto uniform = [&](int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, std::max(lo, hi))(rng);
  };
  const int32_t budget = o.max_num_batched_tokens;
  const int32_t max_ctx = MaxContext(config, o);
  for (int32_t i = 0; i < o.held_out; ++i) {
    PrefillShape shape;
    const int32_t seqs = uniform(1, 4);
    int32_t left = budget;
    for (int32_t q = 0; q < seqs && left >= 8; ++q) {
      const int32_t n = uniform(8, std::min(left / (seqs - q), max_ctx));
      // One chunk in four continues a prompt whose start is already cached.
      const int32_t start = (uniform(0, 3) == 0 && max_ctx - n > 16) ? uniform(16, max_ctx - n) : 0;
      shape.push_back({start, n});
      left -= n;
    }
    s.prefill.push_back(shape);
  }
  for (int32_t i = 0; i < o.held_out; ++i) {
    DecodeShape shape(static_cast<size_t>(uniform(1, o.max_num_seqs)));
    const int32_t typical = uniform(16, max_ctx);  // contexts spread around a typical length
    for (int32_t& ctx : shape) ctx = std::clamp(uniform(typical / 2, typical * 3 / 2), 2, max_ctx);
    s.decode.push_back(shape);
  }
  if (o.measure_transfer) {
    for (int32_t i = 0; i < std::max(1, o.held_out / 3); ++i) s.transfer.push_back(uniform(16, max_ctx));
  }
  return s;
}

struct LatencyProfiler::State {
  Backend& backend;
  const ModelWeights& weights;
  ProfilerOptions options;
  std::unique_ptr<Transformer> transformer;
  std::unique_ptr<KvCache> cache;
  std::vector<float> logits;
  std::mt19937 token_rng{7};
  int32_t largest_step = 0;

  void Progress(const std::string& line) const {
    if (options.progress) options.progress(line);
  }
  std::vector<int32_t> RandomTokens(int32_t n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int32_t& x : t) x = static_cast<int32_t>(token_rng() % static_cast<uint32_t>(weights.config.vocab_size));
    return t;
  }

  // Runs `chunks` (each with its start and token count) once per repeat; the median time.
  Result<double> TimeForward(const std::vector<std::pair<int32_t, int32_t>>& shape) {
    const int32_t bs = cache->block_size();
    std::vector<std::vector<int32_t>> tokens, tables;
    Status status = Status::Ok();
    for (const auto& [start, n] : shape) {
      tokens.push_back(RandomTokens(n));
      auto blocks = cache->pool().Allocate(BlocksForTokens(start + n, bs));
      if (!blocks.ok()) {
        status = blocks.status().WithContext("profile shape needs more KV blocks than the profiler holds");
        break;
      }
      tables.push_back(std::move(*blocks));
    }
    std::vector<double> times;
    if (status.ok()) {
      std::vector<SequenceChunk> chunks(shape.size());
      for (size_t i = 0; i < shape.size(); ++i) {
        chunks[i].tokens = tokens[i];
        chunks[i].start_position = shape[i].first;
        chunks[i].block_table = tables[i];
      }
      auto plan = BuildBatchPlan(chunks, bs);
      status = plan.status();
      // A step larger than any before grows the transformer's workspace: run it once untimed.
      const bool warm_up = status.ok() && plan->num_tokens() > largest_step;
      if (status.ok()) largest_step = std::max(largest_step, plan->num_tokens());
      for (int32_t r = warm_up ? 0 : 1; status.ok() && r <= options.repeats; ++r) {
        const Clock::time_point t0 = Clock::now();
        status = transformer->Forward(*plan, *cache, &logits);
        if (r > 0) times.push_back(MicrosSince(t0));
      }
    }
    for (const auto& t : tables) (void)cache->pool().Free(t);
    if (!status.ok()) return status;
    return Median(times);
  }
};

LatencyProfiler::LatencyProfiler(std::unique_ptr<State> state) : state_(std::move(state)) {}
LatencyProfiler::~LatencyProfiler() = default;

Result<std::unique_ptr<LatencyProfiler>> LatencyProfiler::Create(Backend& backend, const ModelWeights& weights,
                                                                 ProfilerOptions options) {
  if (options.max_num_batched_tokens < 8 || options.max_num_seqs < 1 || options.repeats < 1 ||
      options.max_context < 8) {
    return InvalidArgumentError("profile: token budget and context must be >= 8, sequences and repeats >= 1");
  }
  auto state = std::make_unique<State>(State{backend, weights, std::move(options), nullptr, nullptr, {}, {}});
  const ModelConfig& config = weights.config;
  const ProfilerOptions& o = state->options;
  constexpr int32_t kBlockSize = 16;
  const uint64_t block_bytes = KvBytesPerToken(config, backend.kv_cache_dtype()) * kBlockSize;
  int64_t need = 0;
  for (const ProfileShapes& shapes : {GridShapes(config, o), HeldOutShapes(config, o)}) {
    for (const PrefillShape& p : shapes.prefill) {
      int64_t blocks = 0;
      for (const auto& [start, n] : p) blocks += BlocksForTokens(start + n, kBlockSize);
      need = std::max(need, blocks);
    }
    for (const DecodeShape& d : shapes.decode) {
      const int64_t blocks = DecodeBlocks(d, kBlockSize);
      if (static_cast<uint64_t>(blocks) * block_bytes <= o.kv_budget_bytes) need = std::max(need, blocks);
    }
  }
  KvCacheOptions kv;
  kv.block_size = kBlockSize;
  kv.num_blocks = static_cast<int32_t>(need);
  ASSIGN_OR_RETURN(state->cache, KvCache::Create(backend, config, kv));
  ASSIGN_OR_RETURN(state->transformer, Transformer::Create(backend, weights));
  return std::unique_ptr<LatencyProfiler>(new LatencyProfiler(std::move(state)));
}

namespace {

// Moves the KV of `tokens` prompt tokens sender -> receiver the way the prefill node does: one
// put per layer, then a flush; the time until the flush completes.
Result<double> TimeTransfer(UcxTransport& sender, UcxTransport& receiver, const KvLayout& layout, int32_t tokens,
                            int32_t repeats, uint64_t* bytes) {
  const int32_t blocks = BlocksForTokens(tokens, layout.block_size);
  std::vector<int> ids(static_cast<size_t>(blocks));
  for (int i = 0; i < blocks; ++i) ids[static_cast<size_t>(i)] = i;
  std::vector<std::vector<TransferDescriptor>> per_layer;
  *bytes = 0;
  for (int layer = 0; layer < layout.num_layers; ++layer) {
    ASSIGN_OR_RETURN(std::vector<TransferDescriptor> d, BuildDescriptors(layout, layer, ids, ids));
    *bytes += DescriptorBytes(d);
    per_layer.push_back(std::move(d));
  }
  std::vector<double> times;
  for (int32_t r = 0; r <= repeats; ++r) {
    std::vector<TransferId> ids_posted;
    const Clock::time_point t0 = Clock::now();
    for (const auto& d : per_layer) {
      ASSIGN_OR_RETURN(TransferId id, sender.PostPut(1, d));
      ids_posted.push_back(id);
      receiver.Progress();
    }
    ASSIGN_OR_RETURN(TransferId flush, sender.PostFlush(1));
    ids_posted.push_back(flush);
    const Clock::time_point deadline = t0 + std::chrono::seconds(30);
    bool done = false;
    while (!done) {
      if (Clock::now() > deadline) return DeadlineExceededError("profile: a KV transfer did not complete in 30 s");
      receiver.Progress();
      ASSIGN_OR_RETURN(done, sender.Poll(flush));
    }
    const double us = MicrosSince(t0);
    for (TransferId id : ids_posted) {
      // Puts before a completed flush are complete too; poll once so the transport may forget them.
      (void)sender.Poll(id);
      sender.Release(id);
    }
    if (r > 0) times.push_back(us);
  }
  return Median(times);
}

}  // namespace

Result<ProfileSamples> LatencyProfiler::Measure(const ProfileShapes& shapes) {
  ASSIGN_OR_RETURN(auto both, MeasureInterleaved(shapes, ProfileShapes{}));
  return std::move(both.first);
}

Result<std::pair<ProfileSamples, ProfileSamples>> LatencyProfiler::MeasureInterleaved(const ProfileShapes& a,
                                                                                      const ProfileShapes& b) {
  State& s = *state_;
  std::pair<ProfileSamples, ProfileSamples> out;
  // Alternates the two lists of one phase: (list, index) pairs.
  auto alternate = [](size_t na, size_t nb) {
    std::vector<std::pair<int, size_t>> order;
    for (size_t i = 0; i < std::max(na, nb); ++i) {
      if (i < na) order.push_back({0, i});
      if (i < nb) order.push_back({1, i});
    }
    return order;
  };
  auto sink = [&](int which) -> ProfileSamples& { return which == 0 ? out.first : out.second; };

  s.Progress("prefill: " + std::to_string(a.prefill.size() + b.prefill.size()) + " shapes");
  for (const auto& [which, i] : alternate(a.prefill.size(), b.prefill.size())) {
    const PrefillShape& shape = (which == 0 ? a : b).prefill[i];
    ASSIGN_OR_RETURN(double us, s.TimeForward(shape));
    PrefillSample sample;
    for (const auto& [start, n] : shape) sample.work.AddChunk(start, n);
    sample.us = us;
    sink(which).prefill.push_back(sample);
  }
  s.Progress("decode: " + std::to_string(a.decode.size() + b.decode.size()) + " shapes");
  const int32_t bs = s.cache->block_size();
  for (const auto& [which, i] : alternate(a.decode.size(), b.decode.size())) {
    const DecodeShape& shape = (which == 0 ? a : b).decode[i];
    if (DecodeBlocks(shape, bs) > s.cache->num_blocks()) {
      GetLogger("profile")->info("decode batch {} skipped: its context exceeds the KV budget", shape.size());
      continue;
    }
    std::vector<std::pair<int32_t, int32_t>> chunks;
    int64_t context = 0;
    for (int32_t ctx : shape) {
      chunks.push_back({ctx - 1, 1});
      context += ctx;
    }
    ASSIGN_OR_RETURN(double us, s.TimeForward(chunks));
    sink(which).decode.push_back({static_cast<int32_t>(shape.size()), context, us});
  }
  if (a.transfer.empty() && b.transfer.empty()) return out;
  s.Progress("transfer: " + std::to_string(a.transfer.size() + b.transfer.size()) + " sizes over UCX");
  const ModelConfig& c = s.weights.config;
  int32_t largest = 0;
  for (const ProfileShapes* shapes : {&a, &b}) {
    for (int32_t t : shapes->transfer) largest = std::max(largest, t);
  }
  const KvLayout layout{static_cast<int>(c.num_layers),   BlocksForTokens(largest, bs),
                        static_cast<int>(c.num_kv_heads), bs,
                        static_cast<int>(c.head_dim),     s.backend.kv_cache_dtype()};
  // The sender is destroyed first, while its target still answers the close.
  std::unique_ptr<UcxTransport> receiver, sender;
  auto r = UcxTransport::Create();
  if (!r.ok()) return r.status().WithContext("profile transfer (skip it with --no-transfer)");
  receiver = std::move(*r);
  ASSIGN_OR_RETURN(sender, UcxTransport::Create());
  ASSIGN_OR_RETURN(RegisteredRegion src, sender->AllocateMemory(layout.total_bytes(), MemoryKind::kHost));
  ASSIGN_OR_RETURN(RegisteredRegion dst, receiver->AllocateMemory(layout.total_bytes(), MemoryKind::kHost));
  (void)src;
  (void)dst;
  ASSIGN_OR_RETURN(PeerEndpoint endpoint, receiver->LocalEndpoint());
  RETURN_IF_ERROR(sender->Connect(1, endpoint));
  for (const auto& [which, i] : alternate(a.transfer.size(), b.transfer.size())) {
    const int32_t tokens = (which == 0 ? a : b).transfer[i];
    uint64_t bytes = 0;
    // A transfer is cheap next to a step, and copies are noisier: at least five runs each.
    ASSIGN_OR_RETURN(double us,
                     TimeTransfer(*sender, *receiver, layout, tokens, std::max(5, s.options.repeats), &bytes));
    sink(which).transfer.push_back({layout.num_layers, bytes, us});
  }
  (void)sender->Disconnect(1);
  sender.reset();
  return out;
}

Result<LatencyProfile> FitProfile(const ModelConfig& config, DType kv_dtype, const ProfileSamples& samples) {
  LatencyProfile p;
  p.num_layers = static_cast<int32_t>(config.num_layers);
  p.kv_bytes_per_token = static_cast<int64_t>(KvBytesPerToken(config, kv_dtype));
  ASSIGN_OR_RETURN(p.prefill, FitPrefill(samples.prefill));
  ASSIGN_OR_RETURN(p.decode, FitDecode(samples.decode));
  if (!samples.transfer.empty()) {
    ASSIGN_OR_RETURN(p.transfer, FitTransfer(samples.transfer));
  }
  return p;
}

ProfileValidation ValidateProfile(const LatencyProfile& profile, const ProfileSamples& samples) {
  ProfileValidation v;
  auto mape = [&](const auto& list, auto predict) {
    if (list.empty()) return -1.0;
    std::vector<double> predicted, measured;
    for (const auto& s : list) {
      predicted.push_back(predict(s));
      measured.push_back(s.us);
    }
    v.samples += static_cast<int32_t>(list.size());
    return MeanAbsPercentError(predicted, measured);
  };
  v.prefill_mape = mape(samples.prefill, [&](const PrefillSample& s) { return profile.PrefillUs(s.work); });
  v.decode_mape =
      mape(samples.decode, [&](const DecodeSample& s) { return profile.DecodeStepUs(s.batch, s.context_tokens); });
  v.transfer_mape = mape(samples.transfer, [&](const TransferSample& s) { return profile.TransferBytesUs(s.bytes); });
  return v;
}

}  // namespace tandem
