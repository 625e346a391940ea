// Differential test: every Backend op on the CUDA backend against the reference (the CPU backend,
// or fp32 loops in the standalone build) on the same bf16-rounded inputs. Outputs are poisoned
// and guarded; the bound is ||cuda - ref|| / ||ref|| <= 1e-2. Seeds are fixed and printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda_factory.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/reference_backend.h"

namespace tandem::gpu_test {
namespace {

constexpr double kTolerance = 1e-2;

class CudaDiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TANDEM_SKIP_WITHOUT_GPU();
    auto cuda = CreateCudaBackend({});
    ASSERT_TRUE(cuda.ok()) << cuda.status().ToString();
    cuda_ = std::move(cuda).value();
    auto ref = CreateReferenceBackend();
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    ref_ = std::move(ref).value();
  }
  std::mt19937 Rng(uint32_t seed) {
    std::printf("[ seed     ] %s: %u (reference: %s)\n",
                ::testing::UnitTest::GetInstance()->current_test_info()->name(), seed,
                ReferenceName().c_str());
    return std::mt19937(seed);
  }
  // An activation tensor on each backend holding `values`.
  struct Pair {
    std::unique_ptr<GuardedTensor> cuda, ref;
  };
  Pair Make(int64_t rows, int64_t cols, const std::vector<float>* values) {
    Pair p{std::make_unique<GuardedTensor>(*cuda_, cuda_->activation_dtype(), rows, cols),
           std::make_unique<GuardedTensor>(*ref_, ref_->activation_dtype(), rows, cols)};
    EXPECT_TRUE(p.cuda->status().ok()) << p.cuda->status().ToString();
    EXPECT_TRUE(p.ref->status().ok()) << p.ref->status().ToString();
    if (values != nullptr) {
      EXPECT_TRUE(p.cuda->Fill(*values).ok());
      EXPECT_TRUE(p.ref->Fill(*values).ok());
    }
    return p;
  }
  // Checks the outputs agree and that neither backend wrote outside them.
  void ExpectClose(const Pair& p, const std::string& what, double tol = kTolerance) {
    ASSERT_OK(cuda_->Synchronize());
    ASSERT_OK(ref_->Synchronize());
    const double err = RelL2(p.cuda->Read(), p.ref->Read());
    EXPECT_LE(err, tol) << what;
    EXPECT_TRUE(p.cuda->GuardsIntact()) << what << ": cuda wrote outside its output";
    EXPECT_TRUE(p.ref->GuardsIntact()) << what << ": reference wrote outside its output";
  }

  std::unique_ptr<Backend> cuda_, ref_;
};

TEST_F(CudaDiffTest, Embedding) {
  auto rng = Rng(101);
  const int64_t vocab = 1000, hidden = 256, n = 37;
  const auto table_host = RandomBf16Values(rng, vocab * hidden);
  const TensorView table{const_cast<float*>(table_host.data()), DType::kF32, vocab, hidden};
  auto ct = cuda_->UploadWeight(table);
  auto rt = ref_->UploadWeight(table);
  ASSERT_TRUE(ct.ok() && rt.ok());
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
  ids[0] = 0;
  ids[1] = static_cast<int32_t>(vocab - 1);
  auto cid = Upload(*cuda_, ids);
  auto rid = Upload(*ref_, ids);
  ASSERT_TRUE(cid.ok() && rid.ok());
  auto out = Make(n, hidden, nullptr);
  ASSERT_OK(cuda_->Embedding(ct->view, static_cast<int32_t*>(cid->data()), out.cuda->view()));
  ASSERT_OK(ref_->Embedding(rt->view, static_cast<int32_t*>(rid->data()), out.ref->view()));
  ExpectClose(out, "embedding", 0.0);  // a gather is exact
}

TEST_F(CudaDiffTest, EmbeddingBadIdIsReported) {
  const std::vector<float> table_host(16 * 8, 1.0f);
  auto t = cuda_->UploadWeight({const_cast<float*>(table_host.data()), DType::kF32, 16, 8});
  ASSERT_TRUE(t.ok());
  auto ids = Upload(*cuda_, std::vector<int32_t>{3, 16});
  ASSERT_TRUE(ids.ok());
  GuardedTensor out(*cuda_, DType::kBF16, 2, 8);
  ASSERT_OK(cuda_->Embedding(t->view, static_cast<int32_t*>(ids->data()), out.view()));
  const Status st = cuda_->Synchronize();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  ASSERT_OK(cuda_->Synchronize());  // the flag is cleared once reported
}

