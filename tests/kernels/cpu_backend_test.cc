// CpuBackend ops (all but Matmul and Attention, which have their own files) against plain
// double-precision references, for every weight dtype, with guard regions around outputs.
#include "kernels/cpu/cpu_backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/kernels/kernel_test_util.h"

namespace tandem {
namespace {

using testing::GuardedF32;
using testing::HostTensor;
using testing::kAllDTypes;
using testing::MakeCpuBackend;
using testing::Rng;

TEST(CpuBackendTest, DescribesItself) {
  auto b = MakeCpuBackend();
  EXPECT_EQ(b->name(), "cpu");
  EXPECT_EQ(b->activation_dtype(), DType::kF32);
  EXPECT_EQ(b->kv_cache_dtype(), DType::kF32);
  EXPECT_EQ(b->kv_cache_budget_bytes(), size_t{2} << 30);
  BackendOptions options;
  options.kv_cache_bytes = 12345;
  auto custom = CreateBackend("cpu", options);
  ASSERT_TRUE(custom.ok());
  EXPECT_EQ((*custom)->kv_cache_budget_bytes(), 12345u);
  options.num_threads = -1;
  EXPECT_EQ(CreateBackend("cpu", options).status().code(), StatusCode::kInvalidArgument);
}

TEST(CpuBackendTest, AllocatesAlignedZeroedMemoryAndCopies) {
  auto b = MakeCpuBackend();
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{1000}, size_t{1} << 20}) {
    auto buf = b->Allocate(bytes);
    ASSERT_TRUE(buf.ok()) << buf.status().ToString();
    ASSERT_NE(buf->data(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buf->data()) % 64, 0u);
    EXPECT_EQ(buf->bytes(), bytes);
    const auto* p = static_cast<const uint8_t*>(buf->data());
    EXPECT_TRUE(std::all_of(p, p + bytes, [](uint8_t v) { return v == 0; }));
  }
  std::vector<int> src(100);
  std::iota(src.begin(), src.end(), 1);
  auto buf = b->Allocate(src.size() * sizeof(int));
  ASSERT_TRUE(buf.ok());
  ASSERT_TRUE(b->CopyToDevice(buf->data(), src.data(), src.size() * sizeof(int)).ok());
  std::vector<int> back(src.size());
  ASSERT_TRUE(b->CopyToHost(back.data(), buf->data(), back.size() * sizeof(int)).ok());
  ASSERT_TRUE(b->Synchronize().ok());
  EXPECT_EQ(back, src);
}

TEST(CpuBackendTest, UploadWeightIsZeroCopy) {
  auto b = MakeCpuBackend();
  std::vector<uint16_t> host(6 * 4, 0x3f80);
  TensorView view{host.data(), DType::kBF16, 6, 4};
  auto w = b->UploadWeight(view);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->view.data, host.data());
  EXPECT_EQ(w->view.dtype, DType::kBF16);
  EXPECT_EQ(w->view.rows, 6);
  EXPECT_EQ(w->view.cols, 4);
  EXPECT_FALSE(static_cast<bool>(w->storage));
}

TEST(CpuBackendTest, EmbeddingWidensRows) {
  Rng rng(101);
  auto b = MakeCpuBackend();
  for (DType t : kAllDTypes) {
    for (int64_t dim : {1, 13, 64, 768}) {
      const int64_t vocab = 50;
      HostTensor table(rng.NonZeros(vocab * dim), t, vocab, dim);
      std::vector<int32_t> ids = {0, 49, 7, 7, 23};
      GuardedF32 out(5, dim);
      ASSERT_TRUE(b->Embedding(table.view(), ids.data(), out.view()).ok());
      for (int i = 0; i < 5; ++i) {
        for (int64_t c = 0; c < dim; ++c) {
          ASSERT_EQ(out.at(i, c), static_cast<float>(table.at(ids[i], c))) << DTypeName(t);
        }
      }
      EXPECT_TRUE(out.GuardsIntact());
    }
  }
  HostTensor table(rng.NonZeros(8), DType::kF32, 4, 2);
  GuardedF32 out(1, 2);
  const int32_t bad = 4;
  Status s = b->Embedding(table.view(), &bad, out.view());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("ids[0] = 4"), std::string::npos) << s.message();
}

// HF LlamaRMSNorm in double: w * x / sqrt(mean(x^2) + eps).
std::vector<double> RefRmsNorm(const std::vector<float>& x, const HostTensor& w, int64_t n,
                               int64_t dim, double eps) {
  std::vector<double> out(x.size());
  for (int64_t t = 0; t < n; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[t * dim + i]) * x[t * dim + i];
    const double r = 1.0 / std::sqrt(ss / dim + eps);
    for (int64_t i = 0; i < dim; ++i) out[t * dim + i] = w.at(i) * x[t * dim + i] * r;
  }
  return out;
}

