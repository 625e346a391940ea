// CPU kernel micro-benchmark: Matmul for the decode shapes of a 125M Llama (hidden 768,
// 4 kv heads of 64, inter 2048, vocab 32000) against the machine's memory read bandwidth, and
// prefill-shaped Matmul (m = 512) in GFLOP/s. Every configuration is validated against a
// double-precision reference before it is timed.
//
//   build/bin/cpu_kernels_bench [--threads N] [--rotate-mib 1024] [--bw-mib 2048] [--quick]
//                               [--json FILE]
//
// Decode weights rotate through enough copies to exceed --rotate-mib (default 1 GiB, more than
// the last-level cache), so GB/s is a memory figure, not a cache figure. The "model sweep" rows
// run one token through all 12 layers' matrices plus the lm_head, as a decode step does.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench/memory_bandwidth.h"

#include <immintrin.h>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_kernels.h"

namespace tandem {
namespace {

using Clock = std::chrono::steady_clock;

struct Shape {
  const char* name;
  int64_t n, k;
};
constexpr Shape kShapes[] = {{"q_proj/o_proj", 768, 768},
                             {"k_proj/v_proj", 256, 768},
                             {"gate/up_proj", 2048, 768},
                             {"down_proj", 768, 2048},
                             {"lm_head", 32000, 768}};

// Weight matrices in one dtype with deterministic non-zero contents.
std::vector<uint8_t> MakeWeights(int64_t elems, DType t, uint32_t seed) {
  std::vector<uint8_t> buf(static_cast<size_t>(elems) * DTypeSize(t));
#pragma omp parallel
  {
    std::minstd_rand gen(seed + 7919u * static_cast<uint32_t>(omp_get_thread_num()));
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < elems; ++i) {
      float v = d(gen);
      if (std::abs(v) < 0.01f) v = 0.5f;
      if (t == DType::kF32) {
        std::memcpy(buf.data() + 4 * i, &v, 4);
      } else {
        const uint16_t h = t == DType::kF16 ? F32ToF16(v) : F32ToBf16(v);
        std::memcpy(buf.data() + 2 * i, &h, 2);
      }
    }
  }
  return buf;
}

std::vector<float> MakeActivations(int64_t n, uint32_t seed) {
  std::minstd_rand gen(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

// Checks a sample of output rows against a double reference; false (and a message) if off.
bool Validate(Backend& backend, const std::vector<float>& x, int64_t m, const uint8_t* w,
              DType t, int64_t n, int64_t k, const char* what) {
  std::vector<float> out(m * n);
  TensorView xv{const_cast<float*>(x.data()), DType::kF32, m, k};
  TensorView wv{const_cast<uint8_t*>(w), t, n, k};
  if (!backend.Matmul(xv, wv, nullptr, {out.data(), DType::kF32, m, n}).ok()) return false;
  for (int64_t j = 0; j < n; j += std::max<int64_t>(1, n / 61)) {
    for (int64_t i = 0; i < m; i += std::max<int64_t>(1, m / 7)) {
      double ref = 0, mag = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double prod = double(x[i * k + p]) * LoadAsF32(w, t, static_cast<size_t>(j * k + p));
        ref += prod;
        mag += std::abs(prod);
      }
      if (std::abs(out[i * n + j] - ref) > 2e-6 * mag + 1e-6) {
        std::fprintf(stderr, "VALIDATION FAILED %s: out[%ld, %ld] = %g, reference %g\n", what,
                     static_cast<long>(i), static_cast<long>(j), out[i * n + j], ref);
        return false;
      }
    }
  }
  return true;
}

// Seconds per call of fn(call_index): the best of several rounds of `calls_per_round` calls
// (a round cycles once through the weight copies), repeated until min_seconds have passed.
// Best-of, like the bandwidth ceiling, so that a neighbour's burst of work does not count.
template <class Fn>
double TimePerCall(Fn fn, double min_seconds, int calls_per_round, int min_rounds = 3) {
  for (int c = 0; c < calls_per_round; ++c) fn(c);  // warm-up round
  double best = 1e30, total = 0;
  int call = 0;
  for (int round = 0; round < min_rounds || total < min_seconds; ++round) {
    const auto t0 = Clock::now();
    for (int c = 0; c < calls_per_round; ++c) fn(call++);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, secs / calls_per_round);
    total += secs;
  }
  return best;
}

struct Options {
  int threads = 0;
  int64_t rotate_mib = 1024;
  int64_t bw_mib = 2048;
  bool quick = false;
  std::string json_path;
};

int Main(int argc, char** argv) {
  Options opt;
  CLI::App app{"CPU kernel benchmark: decode Matmul vs memory bandwidth, prefill GFLOP/s"};
  app.add_option("--threads", opt.threads, "threads (0 = all cores)");
  app.add_option("--rotate-mib", opt.rotate_mib, "bytes of weight copies the decode runs cycle through");
  app.add_option("--bw-mib", opt.bw_mib, "buffer size of the bandwidth measurement");
  app.add_flag("--quick", opt.quick, "shorter timings (smoke test)");
  app.add_option("--json", opt.json_path, "write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  BackendOptions bo;
  bo.num_threads = opt.threads;
  auto created = CreateBackend("cpu", bo);
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return 1;
  }
  Backend& backend = **created;
  const int threads = opt.threads > 0 ? opt.threads : omp_get_num_procs();
  const double min_secs = opt.quick ? 0.05 : 0.3;
  nlohmann::json report;
  report["threads"] = threads;
  report["isa"] = cpu::IsaName();
  report["gemv_max_rows"] = cpu::GemvMaxRows();

  // (1) The ceiling: the best read rate over 1..16 streams per thread.
  double bw = 0;
  {
    const bench::BandwidthReading reading =
        bench::MeasureReadBandwidth(static_cast<size_t>(opt.bw_mib) << 20, threads, opt.quick ? 2 : 5);
    nlohmann::json by_streams;
    std::printf("memory read bandwidth, %ld MiB, %d threads:", static_cast<long>(opt.bw_mib), threads);
    for (const auto& [streams, gbs] : reading.by_streams) {
      std::printf("  %d stream%s %.1f GB/s", streams, streams > 1 ? "s" : "", gbs);
      by_streams[std::to_string(streams)] = gbs;
    }
    bw = reading.best_gbs;
    std::printf("\nceiling %.1f GB/s; threads %d, kernels %s\n\n", bw, threads, cpu::IsaName());
    report["read_bandwidth_gbs"] = bw;
    report["read_bandwidth_by_streams_gbs"] = by_streams;
  }

  // (2) Decode-shaped Matmul, weights rotating through more than the LLC.
  std::printf("%-15s %-11s %-5s %4s %10s %9s %8s\n", "decode matmul", "n x k", "dtype", "m",
              "us/call", "GB/s", "of BW");
  nlohmann::json decode = nlohmann::json::array();
  for (DType t : {DType::kF32, DType::kBF16}) {
    for (const Shape& s : kShapes) {
      const int64_t bytes = s.n * s.k * static_cast<int64_t>(DTypeSize(t));
      const int copies = static_cast<int>(std::clamp<int64_t>((opt.rotate_mib << 20) / bytes + 1, 1, 4096));
      std::vector<std::vector<uint8_t>> ws;
      for (int c = 0; c < copies; ++c) ws.push_back(MakeWeights(s.n * s.k, t, 11u + c));
      for (int64_t m : {1, 8, 32}) {
        const auto x = MakeActivations(m * s.k, 5);
        if (!Validate(backend, x, m, ws[0].data(), t, s.n, s.k, s.name)) return 2;
        std::vector<float> out(m * s.n);
        const double sec = TimePerCall(
            [&](int call) {
              TensorView xv{const_cast<float*>(x.data()), DType::kF32, m, s.k};
              TensorView wv{ws[call % copies].data(), t, s.n, s.k};
              (void)backend.Matmul(xv, wv, nullptr, {out.data(), DType::kF32, m, s.n});
            },
            min_secs, copies);
        const double gbs = bytes / sec / 1e9;
        std::printf("%-15s %5ldx%-5ld %-5s %4ld %10.1f %9.1f %7.0f%%\n", s.name,
                    static_cast<long>(s.n), static_cast<long>(s.k), DTypeName(t).data(),
                    static_cast<long>(m), sec * 1e6, gbs, 100 * gbs / bw);
        decode.push_back({{"shape", s.name}, {"n", s.n}, {"k", s.k}, {"dtype", DTypeName(t)},
                          {"m", m}, {"us", sec * 1e6}, {"weight_gbs", gbs}, {"fraction_of_bw", gbs / bw}});
      }
    }
  }
  report["decode_matmul"] = decode;

  // The whole model's matrices for one token (12 layers + lm_head), each buffer distinct.
  std::printf("\n%-28s %-5s %10s %9s %8s\n", "model decode sweep (m=1)", "dtype", "ms/token",
              "GB/s", "of BW");
  nlohmann::json sweep = nlohmann::json::array();
  for (DType t : {DType::kF32, DType::kBF16}) {
    struct Mat { std::vector<uint8_t> w; int64_t n, k; };
    std::vector<Mat> mats;
    const Shape layer[] = {{"q", 768, 768}, {"k", 256, 768}, {"v", 256, 768}, {"o", 768, 768},
                           {"gate", 2048, 768}, {"up", 2048, 768}, {"down", 768, 2048}};
    uint32_t seed = 100;
    for (int l = 0; l < 12; ++l) {
      for (const Shape& s : layer) mats.push_back({MakeWeights(s.n * s.k, t, seed++), s.n, s.k});
    }
    mats.push_back({MakeWeights(32000 * 768, t, seed++), 32000, 768});
    int64_t bytes = 0;
    for (const Mat& mt : mats) bytes += static_cast<int64_t>(mt.w.size());
    const auto x = MakeActivations(2048, 9);
    std::vector<float> out(32000);
    const double sec = TimePerCall(
        [&](int) {
          for (const Mat& mt : mats) {
            (void)backend.Matmul({const_cast<float*>(x.data()), DType::kF32, 1, mt.k},
                                 {const_cast<uint8_t*>(mt.w.data()), t, mt.n, mt.k}, nullptr,
                                 {out.data(), DType::kF32, 1, mt.n});
          }
        },
        min_secs * 3, 1, 5);
    const double gbs = bytes / sec / 1e9;
    std::printf("%-28s %-5s %10.2f %9.1f %7.0f%%   (%.0f MB of weights)\n", "12 layers + lm_head",
                DTypeName(t).data(), sec * 1e3, gbs, 100 * gbs / bw, bytes / 1e6);
    sweep.push_back({{"dtype", DTypeName(t)}, {"ms_per_token", sec * 1e3}, {"weight_bytes", bytes},
                     {"weight_gbs", gbs}, {"fraction_of_bw", gbs / bw}});
  }
  report["decode_model_sweep"] = sweep;

  // (3) Prefill-shaped Matmul, both ways of threading the sgemm path; and the m crossover.
  std::printf("\n%-15s %-11s %-5s %4s %-10s %10s %9s\n", "prefill matmul", "n x k", "dtype", "m",
              "threading", "ms/call", "GFLOP/s");
  nlohmann::json prefill = nlohmann::json::array();
  const int64_t m = 512;
  const auto xp = MakeActivations(m * 2048, 13);
  for (DType t : {DType::kF32, DType::kBF16}) {
    for (const Shape& s : kShapes) {
      if (s.n > 4096) continue;  // the lm_head runs on a few gathered rows, never on m = 512
      const auto w = MakeWeights(s.n * s.k, t, 17);
      std::vector<float> out(m * s.n);
      for (auto mode : {cpu::GemmThreading::kOmpPanels, cpu::GemmThreading::kOpenBlasThreads}) {
        cpu::SetGemmThreadingForBench(mode);
        const char* mode_name = mode == cpu::GemmThreading::kOmpPanels ? "omp-panels" : "blas-threads";
        if (!Validate(backend, xp, m, w.data(), t, s.n, s.k, s.name)) return 2;
        const double sec = TimePerCall(
            [&](int) {
              (void)backend.Matmul({const_cast<float*>(xp.data()), DType::kF32, m, s.k},
                                   {const_cast<uint8_t*>(w.data()), t, s.n, s.k}, nullptr,
                                   {out.data(), DType::kF32, m, s.n});
            },
            min_secs, 1);
        const double gflops = 2.0 * m * s.n * s.k / sec / 1e9;
        std::printf("%-15s %5ldx%-5ld %-5s %4ld %-10s %10.2f %9.1f\n", s.name,
                    static_cast<long>(s.n), static_cast<long>(s.k), DTypeName(t).data(),
                    static_cast<long>(m), mode_name, sec * 1e3, gflops);
        prefill.push_back({{"shape", s.name}, {"n", s.n}, {"k", s.k}, {"dtype", DTypeName(t)},
                           {"m", m}, {"threading", mode_name}, {"ms", sec * 1e3}, {"gflops", gflops}});
      }
      cpu::SetGemmThreadingForBench(cpu::GemmThreading::kOmpPanels);
    }
  }
  report["prefill_matmul"] = prefill;

  std::printf("\n%-30s %4s %12s %12s\n", "crossover gate_proj BF16", "m", "gemv us", "sgemm us");
  nlohmann::json crossover = nlohmann::json::array();
  {
    const int copies = 8;  // 8 x 3 MB: beyond L2, as in a real step
    std::vector<std::vector<uint8_t>> ws;
    for (int c = 0; c < copies; ++c) ws.push_back(MakeWeights(2048 * 768, DType::kBF16, 23u + c));
    const int64_t saved = cpu::GemvMaxRows();
    for (int64_t mm : {4, 8, 16, 24, 32, 48, 64}) {
      const auto x = MakeActivations(mm * 768, 29);
      std::vector<float> out(mm * 2048);
      double us[2];
      for (int path = 0; path < 2; ++path) {
        cpu::SetGemvMaxRowsForTesting(path == 0 ? 1 << 30 : 0);
        us[path] = 1e6 * TimePerCall(
            [&](int call) {
              (void)backend.Matmul({const_cast<float*>(x.data()), DType::kF32, mm, 768},
                                   {ws[call % copies].data(), DType::kBF16, 2048, 768}, nullptr,
                                   {out.data(), DType::kF32, mm, 2048});
            },
            min_secs / 2, copies);
      }
      std::printf("%-30s %4ld %12.1f %12.1f\n", "", static_cast<long>(mm), us[0], us[1]);
      crossover.push_back({{"m", mm}, {"gemv_us", us[0]}, {"sgemm_us", us[1]}});
    }
    cpu::SetGemvMaxRowsForTesting(saved);
  }
  report["crossover_bf16_2048x768"] = crossover;

  // (4) Attention of the 125M model (12 heads, 4 kv heads, head_dim 64, block 16): one 512-token
  // prefill, and decode steps of 1 and 8 sequences at context 512.
  std::printf("\n%-30s %10s %9s\n", "attention (12 heads, kv 4, hd 64)", "ms/call", "GFLOP/s");
  nlohmann::json attention = nlohmann::json::array();
  {
    const int heads = 12, kv_heads = 4, hd = 64, bs = 16, ctx = 512, seqs_max = 8;
    const int blocks_per_seq = ctx / bs, num_blocks = blocks_per_seq * seqs_max;
    auto k_cache = MakeActivations(int64_t{num_blocks} * kv_heads * bs * hd, 31);
    auto v_cache = MakeActivations(int64_t{num_blocks} * kv_heads * bs * hd, 37);
    KvCacheView cache{k_cache.data(), v_cache.data(), DType::kF32, num_blocks, kv_heads, bs, hd};
    std::vector<int32_t> tables(num_blocks);
    for (int i = 0; i < num_blocks; ++i) tables[i] = (i * 7) % num_blocks;  // scattered blocks
    struct Case { const char* name; int seqs, query; };
    for (const Case& c : {Case{"prefill 1 x 512 tokens", 1, 512}, Case{"decode 1 seq, ctx 512", 1, 1},
                          Case{"decode 8 seqs, ctx 512", 8, 1}}) {
      std::vector<int32_t> positions, query_start = {0}, context_lens;
      for (int s = 0; s < c.seqs; ++s) {
        for (int t = ctx - c.query; t < ctx; ++t) positions.push_back(t);
        query_start.push_back(query_start.back() + c.query);
        context_lens.push_back(ctx);
      }
      const int n = static_cast<int>(positions.size());
      AttentionPlanView plan;
      plan.num_tokens = n;
      plan.num_seqs = c.seqs;
      plan.positions = positions.data();
      plan.query_start = query_start.data();
      plan.context_lens = context_lens.data();
      plan.block_tables = tables.data();
      plan.max_blocks_per_seq = blocks_per_seq;
      const auto q = MakeActivations(int64_t{n} * heads * hd, 41);
      std::vector<float> out(q.size());
      Status st = backend.Attention({const_cast<float*>(q.data()), DType::kF32, n, heads * hd},
                                    cache, plan, heads, 0.125f, {out.data(), DType::kF32, n, heads * hd});
      if (!st.ok()) {
        std::fprintf(stderr, "attention failed: %s\n", st.ToString().c_str());
        return 2;
      }
      // Validate sampled rows against softmax(q.k / 8) . v in double.
      for (int t : {0, n / 2, n - 1}) {
        const int s = t / c.query;
        for (int h : {0, heads - 1}) {
          const int kvh = h / (heads / kv_heads), keys = positions[t] + 1;
          auto at = [&](const std::vector<float>& cache_data, int j, int e) {
            const int blk = tables[s * blocks_per_seq + j / bs];
            return double(cache_data[((int64_t{blk} * kv_heads + kvh) * bs + j % bs) * hd + e]);
          };
          std::vector<double> p(keys);
          double mx = -1e300, sum = 0;
          for (int j = 0; j < keys; ++j) {
            double d = 0;
            for (int e = 0; e < hd; ++e) d += q[(int64_t{t} * heads + h) * hd + e] * at(k_cache, j, e);
            mx = std::max(mx, p[j] = d * 0.125);
          }
          for (auto& v : p) sum += (v = std::exp(v - mx));
          for (int e = 0; e < hd; ++e) {
            double ref = 0;
            for (int j = 0; j < keys; ++j) ref += p[j] / sum * at(v_cache, j, e);
            if (std::abs(out[(int64_t{t} * heads + h) * hd + e] - ref) > 1e-5) {
              std::fprintf(stderr, "VALIDATION FAILED attention %s token %d head %d\n", c.name, t, h);
              return 2;
            }
          }
        }
      }
      const double sec = TimePerCall(
          [&](int) {
            (void)backend.Attention({const_cast<float*>(q.data()), DType::kF32, n, heads * hd},
                                    cache, plan, heads, 0.125f,
                                    {out.data(), DType::kF32, n, heads * hd});
          },
          min_secs, 1, 5);
      double pairs = 0;  // (query, key) pairs over all heads
      for (int32_t p : positions) pairs += p + 1;
      const double gflops = 4.0 * pairs * heads * hd / sec / 1e9;
      std::printf("%-30s %10.3f %9.1f\n", c.name, sec * 1e3, gflops);
      attention.push_back({{"case", c.name}, {"ms", sec * 1e3}, {"gflops", gflops}});
    }
  }
  report["attention"] = attention;

  if (!opt.json_path.empty()) {
    std::ofstream f(opt.json_path);
    f << report.dump(2) << "\n";
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", opt.json_path.c_str());
      return 1;
    }
    std::printf("\nwrote %s\n", opt.json_path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) { return tandem::Main(argc, argv); }
