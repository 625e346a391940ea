// The GPU sampler: greedy is the argmax; a (seed, step) gives the same token whatever the batch
// around it; top-k, top-p and min-p never pick an excluded token; seeded draws follow the
// distribution. Seeds are fixed and printed.
#include "kernels/cuda/cuda_sampler.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "kernels/cuda_factory.h"
#include "tests/gpu/gpu_test_util.h"

namespace tandem::gpu_test {
namespace {

using cuda::CudaSampler;
using cuda::GpuSamplingParams;

class CudaSamplerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TANDEM_SKIP_WITHOUT_GPU();
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
    auto s = CudaSampler::Create(stream_);
    ASSERT_TRUE(s.ok());
    sampler_ = std::move(s).value();
  }
  void TearDown() override {
    sampler_.reset();
    if (logits_ != nullptr) cudaFree(logits_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  // Uploads rows of logits ([batch, vocab]) and samples them.
  std::vector<int32_t> Sample(const std::vector<float>& logits, int vocab,
                              const std::vector<GpuSamplingParams>& params) {
    const int batch = static_cast<int>(params.size());
    if (logits_ != nullptr) cudaFree(logits_);
    logits_ = nullptr;
    EXPECT_EQ(cudaMalloc(&logits_, logits.size() * sizeof(float)), cudaSuccess);
    EXPECT_EQ(
        cudaMemcpy(logits_, logits.data(), logits.size() * sizeof(float), cudaMemcpyHostToDevice),
        cudaSuccess);
    std::vector<int32_t> tokens(batch, -1);
    const Status st =
        sampler_->Sample(static_cast<float*>(logits_), batch, vocab, vocab, params, tokens.data());
    EXPECT_TRUE(st.ok()) << st.ToString();
    return tokens;
  }
  static std::vector<float> RandomLogits(std::mt19937& rng, size_t n, float scale = 3.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
  }
  static std::mt19937 Rng(uint32_t seed) {
    std::printf("[ seed     ] %s: %u\n",
                ::testing::UnitTest::GetInstance()->current_test_info()->name(), seed);
    return std::mt19937(seed);
  }

  cudaStream_t stream_ = nullptr;
  void* logits_ = nullptr;
  std::unique_ptr<CudaSampler> sampler_;
};

TEST(CudaSamplerNoGpuTest, BadParamsAreRejectedBeforeAnyDeviceWork) {
  auto s = CudaSampler::Create(nullptr);
  ASSERT_TRUE(s.ok());
  int32_t token = 0;
  GpuSamplingParams p;
  p.top_p = 0.0f;
  EXPECT_EQ((*s)->Sample(nullptr, 1, 10, 10, {&p, 1}, &token).code(), StatusCode::kInvalidArgument);
  p = {};
  p.temperature = -1.0f;
  EXPECT_EQ((*s)->Sample(nullptr, 1, 10, 10, {&p, 1}, &token).code(), StatusCode::kInvalidArgument);
  p = {};
  EXPECT_EQ((*s)->Sample(nullptr, 2, 10, 10, {&p, 1}, &token).code(), StatusCode::kInvalidArgument);
}

TEST(CudaBackendNoGpuTest, FactoryExplainsMissingDevice) {
  const std::string why = NoGpuReason();
  if (why.empty()) GTEST_SKIP() << "a GPU is present; this test covers the no-GPU answer";
  auto b = CreateCudaBackend({});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(b.status().message().find("no CUDA device"), std::string::npos)
      << b.status().ToString();
}

TEST_F(CudaSamplerTest, GreedyIsArgmax) {
  auto rng = Rng(11);
  for (int vocab : {7, 1000, 128256}) {
    const int batch = 6;
    auto logits = RandomLogits(rng, size_t(batch) * vocab);
    logits[vocab - 1] = 100.0f;  // row 0: the last index wins
    logits[vocab + 3] = 50.0f;   // row 1: a tie, the lower index wins
    logits[vocab + 5 % vocab] = 50.0f;
    std::vector<GpuSamplingParams> params(batch);
    for (auto& p : params) p.temperature = 0.0f;
    params[2].temperature = 0.7f;  // top_k == 1 is greedy too
    params[2].top_k = 1;
    const auto tokens = Sample(logits, vocab, params);
    for (int r = 0; r < batch; ++r) {
      const auto begin = logits.begin() + size_t(r) * vocab;
      const int expect = static_cast<int>(std::max_element(begin, begin + vocab) - begin);
      EXPECT_EQ(tokens[r], expect) << "vocab " << vocab << " row " << r;
    }
  }
}

TEST_F(CudaSamplerTest, SeededDrawIgnoresBatchComposition) {
  auto rng = Rng(22);
  const int vocab = 32000;
  const auto row = RandomLogits(rng, vocab);
  GpuSamplingParams p;
  p.temperature = 0.9f;
  p.top_k = 200;
  p.top_p = 0.95f;
  p.seed = 0x1234567890abcdefull;
  p.step = 17;
  const int32_t alone = Sample(row, vocab, {p})[0];
  for (int position : {0, 3, 6}) {
    std::vector<float> logits;
    std::vector<GpuSamplingParams> params;
    for (int r = 0; r < 7; ++r) {
      const auto other = r == position ? row : RandomLogits(rng, vocab);
      logits.insert(logits.end(), other.begin(), other.end());
      GpuSamplingParams q;
      q.temperature = 0.5f + 0.1f * r;
      q.seed = 1000 + r;
      params.push_back(r == position ? p : q);
    }
    EXPECT_EQ(Sample(logits, vocab, params)[position], alone) << "at batch position " << position;
  }
  EXPECT_EQ(Sample(row, vocab, {p})[0], alone) << "same seed, second run";
  // Different seeds or steps do move the draw.
  std::set<int32_t> seen;
  for (uint64_t s = 0; s < 32; ++s) {
    GpuSamplingParams q = p;
    q.seed = s;
    q.top_k = 0;
    q.top_p = 1.0f;
    q.temperature = 2.0f;
    seen.insert(Sample(row, vocab, {q})[0]);
  }
  EXPECT_GT(seen.size(), 8u);
}

// Allowed set for each filter computed on the host in double precision, with a small margin
// on the side of allowing (the GPU sums in fp32).
TEST_F(CudaSamplerTest, FiltersNeverPickExcludedTokens) {
  auto rng = Rng(33);
  const int vocab = 5000, rows = 256;
  const auto row = RandomLogits(rng, vocab, 2.0f);
  const float temperature = 0.8f;
  std::vector<double> prob(vocab);
  const double mx = *std::max_element(row.begin(), row.end());
  double z = 0;
  for (int i = 0; i < vocab; ++i) z += prob[i] = std::exp((row[i] - mx) / temperature);
  for (auto& v : prob) v /= z;
  std::vector<int> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });

  struct Case {
    const char* name;
    GpuSamplingParams p;
    std::vector<bool> allowed;
  };
  std::vector<Case> cases;
  {
    Case c{"top_k 20", {}, std::vector<bool>(vocab, false)};
    c.p.top_k = 20;
    for (int i = 0; i < 20; ++i) c.allowed[order[i]] = true;
    cases.push_back(c);
  }
  {
    Case c{"top_p 0.6", {}, std::vector<bool>(vocab, false)};
    c.p.top_p = 0.6f;
    double cum = 0;
    for (int i = 0; i < vocab && cum < 0.6 + 1e-4; ++i) {
      c.allowed[order[i]] = true;
      cum += prob[order[i]];
    }
    cases.push_back(c);
  }
  {
    Case c{"min_p 0.2", {}, std::vector<bool>(vocab, false)};
    c.p.min_p = 0.2f;
    const double pmax = prob[order[0]];
    for (int i = 0; i < vocab; ++i) c.allowed[i] = prob[i] >= 0.2 * pmax * (1 - 1e-4);
    cases.push_back(c);
  }
  {
    Case c{"top_k 50 + top_p 0.3", {}, std::vector<bool>(vocab, false)};
    c.p.top_k = 50;
    c.p.top_p = 0.3f;
    double top50 = 0;
    for (int i = 0; i < 50; ++i) top50 += prob[order[i]];
    double cum = 0;
    for (int i = 0; i < 50 && cum < 0.3 * top50 * (1 + 1e-4); ++i) {
      c.allowed[order[i]] = true;
      cum += prob[order[i]];
    }
    cases.push_back(c);
  }
  for (auto& c : cases) {
    std::vector<float> logits;
    std::vector<GpuSamplingParams> params;
    for (int r = 0; r < rows; ++r) {
      logits.insert(logits.end(), row.begin(), row.end());
      GpuSamplingParams p = c.p;
      p.temperature = temperature;
      p.seed = 77;
      p.step = static_cast<uint64_t>(r);
      params.push_back(p);
    }
    const auto tokens = Sample(logits, vocab, params);
    std::set<int32_t> distinct;
    for (int r = 0; r < rows; ++r) {
      ASSERT_TRUE(tokens[r] >= 0 && tokens[r] < vocab) << c.name;
      EXPECT_TRUE(c.allowed[tokens[r]]) << c.name << ": picked excluded token " << tokens[r];
      distinct.insert(tokens[r]);
    }
    EXPECT_GT(distinct.size(), 1u) << c.name << ": the filter left no randomness";
  }
}

TEST_F(CudaSamplerTest, DrawsFollowTheDistribution) {
  Rng(44);
  const std::vector<double> expect = {0.1, 0.2, 0.3, 0.4};
  std::vector<float> row;
  for (double p : expect) row.push_back(static_cast<float>(std::log(p)));
  const int rows = 4000;
  std::vector<float> logits;
  std::vector<GpuSamplingParams> params;
  for (int r = 0; r < rows; ++r) {
    logits.insert(logits.end(), row.begin(), row.end());
    GpuSamplingParams p;
    p.seed = 44;
    p.step = static_cast<uint64_t>(r);
    params.push_back(p);
  }
  const auto tokens = Sample(logits, 4, params);
  std::vector<int> counts(4, 0);
  for (int32_t t : tokens) {
    ASSERT_TRUE(t >= 0 && t < 4);
    ++counts[t];
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(counts[i] / double(rows), expect[i], 0.03) << "token " << i;
  }
}

}  // namespace
}  // namespace tandem::gpu_test
