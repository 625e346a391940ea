#include "slo/latency_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "slo/least_squares.h"

namespace tandem {
namespace {

void ExpectWithin(double actual, double expected, double relative) {
  EXPECT_NEAR(actual, expected, std::abs(expected) * relative) << "expected " << expected;
}

TEST(LeastSquaresTest, RecoversExactCoefficientsOfWidelyScaledColumns) {
  // Columns 1, n and n² span ten orders of magnitude; the fit must not lose the small ones.
  std::vector<std::vector<double>> rows;
  std::vector<double> y;
  for (double n : {16.0, 64.0, 128.0, 512.0, 1024.0, 4096.0, 32768.0}) {
    rows.push_back({1.0, n, n * n});
    y.push_back(1500 + 40 * n + 0.002 * n * n);
  }
  auto x = FitNonNegativeRelative(rows, y);
  ASSERT_TRUE(x.ok()) << x.status().ToString();
  ExpectWithin((*x)[0], 1500, 1e-6);
  ExpectWithin((*x)[1], 40, 1e-6);
  ExpectWithin((*x)[2], 0.002, 1e-6);
}

TEST(LeastSquaresTest, DropsANegativeTermAndRefits) {
  // y = 10 + 3x exactly, except for noise that a free quadratic term would fit as negative.
  std::vector<std::vector<double>> rows;
  std::vector<double> y;
  for (double v : {1.0, 2.0, 4.0, 8.0, 16.0}) {
    rows.push_back({1.0, v, v * v});
    y.push_back(10 + 3 * v - (v == 16.0 ? 2.0 : 0.0));
  }
  auto x = FitNonNegativeRelative(rows, y);
  ASSERT_TRUE(x.ok());
  EXPECT_EQ((*x)[2], 0.0);
  EXPECT_GT((*x)[1], 2.5);
  for (double c : *x) EXPECT_GE(c, 0.0);
}

TEST(LeastSquaresTest, ADependentColumnGetsZeroInsteadOfNonsense) {
  std::vector<std::vector<double>> rows = {{1, 2, 4}, {1, 3, 6}, {1, 5, 10}, {1, 7, 14}};
  std::vector<double> y = {5, 7, 11, 15};  // 1 + 2v
  auto x = FitNonNegativeRelative(rows, y);
  ASSERT_TRUE(x.ok());
  EXPECT_NEAR((*x)[0] + 0, 1.0, 1e-9);
  EXPECT_NEAR((*x)[1] + 2 * (*x)[2], 2.0, 1e-9);
}

TEST(LeastSquaresTest, RefusesBadShapes) {
  std::vector<std::vector<double>> rows = {{1, 2}};
  std::vector<double> y = {1};
  EXPECT_EQ(FitNonNegativeRelative(rows, y).status().code(), StatusCode::kInvalidArgument);
  rows = {{1, 2}, {1, 3}};
  y = {1, 0};
  EXPECT_EQ(FitNonNegativeRelative(rows, y).status().code(), StatusCode::kInvalidArgument);
  y = {1};
  EXPECT_EQ(FitNonNegativeRelative(rows, y).status().code(), StatusCode::kInvalidArgument);
}

TEST(LatencyModelTest, PrefillFitRecoversSyntheticCoefficientsWithinOnePercentUnderNoise) {
  const PrefillRegime truth{0, 2000, 35, 0.004};
  std::mt19937 rng(1);
  std::normal_distribution<double> noise(0, 0.005);  // 0.5% timing noise
  std::vector<PrefillSample> samples;
  for (int n : {16, 32, 64, 128, 256, 512, 1024, 2048}) {
    for (int seqs : {1, 2, 4}) {
      PrefillSample s;
      for (int i = 0; i < seqs; ++i) s.work.AddChunk(0, n / seqs);
      s.us = (truth.a_us + truth.b_us_per_token * s.work.tokens + truth.c_us_per_pair * s.work.quadratic) *
             (1 + noise(rng));
      samples.push_back(s);
    }
  }
  auto fit = FitPrefill(samples);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  ASSERT_EQ(fit->size(), 1u);  // noise is no reason for a second regime
  ExpectWithin((*fit)[0].a_us, truth.a_us, 0.01);
  ExpectWithin((*fit)[0].b_us_per_token, truth.b_us_per_token, 0.01);
  ExpectWithin((*fit)[0].c_us_per_pair, truth.c_us_per_pair, 0.01);
}

TEST(LatencyModelTest, ChunkWorkCountsTheCachedContext) {
  PrefillWork w;
  w.AddChunk(0, 100);
  EXPECT_EQ(w.quadratic, 100.0 * 100);
  w.AddChunk(512, 10);
  EXPECT_EQ(w.tokens, 110);
  EXPECT_EQ(w.quadratic, 100.0 * 100 + 10.0 * 522);
}

TEST(LatencyModelTest, DecodeFitFindsBothRegimesAndTheirSplit) {
  // Small batches are weight-bound (nearly flat in B), large ones pay per sequence; the two meet
  // near B = 12, as real regimes do (where one cost overtakes the other).
  const DecodeRegime small{8, 9000, 1.0, 50}, large{0, 4800, 1.0, 400};
  std::vector<DecodeSample> samples;
  for (int b : {1, 2, 4, 8, 16, 32, 64}) {
    for (int ctx : {64, 256, 1024}) {
      const DecodeRegime& r = b <= 8 ? small : large;
      const int64_t total = int64_t{b} * ctx;
      samples.push_back({b, total, r.a_us + r.b_us_per_context_token * total + r.c_us_per_sequence * b});
    }
  }
  auto fit = FitDecode(samples);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  ASSERT_EQ(fit->size(), 2u);
  EXPECT_EQ((*fit)[0].max_batch, 8);
  EXPECT_EQ((*fit)[1].max_batch, 0);
  ExpectWithin((*fit)[0].a_us, small.a_us, 0.01);
  ExpectWithin((*fit)[0].b_us_per_context_token, small.b_us_per_context_token, 0.01);
  ExpectWithin((*fit)[0].c_us_per_sequence, small.c_us_per_sequence, 0.01);
  ExpectWithin((*fit)[1].a_us, large.a_us, 0.01);
  ExpectWithin((*fit)[1].b_us_per_context_token, large.b_us_per_context_token, 0.01);
  ExpectWithin((*fit)[1].c_us_per_sequence, large.c_us_per_sequence, 0.01);

  LatencyProfile p;
  p.decode = *fit;
  EXPECT_NEAR(p.DecodeStepUs(4, 4 * 256), 9000 + 1024 + 200, 1.0);
  EXPECT_NEAR(p.DecodeStepUs(200, 200 * 10), 4800 + 2000 + 400 * 200, 1.0);
  EXPECT_EQ(p.DecodeStepUs(0, 0), 0);
}

TEST(LatencyModelTest, DecodeFitKeepsOneRegimeWhenTheDataHasOne) {
  std::vector<DecodeSample> samples;
  for (int b : {1, 2, 4, 8}) {
    for (int ctx : {64, 512}) samples.push_back({b, int64_t{b} * ctx, 5000 + 0.5 * b * ctx + 100.0 * b});
  }
  auto fit = FitDecode(samples);
  ASSERT_TRUE(fit.ok());
  // A split must earn its three extra coefficients; on an exact single-regime fit none does.
  ASSERT_EQ(fit->size(), 1u);
  EXPECT_EQ(fit->back().max_batch, 0);
  LatencyProfile p;
  p.decode = *fit;
  EXPECT_NEAR(p.DecodeStepUs(3, 300), 5000 + 150 + 300, 1.0);
}

TEST(LatencyModelTest, RegimesThatJumpAtTheirBoundaryAreNotSplit) {
  // Small steps measured far slower than the trend of the large ones (noise under load): two
  // regimes would fit better, but would predict 10 tokens dearer than 200. One regime it is.
  std::vector<PrefillSample> samples;
  for (int n : {8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512}) {
    PrefillSample s;
    s.work.AddChunk(0, n);
    s.us = n <= 24 ? 10000.0 - 10 * n : 1000.0 + 15.0 * n;
    samples.push_back(s);
  }
  auto fit = FitPrefill(samples);
  ASSERT_TRUE(fit.ok());
  LatencyProfile p;
  p.prefill = *fit;
  EXPECT_GT(p.PrefillUs(200), p.PrefillUs(10));
}

TEST(LatencyModelTest, TransferFitSeparatesPerLayerCostFromBandwidth) {
  std::vector<TransferSample> samples;
  for (int layers : {12, 24}) {
    for (uint64_t bytes : {uint64_t{1} << 16, uint64_t{1} << 20, uint64_t{1} << 24}) {
      samples.push_back({layers, bytes, layers * 15.0 + bytes / 2500.0});
    }
  }
  auto fit = FitTransfer(samples);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  ASSERT_EQ(fit->size(), 1u);
  ExpectWithin((*fit)[0].per_layer_us, 15, 0.01);
  ExpectWithin((*fit)[0].bytes_per_us, 2500, 0.01);
}

TEST(LatencyModelTest, TransferFitSplitsCacheFromDram) {
  // Copies that fit in cache run at 2.4 GB/s, larger ones at 2 GB/s (this VM: 1.7 and 1.4).
  std::vector<TransferSample> samples;
  for (int i = 1; i <= 16; ++i) {
    const uint64_t bytes = uint64_t{1} << (10 + i);  // 2 KiB .. 64 MiB
    samples.push_back({12, bytes, 12 * 2.0 + bytes / (bytes <= (uint64_t{1} << 20) ? 2400.0 : 2000.0)});
  }
  auto fit = FitTransfer(samples);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  ASSERT_EQ(fit->size(), 2u);
  EXPECT_EQ((*fit)[0].max_bytes, uint64_t{1} << 20);
  ExpectWithin((*fit)[0].bytes_per_us, 2400, 0.01);
  ExpectWithin((*fit)[1].bytes_per_us, 2000, 0.01);
  LatencyProfile p;
  p.num_layers = 12;
  p.transfer = *fit;
  EXPECT_NEAR(p.TransferBytesUs(uint64_t{1} << 24), 24 + (1 << 24) / 2000.0, 1.0);
}

LatencyProfile ExampleProfile() {
  LatencyProfile p;
  p.model = "small";
  p.device = "cpu";
  p.threads = 2;
  p.num_layers = 12;
  p.kv_bytes_per_token = 24576;
  p.prefill = {{0, 2000, 35, 0.004}};
  p.decode = {{8, 9000, 0.8, 50}, {0, 6000, 1.0, 600}};
  p.transfer = {{0, 15, 2500}};
  p.validation = {40, 2.5, 3.1, 4.0};
  return p;
}

TEST(LatencyModelTest, JsonRoundTripKeepsEveryField) {
  const LatencyProfile p = ExampleProfile();
  auto back = ParseLatencyProfile(p.ToJson(), "test");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), p.ToJson());
  EXPECT_EQ(back->decode.size(), 2u);
  EXPECT_DOUBLE_EQ(back->TransferUs(100), 12 * 15 + 100 * 24576 / 2500.0);
  EXPECT_DOUBLE_EQ(back->PrefillUs(100), 2000 + 3500 + 0.004 * 10000);
  EXPECT_EQ(back->validation.samples, 40);
}