TEST_F(CudaDiffTest, RmsNormAndAddRmsNorm) {
  auto rng = Rng(202);
  for (int64_t dim : {64, 100, 2048, 4096}) {  // 100: the unaligned scalar path
    for (DType wt : {DType::kF32, DType::kBF16}) {
      const int64_t n = 7;
      const auto x = RandomBf16Values(rng, n * dim, 2.0f);
      const auto res = RandomBf16Values(rng, n * dim, 2.0f);
      const auto w_host = RandomBf16Values(rng, dim);
      const auto w_bytes = Encode(w_host, wt);
      const TensorView w{const_cast<uint8_t*>(w_bytes.data()), wt, 1, dim};
      auto cw = cuda_->UploadWeight(w);
      auto rw = ref_->UploadWeight(w);
      ASSERT_TRUE(cw.ok() && rw.ok());
      const std::string what =
          "dim " + std::to_string(dim) + " weight " + std::string(DTypeName(wt));
      auto in = Make(n, dim, &x);
      auto out = Make(n, dim, nullptr);
      ASSERT_OK(cuda_->RmsNorm(in.cuda->view(), cw->view, 1e-5f, out.cuda->view()));
      ASSERT_OK(ref_->RmsNorm(in.ref->view(), rw->view, 1e-5f, out.ref->view()));
      ExpectClose(out, "RmsNorm " + what);

      auto residual = Make(n, dim, &res);
      auto out2 = Make(n, dim, nullptr);
      ASSERT_OK(cuda_->AddRmsNorm(residual.cuda->view(), in.cuda->view(), cw->view, 1e-5f,
                                  out2.cuda->view()));
      ASSERT_OK(ref_->AddRmsNorm(residual.ref->view(), in.ref->view(), rw->view, 1e-5f,
                                 out2.ref->view()));
      ExpectClose(out2, "AddRmsNorm out " + what);
      ExpectClose(residual, "AddRmsNorm residual " + what);
    }
  }
}

TEST_F(CudaDiffTest, Matmul) {
  auto rng = Rng(303);
  struct Shape {
    int64_t m, n, k;
  };
  for (const Shape s :
       {Shape{1, 256, 128}, Shape{17, 384, 256}, Shape{64, 1000, 512}, Shape{300, 96, 2048}}) {
    for (DType out_t : {DType::kBF16, DType::kF32}) {
      for (int bias_mode = 0; bias_mode < 3; ++bias_mode) {  // none, BF16, F32
        for (DType w_t : {DType::kF32, DType::kF16, DType::kBF16}) {
          const auto x = RandomBf16Values(rng, s.m * s.k);
          const auto w_host = RandomBf16Values(rng, s.n * s.k, 0.1f);
          const auto w_bytes = Encode(w_host, w_t);
          const TensorView w{const_cast<uint8_t*>(w_bytes.data()), w_t, s.n, s.k};
          auto cw = cuda_->UploadWeight(w);
          auto rw = ref_->UploadWeight(w);
          ASSERT_TRUE(cw.ok() && rw.ok());
          const auto b_host = RandomBf16Values(rng, s.n);
          const DType b_t = bias_mode == 2 ? DType::kF32 : DType::kBF16;
          const auto b_bytes = Encode(b_host, b_t);
          const TensorView b{const_cast<uint8_t*>(b_bytes.data()), b_t, 1, s.n};
          auto cb = cuda_->UploadWeight(b);
          auto rb = ref_->UploadWeight(b);
          ASSERT_TRUE(cb.ok() && rb.ok());
          TensorView cbias = cb->view;
          if (bias_mode == 2) {  // keep an F32 bias F32 on the device too
            auto buf = Upload(*cuda_, b_host);
            ASSERT_TRUE(buf.ok());
            cbias = {buf->data(), DType::kF32, 1, s.n};
            cb->storage = std::move(buf).value();
          }
          auto in = Make(s.m, s.k, &x);
          GuardedTensor co(*cuda_, out_t, s.m, s.n);
          GuardedTensor ro(*ref_, out_t == DType::kBF16 ? ref_->activation_dtype() : DType::kF32,
                           s.m, s.n);
          ASSERT_OK(
              cuda_->Matmul(in.cuda->view(), cw->view, bias_mode ? &cbias : nullptr, co.view()));
          ASSERT_OK(
              ref_->Matmul(in.ref->view(), rw->view, bias_mode ? &rb->view : nullptr, ro.view()));
          ASSERT_OK(cuda_->Synchronize());
          char what[160];
          std::snprintf(what, sizeof(what), "m%lld n%lld k%lld out %s bias %d w %s",
                        static_cast<long long>(s.m), static_cast<long long>(s.n),
                        static_cast<long long>(s.k), DTypeName(out_t).data(), bias_mode,
                        DTypeName(w_t).data());
          EXPECT_LE(RelL2(co.Read(), ro.Read()), kTolerance) << what;
          EXPECT_TRUE(co.GuardsIntact()) << what;
        }
      }
    }
  }
}

