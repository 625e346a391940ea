#include "model/sampler.h"
#include "model/sampler_reference.h"

#include <cmath>
#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace tandem {
namespace {

std::vector<float> Logits() { return {1.0f, 3.0f, 2.5f, -1.0f, 0.5f, 2.9f}; }

SamplingParams Seeded(float temperature, uint64_t seed = 42) {
  SamplingParams p;
  p.temperature = temperature;
  p.seed = seed;
  return p;
}

int32_t Draw(const SamplingParams& p, uint64_t step, const TokenHistory& h = {}) {
  std::vector<float> l = Logits();
  return SampleToken(l, p, h, step);
}

TEST(SamplerTest, GreedyIsArgmaxWithFirstMaximumOnTies) {
  EXPECT_EQ(Draw(Seeded(0.0f), 0), 1);
  std::vector<float> tie = {0.0f, 5.0f, 5.0f};
  EXPECT_EQ(SampleToken(tie, Seeded(0.0f), {}, 0), 1);
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDiffers) {
  std::vector<int32_t> a, b, c;
  for (uint64_t step = 0; step < 64; ++step) {
    a.push_back(Draw(Seeded(1.0f, 7), step));
    b.push_back(Draw(Seeded(1.0f, 7), step));
    c.push_back(Draw(Seeded(1.0f, 8), step));
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(SamplerTest, TopKOneIsGreedy) {
  SamplingParams p = Seeded(2.0f);
  p.top_k = 1;
  for (uint64_t step = 0; step < 50; ++step) EXPECT_EQ(Draw(p, step), 1);
}

TEST(SamplerTest, TopKNeverPicksExcluded) {
  SamplingParams p = Seeded(5.0f);
  p.top_k = 3;  // ids 1 (3.0), 5 (2.9), 2 (2.5)
  for (uint64_t step = 0; step < 300; ++step) {
    int32_t t = Draw(p, step);
    EXPECT_TRUE(t == 1 || t == 5 || t == 2) << t;
  }
}

TEST(SamplerTest, TopPKeepsSmallestPrefixReachingMass) {
  SamplingParams p = Seeded(1.0f);
  p.top_p = 0.3f;  // the top token alone has ~0.33 of the mass
  for (uint64_t step = 0; step < 100; ++step) EXPECT_EQ(Draw(p, step), 1);
}

TEST(SamplerTest, MinPDropsUnlikelyTokens) {
  SamplingParams p = Seeded(1.0f);
  p.min_p = 0.5f;  // keep tokens with prob >= 0.5 * p(top): ids 1, 5, 2 (e^-0.5 = 0.61)
  std::map<int32_t, int> seen;
  for (uint64_t step = 0; step < 400; ++step) ++seen[Draw(p, step)];
  for (auto& [t, n] : seen) EXPECT_TRUE(t == 1 || t == 5 || t == 2) << t;
  EXPECT_EQ(seen.size(), 3u);
}

TEST(SamplerTest, SamplingFollowsTheDistribution) {
  SamplingParams p = Seeded(1.0f, 123);
  std::vector<float> l = Logits();
  double z = 0;
  for (float x : l) z += std::exp(x);
  std::map<int32_t, int> seen;
  const int n = 20000;
  for (int step = 0; step < n; ++step) ++seen[Draw(p, step)];
  for (int32_t t = 0; t < 6; ++t) {
    const double expected = std::exp(l[t]) / z;
    EXPECT_NEAR(seen[t] / double(n), expected, 0.015) << "token " << t;
  }
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  SamplingParams p = Seeded(0.0f);
  p.repetition_penalty = 2.0f;
  TokenHistory h;
  h.AddPrompt(std::vector<int32_t>{1, 3});
  std::vector<float> l = Logits();
  EXPECT_EQ(SampleToken(l, p, h, 0), 5);  // 3.0 / 2 = 1.5 < 2.9
  EXPECT_FLOAT_EQ(l[1], 1.5f);
  EXPECT_FLOAT_EQ(l[3], -2.0f);
}

TEST(SamplerTest, PresenceAndFrequencyApplyToOutputOnly) {
  SamplingParams p = Seeded(0.0f);
  p.frequency_penalty = 0.1f;
  p.presence_penalty = 0.05f;
  TokenHistory h;
  h.AddPrompt(std::vector<int32_t>{5});
  h.AddOutput(1);
  h.AddOutput(1);
  std::vector<float> l = Logits();
  EXPECT_EQ(SampleToken(l, p, h, 2), 5);  // 3.0 - 0.2 - 0.05 = 2.75 < 2.9
  EXPECT_FLOAT_EQ(l[1], 2.75f);
  EXPECT_FLOAT_EQ(l[5], 2.9f);  // prompt tokens untouched
}

TEST(SamplerTest, ValidateNamesTheField) {
  SamplingParams p;
  p.top_p = 0.0f;
  EXPECT_NE(p.Validate().message().find("top_p"), std::string::npos);
  p = SamplingParams{};
  p.temperature = -1.0f;
  EXPECT_NE(p.Validate().message().find("temperature"), std::string::npos);
  p = SamplingParams{};
  p.max_tokens = 0;
  EXPECT_EQ(p.Validate().code(), StatusCode::kInvalidArgument);
  p = SamplingParams{};
  p.min_p = 1.5f;
  EXPECT_FALSE(p.Validate().ok());
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
}

TEST(SamplerTest, LargeVocabularyMatchesSortingReference) {
  std::mt19937 rng(2024);
  int compared = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const int vocab = 1 + static_cast<int>(rng() % 40000);
    std::vector<float> logits(vocab);
    // Peaked (trained-model-like), flat (random weights) and heavily tied logit vectors.
    const int shape = trial % 3;
    std::normal_distribution<float> normal(0.0f, shape == 0 ? 4.0f : 0.5f);
    for (float& l : logits) l = shape == 2 ? static_cast<float>(rng() % 7) : normal(rng);
    SamplingParams p = Seeded(0.3f + static_cast<float>(rng() % 100) / 50.0f, rng());
    if (rng() % 2) p.top_k = 1 + static_cast<int>(rng() % 100);
    if (rng() % 2) p.top_p = 0.05f + static_cast<float>(rng() % 95) / 100.0f;
    if (rng() % 3 == 0) p.min_p = static_cast<float>(rng() % 50) / 100.0f;
    for (uint64_t step = 0; step < 5; ++step) {
      std::vector<float> copy = logits;
      ASSERT_EQ(SampleToken(copy, p, {}, step), SampleTokenBySorting(logits, p, step))
          << "trial " << trial << " vocab " << vocab << " T " << p.temperature << " top_k " << p.top_k << " top_p "
          << p.top_p << " min_p " << p.min_p << " step " << step;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 1000);
}

TEST(SamplerTest, UniformIsInRangeAndCounterBased) {
  for (uint64_t s = 0; s < 1000; ++s) {
    const double u = SampleUniform(99, s);
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
  EXPECT_EQ(SampleUniform(5, 10), SampleUniform(5, 10));
  EXPECT_NE(SampleUniform(5, 10), SampleUniform(5, 11));
}

}  // namespace
}  // namespace tandem
