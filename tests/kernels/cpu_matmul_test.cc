// Matmul on the CPU backend: both kernels (GEMV for small m, sgemm panels for large m) and both
// ISAs against a double-precision reference, plus batch invariance and path agreement.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "kernels/cpu/cpu_kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace tandem {
namespace {

using testing::GuardedF32;
using testing::HostTensor;
using testing::kAllDTypes;
using testing::MakeCpuBackend;
using testing::Rng;

struct Case {
  std::vector<float> x;
  HostTensor w;
  std::vector<float> bias;
  int64_t m, n, k;
};

Case MakeCase(Rng& rng, int64_t m, int64_t n, int64_t k, DType t) {
  return {rng.NonZeros(m * k), HostTensor(rng.NonZeros(n * k), t, n, k), rng.NonZeros(n), m, n, k};
}

// Checks out against sum_p x*w (+ bias) in double, with a bound from sum_p |x*w|.
void ExpectMatches(const Case& c, const float* out, bool with_bias, const std::string& what) {
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) {
      double ref = with_bias ? c.bias[j] : 0.0, mag = std::abs(ref);
      for (int64_t p = 0; p < c.k; ++p) {
        const double prod = double(c.x[i * c.k + p]) * c.w.at(j, p);
        ref += prod;
        mag += std::abs(prod);
      }
      ASSERT_NEAR(out[i * c.n + j], ref, 1e-6 * mag + 1e-6)
          << what << " m=" << c.m << " n=" << c.n << " k=" << c.k << " at (" << i << ", " << j << ")";
    }
  }
}

TEST(CpuMatmulTest, MatchesReferenceAcrossShapesDtypesAndBias) {
  Rng rng(1001);
  auto b = MakeCpuBackend();
  const int64_t shapes[][2] = {{1, 1}, {33, 77}, {64, 128}, {130, 257}, {9, 16}};
  for (DType t : kAllDTypes) {
    for (int64_t m : {1, 3, 8, 17, 64, 200}) {
      for (const auto& nk : shapes) {
        for (bool with_bias : {false, true}) {
          Case c = MakeCase(rng, m, nk[0], nk[1], t);
          GuardedF32 x(m, c.k), out(m, c.n);
          x.Fill(c.x);
          TensorView bias{c.bias.data(), DType::kF32, 1, c.n};
          ASSERT_TRUE(b->Matmul(x.view(), c.w.view(), with_bias ? &bias : nullptr, out.view()).ok());
          ExpectMatches(c, out.data(), with_bias, std::string(DTypeName(t)));
          ASSERT_TRUE(out.GuardsIntact());
        }
      }
    }
  }
}

// OpenMP may give a parallel region fewer threads than asked (OMP_THREAD_LIMIT, OMP_DYNAMIC, a
// region inside another one): every output must still be computed. Here the kernels are called
// from inside a 2-thread region with nesting off, so their own regions get one thread each.
TEST(CpuMatmulTest, ATeamSmallerThanAskedStillComputesEveryColumn) {
  Rng rng(1002);
  omp_set_max_active_levels(1);
  for (int64_t m : {1, 64}) {  // the GEMV and the sgemm paths
    Case c = MakeCase(rng, m, 512, 256, DType::kBF16);
    std::vector<float> out(static_cast<size_t>(m * c.n), std::nanf(""));
#pragma omp parallel num_threads(2)
    {
#pragma omp single
      cpu::Matmul(c.x.data(), m, c.k, c.w.view().data, DType::kBF16, c.n, c.bias.data(), out.data(), 4);
    }
    ExpectMatches(c, out.data(), true, "nested m=" + std::to_string(m));
  }
}

TEST(CpuMatmulTest, AcceptsHalfPrecisionBias) {
  Rng rng(1002);
  auto b = MakeCpuBackend();
  for (DType bias_type : {DType::kBF16, DType::kF16}) {
    Case c = MakeCase(rng, 5, 40, 24, DType::kBF16);
    HostTensor bias(c.bias, bias_type, 1, c.n);
    for (int64_t j = 0; j < c.n; ++j) c.bias[j] = static_cast<float>(bias.at(j));
    GuardedF32 x(c.m, c.k), out(c.m, c.n);
    x.Fill(c.x);
    TensorView bv = bias.view();
    ASSERT_TRUE(b->Matmul(x.view(), c.w.view(), &bv, out.view()).ok());
    ExpectMatches(c, out.data(), true, "half bias");
  }
}

