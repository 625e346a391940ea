// How fast `tandem simulate` runs: 100k requests (chatbot-like lognormal lengths, Poisson
// arrivals at a load near the deployment's capacity) through the simulator on one core, for a
// disaggregated and a colocated deployment. The goal (issue: capacity planning) is 100k requests
// in under 2 s; the bench prints the time and what it is made of (engine steps and the sequence
// steps inside them), so a regression shows where it came from.
//
//   simulator_bench [--requests 100000] [--profile P] [--rate R]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "sim/simulator.h"

namespace tandem {
namespace {

// A GPU-like profile (a 7B-class model on one H100, roughly): prefill 10 ms + 0.1 ms per token,
// decode 8 ms + 0.5 us per context token + 0.1 ms per sequence, 50 GB/s transfer.
LatencyProfile DefaultProfile() {
  LatencyProfile p;
  p.model = "bench";
  p.device = "synthetic";
  p.num_layers = 32;
  p.kv_bytes_per_token = 131072;
  p.prefill = {{0, 10000, 100, 0.0}};
  p.decode = {{0, 8000, 0.5, 100}};
  p.transfer = {{0, 20, 50000}};
  return p;
}

std::vector<SimRequest> Workload(int n, double rate, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate);
  const double sigma = 0.8;
  std::lognormal_distribution<double> in(std::log(220.0) - sigma * sigma / 2, sigma);
  std::lognormal_distribution<double> out(std::log(200.0) - sigma * sigma / 2, sigma);
  std::vector<SimRequest> r;
  double t = 0;
  for (int i = 0; i < n; ++i) {
    t += gap(rng);
    r.push_back({static_cast<int64_t>(t * 1e6),
                 std::clamp(static_cast<int32_t>(in(rng)), 4, 1024),
                 std::clamp(static_cast<int32_t>(out(rng)), 2, 1024),
                 {}});
  }
  return r;
}

int Main(int argc, char** argv) {
  int requests = 100000;
  double rate = 0;  // 0: per deployment, near its capacity
  std::string profile_path;
  CLI::App app("Simulator speed: 100k requests on one core");
  app.add_option("--requests", requests)->capture_default_str();
  app.add_option("--rate", rate, "requests/s (default: near each deployment's capacity)");
  app.add_option("--profile", profile_path, "a tandem profile file (default: a synthetic GPU-like one)");
  CLI11_PARSE(app, argc, argv);
  LatencyProfile profile = DefaultProfile();
  if (!profile_path.empty()) {
    auto p = LoadLatencyProfile(profile_path);
    if (!p.ok()) {
      std::fprintf(stderr, "%s\n", p.status().ToString().c_str());
      return 1;
    }
    profile = *p;
  }
  struct Setup {
    const char* name;
    int prefill, decode, colocated;
    double rate;
  };
  for (const Setup& s : {Setup{"2P+4D", 2, 4, 0, 40}, Setup{"4 colocated", 0, 0, 4, 30}}) {
    SimOptions o;
    o.profile = profile;
    o.num_prefill = s.prefill;
    o.num_decode = s.decode;
    o.num_colocated = s.colocated;
    o.kv_blocks = 20000;
    o.decode_max_num_seqs = o.colocated_max_num_seqs = 128;
    o.router.first_token_timeout_us = 0;  // nothing times out: every request runs to its end
    o.router.inter_token_timeout_us = 0;
    o.router.max_queued = 1 << 30;
    const auto work = Workload(requests, rate > 0 ? rate : s.rate, 1);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = Simulate(o, CreatePlacementPolicy("least-loaded").value(), work);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r.ok()) {
      std::fprintf(stderr, "%s: %s\n", s.name, r.status().ToString().c_str());
      return 1;
    }
    int64_t tokens = 0, failed = 0;
    for (const RequestRecord& rec : r->records) {
      tokens += rec.output_tokens;
      failed += rec.finish_reason != FinishReason::kLength;
    }
    std::printf(
        "%-12s %d requests (%lld failed) in %.2f s on one core: %.1f us/request; %lld engine steps, %lld tokens "
        "(%.0f ns/token), %.0f s simulated\n",
        s.name, requests, static_cast<long long>(failed), secs, 1e6 * secs / requests, static_cast<long long>(r->steps),
        static_cast<long long>(tokens), 1e9 * secs / static_cast<double>(tokens), r->end_us / 1e6);
  }
  std::printf("goal: 100000 requests in under 2 s\n");
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) { return tandem::Main(argc, argv); }