TEST(LatencyModelTest, RefusesWhatIsNotAProfileNamingTheField) {
  EXPECT_EQ(ParseLatencyProfile("{", "f.json").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseLatencyProfile(R"({"classes": []})", "f.json").status().code(), StatusCode::kInvalidArgument);
  nlohmann::json j = nlohmann::json::parse(ExampleProfile().ToJson());
  j["prefill"][0]["b_us_per_token"] = -1;
  Status s = ParseLatencyProfile(j.dump(), "f.json").status();
  EXPECT_NE(s.message().find("b_us_per_token"), std::string::npos) << s.ToString();
  j = nlohmann::json::parse(ExampleProfile().ToJson());
  j["decode"][1]["max_batch"] = 4;  // not ascending, and the last must be unbounded
  EXPECT_EQ(ParseLatencyProfile(j.dump(), "f.json").status().code(), StatusCode::kInvalidArgument);
  j = nlohmann::json::parse(ExampleProfile().ToJson());
  j["version"] = 99;
  s = ParseLatencyProfile(j.dump(), "f.json").status();
  EXPECT_NE(s.message().find("re-run tandem profile"), std::string::npos) << s.ToString();
  EXPECT_EQ(LoadLatencyProfile("/nonexistent/profile.json").status().code(), StatusCode::kNotFound);
}

TEST(LatencyModelTest, CorrectionFollowsMeasuredOverPredicted) {
  LatencyCorrection c(0.5);
  EXPECT_EQ(c.factor(), 1.0);
  c.Observe(100, 200);
  EXPECT_DOUBLE_EQ(c.factor(), 1.5);
  for (int i = 0; i < 40; ++i) c.Observe(100, 200);
  EXPECT_NEAR(c.factor(), 2.0, 1e-6);
  c.Observe(0, 100);  // nothing predicted: ignored
  EXPECT_EQ(c.observations(), 41);
}

TEST(LatencyModelTest, MapeIsInPercent) {
  std::vector<double> pred = {110, 90}, meas = {100, 100};
  EXPECT_DOUBLE_EQ(MeanAbsPercentError(pred, meas), 10.0);
}

}  // namespace
}  // namespace tandem