TEST_F(CudaDiffTest, Rope) {
  auto rng = Rng(404);
  for (int head_dim : {64, 128}) {
    const int64_t n = 9;
    const int heads = 4, kv_heads = 2;
    const auto q = RandomBf16Values(rng, n * heads * head_dim);
    const auto k = RandomBf16Values(rng, n * kv_heads * head_dim);
    std::vector<int32_t> pos(n);
    for (auto& p : pos) p = static_cast<int32_t>(rng() % 8192);
    pos[0] = 0;
    std::vector<float> inv_freq(head_dim / 2);
    for (int j = 0; j < head_dim / 2; ++j) inv_freq[j] = std::pow(500000.0f, -2.0f * j / head_dim);
    auto cp = Upload(*cuda_, pos);
    auto rp = Upload(*ref_, pos);
    auto cf = Upload(*cuda_, inv_freq);
    auto rf = Upload(*ref_, inv_freq);
    ASSERT_TRUE(cp.ok() && rp.ok() && cf.ok() && rf.ok());
    auto tq = Make(n, heads * head_dim, &q);
    auto tk = Make(n, kv_heads * head_dim, &k);
    ASSERT_OK(cuda_->Rope(tq.cuda->view(), tk.cuda->view(), static_cast<int32_t*>(cp->data()),
                          static_cast<float*>(cf->data()), head_dim));
    ASSERT_OK(ref_->Rope(tq.ref->view(), tk.ref->view(), static_cast<int32_t*>(rp->data()),
                         static_cast<float*>(rf->data()), head_dim));
    ExpectClose(tq, "rope q head_dim " + std::to_string(head_dim));
    ExpectClose(tk, "rope k head_dim " + std::to_string(head_dim));
  }
}

TEST_F(CudaDiffTest, SiluMulAndGatherRows) {
  auto rng = Rng(505);
  for (int64_t inter : {8, 1000, 8192}) {
    const int64_t n = 5;
    const auto g = RandomBf16Values(rng, n * inter, 4.0f);
    const auto u = RandomBf16Values(rng, n * inter, 2.0f);
    auto tg = Make(n, inter, &g);
    auto tu = Make(n, inter, &u);
    auto out = Make(n, inter, nullptr);
    ASSERT_OK(cuda_->SiluMul(tg.cuda->view(), tu.cuda->view(), out.cuda->view()));
    ASSERT_OK(ref_->SiluMul(tg.ref->view(), tu.ref->view(), out.ref->view()));
    ExpectClose(out, "silu_mul inter " + std::to_string(inter));

    const std::vector<int32_t> idx = {4, 0, 2, 2};
    auto ci = Upload(*cuda_, idx);
    auto ri = Upload(*ref_, idx);
    ASSERT_TRUE(ci.ok() && ri.ok());
    auto gathered = Make(static_cast<int64_t>(idx.size()), inter, nullptr);
    ASSERT_OK(cuda_->GatherRows(tg.cuda->view(), static_cast<int32_t*>(ci->data()),
                                gathered.cuda->view()));
    ASSERT_OK(
        ref_->GatherRows(tg.ref->view(), static_cast<int32_t*>(ri->data()), gathered.ref->view()));
    ExpectClose(gathered, "gather inter " + std::to_string(inter), 0.0);
  }
}

}  // namespace
}  // namespace tandem::gpu_test