TEST(CpuBackendTest, RmsNormMatchesReference) {
  Rng rng(202);
  auto b = MakeCpuBackend();
  for (DType t : kAllDTypes) {
    for (int64_t dim : {1, 7, 8, 64, 100, 768}) {
      for (int64_t n : {1, 5, 64}) {
        const auto x = rng.NonZeros(n * dim, 3.0f);
        HostTensor w(rng.NonZeros(dim), t, 1, dim);
        GuardedF32 xin(n, dim), out(n, dim);
        xin.Fill(x);
        ASSERT_TRUE(b->RmsNorm(xin.view(), w.view(), 1e-5f, out.view()).ok());
        const auto ref = RefRmsNorm(x, w, n, dim, 1e-5);
        for (int64_t i = 0; i < n * dim; ++i) {
          ASSERT_NEAR(out.data()[i], ref[i], 2e-6 * (1 + std::abs(ref[i])))
              << DTypeName(t) << " dim " << dim << " i " << i;
        }
        EXPECT_TRUE(out.GuardsIntact());
      }
    }
  }
}

TEST(CpuBackendTest, AddRmsNormUpdatesResidual) {
  Rng rng(303);
  auto b = MakeCpuBackend();
  for (DType t : kAllDTypes) {
    for (int64_t dim : {9, 768}) {
      const int64_t n = 37;
      const auto res0 = rng.NonZeros(n * dim), x = rng.NonZeros(n * dim);
      HostTensor w(rng.NonZeros(dim), t, 1, dim);
      GuardedF32 res(n, dim), xin(n, dim), out(n, dim);
      res.Fill(res0);
      xin.Fill(x);
      ASSERT_TRUE(b->AddRmsNorm(res.view(), xin.view(), w.view(), 1e-6f, out.view()).ok());
      std::vector<float> sum(n * dim);
      for (int64_t i = 0; i < n * dim; ++i) {
        sum[i] = res0[i] + x[i];
        ASSERT_EQ(res.data()[i], sum[i]);
      }
      const auto ref = RefRmsNorm(sum, w, n, dim, 1e-6);
      for (int64_t i = 0; i < n * dim; ++i) {
        ASSERT_NEAR(out.data()[i], ref[i], 2e-6 * (1 + std::abs(ref[i])));
      }
      EXPECT_TRUE(res.GuardsIntact() && out.GuardsIntact());
    }
  }
}

TEST(CpuBackendTest, SiluMulMatchesReference) {
  Rng rng(404);
  auto b = MakeCpuBackend();
  for (int64_t cols : {1, 7, 8, 9, 100, 2048}) {
    const int64_t n = cols == 2048 ? 33 : 3;
    auto gate = rng.NonZeros(n * cols, 12.0f);
    gate[0] = -95.0f;  // far beyond exp's range on both sides
    if (gate.size() > 1) gate[1] = 95.0f;
    const auto up = rng.NonZeros(n * cols, 2.0f);
    GuardedF32 g(n, cols), u(n, cols), out(n, cols);
    g.Fill(gate);
    u.Fill(up);
    ASSERT_TRUE(b->SiluMul(g.view(), u.view(), out.view()).ok());
    for (int64_t i = 0; i < n * cols; ++i) {
      const double ref = gate[i] / (1.0 + std::exp(-double(gate[i]))) * up[i];
      ASSERT_NEAR(out.data()[i], ref, 1e-6 * std::abs(ref) + 1e-30) << "gate " << gate[i];
    }
    EXPECT_TRUE(out.GuardsIntact());
  }
}

TEST(CpuBackendTest, GatherRowsCopiesAndChecksIndices) {
  Rng rng(505);
  auto b = MakeCpuBackend();
  for (DType t : kAllDTypes) {
    HostTensor x(rng.NonZeros(10 * 6), t, 10, 6);
    std::vector<int32_t> idx = {9, 0, 3, 3};
    HostTensor out(std::vector<float>(4 * 6, 0.0f), t, 4, 6);
    ASSERT_TRUE(b->GatherRows(x.view(), idx.data(), out.view()).ok());
    for (int i = 0; i < 4; ++i) {
      for (int c = 0; c < 6; ++c) ASSERT_EQ(out.at(i, c), x.at(idx[i], c));
    }
  }
  HostTensor x(rng.NonZeros(4), DType::kF32, 2, 2);
  GuardedF32 out(1, 2);
  const int32_t bad = -1;
  EXPECT_EQ(b->GatherRows(x.view(), &bad, out.view()).code(), StatusCode::kInvalidArgument);
  HostTensor wrong(rng.NonZeros(2), DType::kBF16, 1, 2);
  const int32_t ok_idx = 0;
  EXPECT_EQ(b->GatherRows(x.view(), &ok_idx, wrong.view()).code(), StatusCode::kInvalidArgument);
}

