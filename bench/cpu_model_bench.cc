// CPU whole-model throughput: prefill tokens/s for one long prompt, decode tokens/s at several
// batch sizes, and decode's effective bandwidth (weights + KV bytes read per step / step time)
// as a fraction of the machine's read bandwidth measured in the same run.
//
//   build/bin/cpu_model_bench [--model DIR] [--prompt-len 512] [--batches 1,8,32] [--json F]
// Without --model it writes the `small` preset (seed 0, --weights dtype) to build/models/small-<dtype>.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench/memory_bandwidth.h"
#include "common/logging.h"
#include "kernels/backend.h"
#include "model/batch_plan.h"
#include "model/kv_cache.h"
#include "model/make_model.h"
#include "model/model_weights.h"
#include "model/transformer.h"

namespace tandem {
namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

size_t WeightBytes(const TensorView& v) { return v.data ? v.bytes() : 0; }

// Bytes of weights a decode step streams: every matrix and norm once; of the embedding table
// only the looked-up rows (ignored here), and the lm_head in full.
size_t DecodeWeightBytes(const ModelWeights& w) {
  size_t total = WeightBytes(w.final_norm.view) + WeightBytes(w.lm_head.view);
  for (const LayerWeights& l : w.layers) {
    for (const DeviceWeight* d : {&l.input_norm, &l.q_proj, &l.k_proj, &l.v_proj, &l.q_bias, &l.k_bias,
                                  &l.v_bias, &l.o_proj, &l.post_attn_norm, &l.gate_proj, &l.up_proj,
                                  &l.down_proj}) {
      total += WeightBytes(d->view);
    }
  }
  return total;
}

struct Run {
  int batch = 0;
  int context = 0;
  double step_ms = 0;
  double tokens_per_s = 0;
  double gbs = 0;
  double fraction = 0;
};

int Main(int argc, char** argv) {
  CLI::App app{"CPU whole-model prefill/decode benchmark"};
  std::string model_dir, json_path, weights_dtype = "bf16";
  int prompt_len = 512, context = 128, steps = 16, threads = 0;
  std::vector<int> batches = {1, 8, 32};
  app.add_option("--model", model_dir, "Model directory (default: small preset)");
  app.add_option("--weights", weights_dtype, "Without --model: small preset weight dtype (bf16, f16, f32)")
      ->capture_default_str();
  app.add_option("--prompt-len", prompt_len)->capture_default_str();
  app.add_option("--context", context, "Context length of each decoding sequence")->capture_default_str();
  app.add_option("--steps", steps, "Timed decode steps per batch size")->capture_default_str();
  app.add_option("--batches", batches)->delimiter(',');
  app.add_option("--threads", threads, "0: all cores")->capture_default_str();
  app.add_option("--json", json_path, "Also write results as JSON");
  CLI11_PARSE(app, argc, argv);

  if (model_dir.empty()) {
    model_dir = std::string(TANDEM_BENCH_BINARY_DIR) + "/models/small-" + weights_dtype;
    if (!std::filesystem::exists(model_dir + "/config.json")) {
      MakeModelOptions mo;
      mo.preset = "small";
      mo.out_dir = model_dir;
      mo.dtype = weights_dtype;
      if (Status s = MakeModel(mo); !s.ok()) {
        std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
        return 1;
      }
    }
  }
  const double bw = bench::MeasureReadBandwidth(size_t{1} << 30, threads).best_gbs;

  BackendOptions bo;
  bo.num_threads = threads;
  auto backend = CreateBackend("cpu", bo);
  if (!backend.ok()) return std::fprintf(stderr, "error: %s\n", backend.status().ToString().c_str()), 1;
  auto weights = LoadModelWeights(model_dir, **backend);
  if (!weights.ok()) return std::fprintf(stderr, "error: %s\n", weights.status().ToString().c_str()), 1;
  const ModelConfig& cfg = (*weights)->config;
  auto transformer = Transformer::Create(**backend, **weights);
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  KvCacheOptions kv;
  kv.num_blocks = std::max(BlocksForTokens(prompt_len, 16), max_batch * BlocksForTokens(context + steps + 1, 16));
  auto cache = KvCache::Create(**backend, cfg, kv);
  if (!transformer.ok() || !cache.ok()) return std::fprintf(stderr, "error: setup failed\n"), 1;
  Transformer& tf = **transformer;
  KvCache& kvc = **cache;

  std::mt19937 rng(0);
  auto random_tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % cfg.vocab_size);
    return t;
  };
  std::vector<float> logits;
  auto forward = [&](std::vector<SequenceChunk>& chunks) {
    auto plan = BuildBatchPlan(chunks, kvc.block_size());
    if (!plan.ok()) return plan.status();
    return tf.Forward(*plan, kvc, &logits);
  };

  // --- validate: decoding the last prompt token after a prefill equals the full forward ---
  {
    std::vector<int32_t> p = random_tokens(24);
    auto blocks = kvc.pool().Allocate(2);
    std::vector<SequenceChunk> c(1);
    c[0].tokens = p;
    c[0].block_table = *blocks;
    if (!forward(c).ok()) return std::fprintf(stderr, "error: forward failed\n"), 1;
    std::vector<float> full = logits;
    c[0].tokens = std::span<const int32_t>(p).first(23);
    (void)forward(c).ok();
    c[0].tokens = std::span<const int32_t>(p).subspan(23, 1);
    c[0].start_position = 23;
    (void)forward(c).ok();
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < full.size(); ++i) {
      max_diff = std::max(max_diff, double(std::abs(full[i] - logits[i])));
      max_ref = std::max(max_ref, double(std::abs(full[i])));
      if (!std::isfinite(logits[i])) return std::fprintf(stderr, "error: non-finite logits\n"), 1;
    }
    if (max_diff > 1e-4 * max_ref) {
      std::fprintf(stderr, "error: validation failed: decode vs full forward differ by %g\n", max_diff);
      return 1;
    }
    (void)kvc.pool().Free(*blocks);
  }

  std::printf("model: %s (%s, hidden %ld, layers %ld, heads %ld/%ld, vocab %ld, %.1fM params, %s weights)\n",
              model_dir.c_str(), cfg.architecture.c_str(), (long)cfg.hidden_size, (long)cfg.num_layers,
              (long)cfg.num_heads, (long)cfg.num_kv_heads, (long)cfg.vocab_size, cfg.NumParameters() / 1e6,
              std::string(DTypeName((*weights)->layers[0].q_proj.view.dtype)).c_str());
  std::printf("memory read bandwidth: %.1f GB/s (all threads, 1 GiB buffer, best over 1-16 streams per thread)\n", bw);

  // --- prefill ---
  double prefill_s = 1e30;
  {
    std::vector<int32_t> p = random_tokens(prompt_len);
    auto blocks = kvc.pool().Allocate(BlocksForTokens(prompt_len, 16));
    std::vector<SequenceChunk> c(1);
    c[0].tokens = p;
    c[0].block_table = *blocks;
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      if (!forward(c).ok()) return 1;
      prefill_s = std::min(prefill_s, Seconds(t0));
    }
    (void)kvc.pool().Free(*blocks);
  }
  const double prefill_tps = prompt_len / prefill_s;
  const double prefill_gflops = 2.0 * cfg.NumParameters() * prompt_len / prefill_s / 1e9;
  std::printf("prefill: %d tokens in %.1f ms = %.0f tokens/s (%.0f GFLOP/s on weights)\n", prompt_len,
              prefill_s * 1e3, prefill_tps, prefill_gflops);

  // --- decode ---
  const size_t weight_bytes = DecodeWeightBytes(**weights);
  const size_t kv_bytes_per_token = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * DTypeSize(kvc.dtype());
  std::vector<Run> runs;
  std::printf("\n%6s %8s %10s %12s %10s %10s\n", "batch", "context", "step ms", "tokens/s", "GB/s", "of bw");
  for (int b : batches) {
    std::vector<std::vector<int32_t>> prompts, tables;
    for (int i = 0; i < b; ++i) {
      prompts.push_back(random_tokens(context));
      tables.push_back(*kvc.pool().Allocate(BlocksForTokens(context + steps + 1, 16)));
    }
    std::vector<SequenceChunk> chunks(b);
    for (int i = 0; i < b; ++i) {
      chunks[i].tokens = prompts[i];
      chunks[i].block_table = tables[i];
    }
    if (!forward(chunks).ok()) return 1;  // fill the caches
    std::vector<int32_t> next(b, 1);
    double total_s = 0;
    for (int s = 0; s <= steps; ++s) {
      for (int i = 0; i < b; ++i) {
        chunks[i].tokens = std::span<const int32_t>(&next[i], 1);
        chunks[i].start_position = context + s;
      }
      auto t0 = std::chrono::steady_clock::now();
      if (!forward(chunks).ok()) return 1;
      if (s > 0) total_s += Seconds(t0);  // step 0 warms up
    }
    Run r;
    r.batch = b;
    r.context = context;
    r.step_ms = total_s / steps * 1e3;
    r.tokens_per_s = b * steps / total_s;
    const double bytes = weight_bytes + double(b) * (context + steps / 2.0) * kv_bytes_per_token;
    r.gbs = bytes / (total_s / steps) / 1e9;
    r.fraction = r.gbs / bw;
    runs.push_back(r);
    std::printf("%6d %8d %10.2f %12.1f %10.1f %9.0f%%\n", b, context, r.step_ms, r.tokens_per_s, r.gbs,
                100 * r.fraction);
    for (auto& t : tables) (void)kvc.pool().Free(t);
  }

  if (!json_path.empty()) {
    nlohmann::json j;
    j["model"] = model_dir;
    j["read_bandwidth_gbs"] = bw;
    j["prefill"] = {{"tokens", prompt_len}, {"ms", prefill_s * 1e3}, {"tokens_per_s", prefill_tps}};
    for (const Run& r : runs) {
      j["decode"].push_back({{"batch", r.batch}, {"context", r.context}, {"step_ms", r.step_ms},
                             {"tokens_per_s", r.tokens_per_s}, {"gbs", r.gbs}, {"fraction_of_bw", r.fraction}});
    }
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) { return tandem::Main(argc, argv); }