// Every (ISA, dtype) GEMV kernel against the reference, over all row-blocking remainders.
TEST(CpuMatmulTest, GemvKernelsOfEveryIsa) {
  Rng rng(1003);
  std::vector<std::pair<std::string, cpu::GemvRowsFn (*)(DType)>> isas = {{"avx2", &cpu::GemvRowsAvx2}};
  if (cpu::UseAvx512()) isas.push_back({"avx512", &cpu::GemvRowsAvx512});
  for (const auto& [name, get] : isas) {
    for (DType t : kAllDTypes) {
      for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 9}) {
        Case c = MakeCase(rng, m, 29, 53, t);
        GuardedF32 out(m, c.n);
        get(t)(c.x.data(), m, c.k, c.w.bytes.data(), c.bias.data(), out.data(), c.n, 0, c.n);
        ExpectMatches(c, out.data(), true, name + " " + std::string(DTypeName(t)));
        ASSERT_TRUE(out.GuardsIntact());
      }
    }
  }
}

// A token's output must not depend on the other tokens of its batch (decode vs prefill, batch
// of 1 vs batch of 17): bitwise within the GEMV path, 1e-5 relative across the two paths.
TEST(CpuMatmulTest, BatchInvarianceAndPathAgreement) {
  Rng rng(1004);
  auto b = MakeCpuBackend();
  const int64_t old_max = cpu::GemvMaxRows();
  for (DType t : kAllDTypes) {
    const int64_t m = 17, n = 96, k = 768;
    Case c = MakeCase(rng, m, n, k, t);
    TensorView x{c.x.data(), DType::kF32, m, k};
    std::vector<float> batched(m * n), gemm(m * n), single(n);
    cpu::SetGemvMaxRowsForTesting(1 << 30);  // force GEMV
    ASSERT_TRUE(b->Matmul(x, c.w.view(), nullptr, {batched.data(), DType::kF32, m, n}).ok());
    cpu::SetGemvMaxRowsForTesting(0);  // force sgemm
    ASSERT_TRUE(b->Matmul(x, c.w.view(), nullptr, {gemm.data(), DType::kF32, m, n}).ok());
    cpu::SetGemvMaxRowsForTesting(old_max);
    for (int64_t i = 0; i < m; ++i) {
      ASSERT_TRUE(b->Matmul(x.RowSlice(i, 1), c.w.view(), nullptr, {single.data(), DType::kF32, 1, n}).ok());
      for (int64_t j = 0; j < n; ++j) {
        ASSERT_EQ(single[j], batched[i * n + j]) << "row " << i << " col " << j;
        double norm = 0;
        for (int64_t p = 0; p < k; ++p) norm += std::abs(double(c.x[i * k + p]) * c.w.at(j, p));
        ASSERT_NEAR(gemm[i * n + j], batched[i * n + j], 1e-5 * norm / std::sqrt(double(k)) + 1e-6) << DTypeName(t);
      }
    }
  }
}

TEST(CpuMatmulTest, RejectsBadShapes) {
  Rng rng(1005);
  auto b = MakeCpuBackend();
  Case c = MakeCase(rng, 2, 3, 4, DType::kF32);
  TensorView x{c.x.data(), DType::kF32, 2, 4};
  GuardedF32 out(2, 3), wrong(2, 4);
  EXPECT_EQ(b->Matmul(x, c.w.view(), nullptr, wrong.view()).code(), StatusCode::kInvalidArgument);
  TensorView bad_x{c.x.data(), DType::kF32, 4, 2};
  EXPECT_EQ(b->Matmul(bad_x, c.w.view(), nullptr, out.view()).code(), StatusCode::kInvalidArgument);
  TensorView short_bias{c.bias.data(), DType::kF32, 1, 2};
  EXPECT_EQ(b->Matmul(x, c.w.view(), &short_bias, out.view()).code(), StatusCode::kInvalidArgument);
  TensorView aliased{c.x.data(), DType::kF32, 2, 3};
  EXPECT_EQ(b->Matmul(x, c.w.view(), nullptr, aliased).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(out.GuardsIntact() && wrong.GuardsIntact());
}

}  // namespace
}  // namespace tandem