TEST(CpuBackendTest, RopeMatchesHfRotateHalf) {
  Rng rng(606);
  auto b = MakeCpuBackend();
  for (int hd : {8, 64, 128}) {
    const int qh = 4, kh = 2;
    std::vector<float> inv_freq(hd / 2);
    for (int j = 0; j < hd / 2; ++j) {
      inv_freq[j] = 1.0f / std::pow(10000.0f, static_cast<float>(2 * j) / static_cast<float>(hd));
    }
    const std::vector<int32_t> pos = {0, 1, 17, 1000, 4095, 32767, 123456};
    const int64_t n = static_cast<int64_t>(pos.size());
    const auto q0 = rng.NonZeros(n * qh * hd), k0 = rng.NonZeros(n * kh * hd);
    GuardedF32 q(n, qh * hd), k(n, kh * hd);
    q.Fill(q0);
    k.Fill(k0);
    ASSERT_TRUE(b->Rope(q.view(), k.view(), pos.data(), inv_freq.data(), hd).ok());
    auto check = [&](const GuardedF32& got, const std::vector<float>& x0, int heads) {
      for (int64_t t = 0; t < n; ++t) {
        for (int h = 0; h < heads; ++h) {
          for (int j = 0; j < hd / 2; ++j) {
            const float angle = static_cast<float>(pos[t]) * inv_freq[j];  // fp32, as torch
            const double c = std::cos(double(angle)), s = std::sin(double(angle));
            const int64_t base = t * heads * hd + h * hd;
            const double x1 = x0[base + j], x2 = x0[base + j + hd / 2];
            ASSERT_NEAR(got.at(t, h * hd + j), x1 * c - x2 * s, 2e-6) << "pos " << pos[t];
            ASSERT_NEAR(got.at(t, h * hd + j + hd / 2), x2 * c + x1 * s, 2e-6);
          }
        }
      }
    };
    check(q, q0, qh);
    check(k, k0, kh);
    EXPECT_TRUE(q.GuardsIntact() && k.GuardsIntact());
  }
  GuardedF32 q(1, 6), k(1, 6);
  const int32_t p = 0;
  const float f[3] = {1, 1, 1};
  EXPECT_EQ(b->Rope(q.view(), k.view(), &p, f, 3).code(), StatusCode::kInvalidArgument);
  const int32_t neg = -2;
  EXPECT_EQ(b->Rope(q.view(), k.view(), &neg, f, 6).code(), StatusCode::kInvalidArgument);
}

TEST(CpuBackendTest, WriteKvPlacesRowsInPagedLayout) {
  Rng rng(707);
  auto b = MakeCpuBackend();
  const int blocks = 5, kvh = 3, bs = 4, hd = 6;
  std::vector<float> kc(blocks * kvh * bs * hd, 0.0f), vc(kc.size(), 0.0f);
  KvCacheView cache{kc.data(), vc.data(), DType::kF32, blocks, kvh, bs, hd};
  const std::vector<int64_t> slots = {19, 0, 7, 8, 13};
  const int64_t n = static_cast<int64_t>(slots.size());
  auto k = rng.NonZeros(n * kvh * hd), v = rng.NonZeros(n * kvh * hd);
  TensorView kview{k.data(), DType::kF32, n, kvh * hd}, vview{v.data(), DType::kF32, n, kvh * hd};
  ASSERT_TRUE(b->WriteKv(kview, vview, slots.data(), cache).ok());
  std::vector<bool> written(kc.size(), false);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t blk = slots[t] / bs, off = slots[t] % bs;
    for (int h = 0; h < kvh; ++h) {
      for (int d = 0; d < hd; ++d) {
        const int64_t at = ((blk * kvh + h) * bs + off) * hd + d;
        ASSERT_EQ(kc[at], k[t * kvh * hd + h * hd + d]);
        ASSERT_EQ(vc[at], v[t * kvh * hd + h * hd + d]);
        written[at] = true;
      }
    }
  }
  for (size_t i = 0; i < kc.size(); ++i) {
    if (!written[i]) {
      ASSERT_TRUE(kc[i] == 0.0f && vc[i] == 0.0f) << i;
    }
  }
  const int64_t bad = blocks * bs;
  Status s = b->WriteKv(kview.RowSlice(0, 1), vview.RowSlice(0, 1), &bad, cache);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("slot_mapping[0] = 20"), std::string::npos) << s.message();
}

TEST(CpuBackendTest, RejectsMismatchedShapesAndDtypes) {
  Rng rng(808);
  auto b = MakeCpuBackend();
  HostTensor x(rng.NonZeros(12), DType::kF32, 3, 4);
  HostTensor x_bf16(rng.NonZeros(12), DType::kBF16, 3, 4);
  HostTensor w(rng.NonZeros(4), DType::kF32, 1, 4);
  HostTensor w5(rng.NonZeros(5), DType::kF32, 1, 5);
  GuardedF32 out(3, 4), out_wide(3, 5);
  EXPECT_EQ(b->RmsNorm(x_bf16.view(), w.view(), 1e-5f, out.view()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(b->RmsNorm(x.view(), w5.view(), 1e-5f, out.view()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(b->RmsNorm(x.view(), w.view(), 1e-5f, out_wide.view()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(b->SiluMul(x.view(), x.view(), out_wide.view()).code(),
            StatusCode::kInvalidArgument);
  TensorView null_x{nullptr, DType::kF32, 3, 4};
  EXPECT_EQ(b->SiluMul(null_x, x.view(), out.view()).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(out.GuardsIntact());
}

}  // namespace
}  // namespace tandem
