#include "model/sampler_reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "model/sampler.h"

namespace tandem {

int32_t SampleTokenBySorting(std::span<const float> logits, const SamplingParams& p, uint64_t step) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < order.size()) order.resize(static_cast<size_t>(p.top_k));
  std::vector<double> w(order.size());
  double total = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    w[i] = std::exp((logits[order[i]] - logits[order[0]]) * (1.0f / p.temperature));
    total += w[i];
  }
  size_t n = order.size();
  if (p.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < order.size(); ++i) {
      cum += w[i];
      if (cum >= p.top_p * total) {
        n = i + 1;
        break;
      }
    }
  }
  size_t m = 1;  // min-p: w[0] == 1, so the floor is min_p itself
  while (m < n && w[m] >= p.min_p) ++m;
  n = m;
  double mass = 0;
  for (size_t i = 0; i < n; ++i) mass += w[i];
  const double u = SampleUniform(p.seed.value_or(0), step) * mass;
  double cum = 0;
  for (size_t i = 0; i < n; ++i) {
    cum += w[i];
    if (u < cum) return order[i];
  }
  return order[n - 1];
}

}  // namespace tandem
