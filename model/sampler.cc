#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

namespace tandem {

Status SamplingParams::Validate() const {
  auto bad = [](const char* field, const std::string& why) {
    return InvalidArgumentError(std::string(field) + " " + why);
  };
  if (!std::isfinite(temperature) || temperature < 0.0f) return bad("temperature", "must be >= 0");
  if (top_k < -1) return bad("top_k", "must be -1, 0 (off) or positive");
  if (!(top_p > 0.0f && top_p <= 1.0f)) return bad("top_p", "must be in (0, 1]");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return bad("min_p", "must be in [0, 1]");
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty)) {
    return bad("repetition_penalty", "must be > 0");
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) return bad("presence_penalty", "must be in [-2, 2]");
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) return bad("frequency_penalty", "must be in [-2, 2]");
  if (max_tokens < 1) return bad("max_tokens", "must be >= 1");
  return Status::Ok();
}

void TokenHistory::AddPrompt(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) ++all_counts_[t];
}

void TokenHistory::AddOutput(int32_t token) {
  ++all_counts_[token];
  ++output_counts_[token];
}

namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void ApplyPenalties(std::span<float> logits, const SamplingParams& p, const TokenHistory& h) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  if (p.repetition_penalty != 1.0f) {
    for (const auto& [tok, count] : h.all_counts()) {
      if (tok < 0 || tok >= vocab) continue;
      float& l = logits[tok];
      l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
    }
  }
  if (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    for (const auto& [tok, count] : h.output_counts()) {
      if (tok < 0 || tok >= vocab) continue;
      logits[tok] -= p.frequency_penalty * static_cast<float>(count) + p.presence_penalty;
    }
  }
}

int32_t Argmax(std::span<const float> logits) {
  // First maximum wins, as torch.argmax does.
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

}  // namespace

double SampleUniform(uint64_t seed, uint64_t step) {
  const uint64_t bits = SplitMix64(SplitMix64(seed) ^ (step * 0xd1342543de82ef95ull + 1));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

int32_t SampleToken(std::span<float> logits, const SamplingParams& p, const TokenHistory& history,
                    uint64_t step) {
  ApplyPenalties(logits, p, history);
  if (p.greedy()) return Argmax(logits);

  // Candidates sorted by logit (descending); ties keep the lower id first for determinism.
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  size_t keep = order.size();
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < keep) keep = static_cast<size_t>(p.top_k);
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (keep < order.size()) {
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_logit);
    order.resize(keep);
  } else {
    std::sort(order.begin(), order.end(), by_logit);
  }

  // Softmax over the survivors of top-k, at the given temperature, in double.
  const double inv_t = 1.0 / p.temperature;
  const double max_l = logits[order[0]] * inv_t;
  std::vector<double> probs(order.size());
  double sum = 0.0;
  for (size_t i = 0; i < order.size(); ++i) {
    probs[i] = std::exp(logits[order[i]] * inv_t - max_l);
    sum += probs[i];
  }
  for (double& q : probs) q /= sum;

  // top-p: the smallest prefix whose mass reaches top_p (always at least one token).
  size_t n = probs.size();
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    for (size_t i = 0; i < probs.size(); ++i) {
      cum += probs[i];
      if (cum >= p.top_p) {
        n = i + 1;
        break;
      }
    }
  }
  // min-p: drop tokens below min_p times the top probability.
  if (p.min_p > 0.0f) {
    const double floor = p.min_p * probs[0];
    size_t m = 1;
    while (m < n && probs[m] >= floor) ++m;
    n = m;
  }
  double mass = 0.0;
  for (size_t i = 0; i < n; ++i) mass += probs[i];
  const double u = SampleUniform(p.seed.value_or(0), step) * mass;
  double cum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cum += probs[i];
    if (u < cum) return order[i];
  }
  return order[n - 1];
}

}  // namespace tandem
