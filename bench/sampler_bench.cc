// Per-token cost of SampleToken (model/sampler.h) on realistic vocabularies, against the obvious
// implementation (sort the whole vocabulary, walk prefixes) timed in the same run. Both must
// draw the same token for every case, which is checked before anything is timed.
//
//   sampler_bench [--vocab 32000 --vocab 128256 --vocab 151936] [--draws 2000]
//
// Logit shapes: "peaked" (normal, sigma 4: a trained model's spread) and "flat" (sigma 0.5: a
// random-weights model, the worst case: the draw lands deep in the rank order).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "model/sampler.h"
#include "model/sampler_reference.h"

namespace tandem {
namespace {

struct Case {
  std::string name;
  SamplingParams params;
};

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  using namespace tandem;
  CLI::App app{"SampleToken per-token cost vs a full sort"};
  std::vector<int> vocabs = {32000, 128256, 151936};
  int draws = 2000;
  app.add_option("--vocab", vocabs, "vocabulary sizes");
  app.add_option("--draws", draws, "timed draws per configuration");
  CLI11_PARSE(app, argc, argv);

  std::vector<Case> cases;
  SamplingParams t1;
  t1.temperature = 1.0f;
  t1.seed = 1;
  cases.push_back({"T=1", t1});
  SamplingParams tp = t1;
  tp.top_p = 0.9f;
  cases.push_back({"T=0.7 top_p=0.9", tp});
  cases.back().params.temperature = 0.7f;
  SamplingParams tk = t1;
  tk.top_k = 50;
  cases.push_back({"top_k=50", tk});

  std::printf("%-8s %-7s %-16s %12s %12s %8s\n", "vocab", "logits", "params", "ours us/tok", "sort us/tok",
              "speedup");
  for (int vocab : vocabs) {
    for (float sigma : {4.0f, 0.5f}) {
      std::mt19937 rng(7);
      std::normal_distribution<float> normal(0.0f, sigma);
      constexpr int kRows = 16;  // distinct logit rows, cycled, so caches see a decode batch
      std::vector<std::vector<float>> rows(kRows, std::vector<float>(vocab));
      for (auto& r : rows) {
        for (float& l : r) l = normal(rng);
      }
      for (const Case& c : cases) {
        std::vector<float> scratch;
        for (int i = 0; i < 64; ++i) {  // validate: same draws
          scratch = rows[i % kRows];
          const int32_t ours = SampleToken(scratch, c.params, {}, i);
          scratch = rows[i % kRows];
          if (ours != SampleTokenBySorting(scratch, c.params, i)) {
            std::fprintf(stderr, "mismatch: vocab %d %s draw %d\n", vocab, c.name.c_str(), i);
            return 1;
          }
        }
        auto time = [&](auto&& draw) {
          const auto t0 = std::chrono::steady_clock::now();
          int64_t sink = 0;
          for (int i = 0; i < draws; ++i) {
            scratch = rows[i % kRows];
            sink += draw(scratch, i);
          }
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (sink == -1) std::printf(" ");
          return s * 1e6 / draws;
        };
        const double ours = time([&](std::vector<float>& l, int i) { return SampleToken(l, c.params, {}, i); });
        const double base = time([&](std::vector<float>& l, int i) { return SampleTokenBySorting(l, c.params, i); });
        std::printf("%-8d %-7s %-16s %12.1f %12.1f %7.1fx\n", vocab, sigma > 1 ? "peaked" : "flat", c.name.c_str(),
                    ours, base, base / ours);
      }
    }
  }
  std::printf("(each time includes copying the logit row, as the engine's sampler modifies it in place)\n");
  return 0;
}
