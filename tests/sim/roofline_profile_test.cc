#include "sim/roofline_profile.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

// Llama-3.1-8B's shapes.
ModelConfig Llama8B() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = 128256;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_layers = 32;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  return c;
}

RooflineHardware H100() {
  RooflineHardware hw;
  hw.name = "H100";
  hw.tflops = 989;
  hw.mem_gbps = 3350;
  hw.link_gbps = 50;
  hw.interconnect_gbps = 450;
  return hw;
}

TEST(RooflineProfileTest, DecodeIsBandwidthBoundAndPrefillComputeBound) {
  const ModelConfig c = Llama8B();
  auto p = RooflineProfile(c, H100());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const double params = static_cast<double>(c.NumParameters());
  EXPECT_NEAR(params / 1e9, 8.03, 0.05);
  // Batch 1 reads 16 GB of weights at 80% of 3.35 TB/s: about 6 ms.
  const double weights_us = params * 2 / (3350e3 * 0.8);
  EXPECT_NEAR(p->DecodeStepUs(1, 0), weights_us, 0.05 * weights_us);
  // A long context adds its KV: 128 KiB per token (32 layers x 8 heads x 128 x 2 x 2 bytes).
  EXPECT_EQ(p->kv_bytes_per_token, 131072);
  EXPECT_NEAR(p->DecodeStepUs(1, 100000) - p->DecodeStepUs(1, 0), 100000.0 * 131072 / (3350e3 * 0.8), 1.0);
  // 4096 prompt tokens: 2 x 8e9 x 4096 FLOP at 60% of 989 TFLOP/s, plus attention.
  const double compute_us = 2 * params * 4096 / (989e6 * 0.6);
  EXPECT_GT(p->PrefillUs(4096), compute_us);
  EXPECT_LT(p->PrefillUs(4096), 1.3 * compute_us);
  // A handful of tokens costs what reading the weights costs, and the regimes meet at the ridge.
  EXPECT_NEAR(p->PrefillUs(8), weights_us, 0.05 * weights_us);
  const int64_t ridge = p->prefill.front().max_tokens;
  EXPECT_NEAR(p->PrefillUs(ridge), p->PrefillUs(ridge + 1), 0.02 * p->PrefillUs(ridge));
  // 50 GB/s: a 1000-token prompt's 131 MB move in about 2.6 ms.
  EXPECT_NEAR(p->TransferUs(1000), 1000.0 * 131072 / 50e3 + 32 * 5, 1.0);
}

TEST(RooflineProfileTest, TensorParallelismDividesTheWorkAndAddsAllReduces) {
  RooflineHardware tp2 = H100();
  tp2.tp = 2;
  auto one = RooflineProfile(Llama8B(), H100());
  auto two = RooflineProfile(Llama8B(), tp2);
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_LT(two->DecodeStepUs(1, 0), 0.6 * one->DecodeStepUs(1, 0));
  EXPECT_GT(two->DecodeStepUs(1, 0), 0.5 * one->DecodeStepUs(1, 0));  // the all-reduces cost something
  EXPECT_LT(two->PrefillUs(8192), 0.6 * one->PrefillUs(8192));
  EXPECT_EQ(two->threads, 2);
}

TEST(RooflineProfileTest, TheProfileRoundTripsThroughItsFile) {
  auto p = RooflineProfile(Llama8B(), H100());
  ASSERT_TRUE(p.ok());
  auto back = ParseLatencyProfile(p->ToJson(), "test");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_DOUBLE_EQ(back->DecodeStepUs(64, 64 * 2000), p->DecodeStepUs(64, 64 * 2000));
  EXPECT_DOUBLE_EQ(back->PrefillUs(3000), p->PrefillUs(3000));
}

TEST(RooflineProfileTest, DeviceMemoryGivesTheKvPool) {
  RooflineHardware hw = H100();
  auto none = RooflineProfile(Llama8B(), hw);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->kv_cache_gib, 0);  // not said
  hw.mem_gib = 80;
  auto one = RooflineProfile(Llama8B(), hw);
  ASSERT_TRUE(one.ok());
  const double weights_gib = static_cast<double>(Llama8B().NumParameters()) * 2 / (1ull << 30);
  EXPECT_NEAR(one->kv_cache_gib, 72 - weights_gib, 1e-9);  // 90% of 80 GiB, less 15 GiB of weights
  hw.tp = 2;
  auto two = RooflineProfile(Llama8B(), hw);
  ASSERT_TRUE(two.ok());
  EXPECT_NEAR(two->kv_cache_gib, 144 - weights_gib, 1e-9);
  auto back = ParseLatencyProfile(two->ToJson(), "test");
  ASSERT_TRUE(back.ok());
  EXPECT_DOUBLE_EQ(back->kv_cache_gib, two->kv_cache_gib);
  hw.tp = 1;
  hw.mem_gib = 16;  // 14.4 usable GiB < 15 GiB of weights
  auto full = RooflineProfile(Llama8B(), hw);
  EXPECT_EQ(full.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(full.status().message().find("no room for a KV pool"), std::string::npos);
}

TEST(RooflineProfileTest, MissingNumbersAreClearErrors) {
  RooflineHardware none;
  EXPECT_EQ(RooflineProfile(Llama8B(), none).status().code(), StatusCode::kInvalidArgument);
  RooflineHardware tp_without_link = H100();
  tp_without_link.tp = 4;
  tp_without_link.interconnect_gbps = 0;
  EXPECT_EQ(RooflineProfile(Llama8B(), tp_without_link).status().code(), StatusCode::kInvalidArgument);
  RooflineHardware bad_mfu = H100();
  bad_mfu.mfu = 1.5;
  EXPECT_EQ(RooflineProfile(Llama8B(), bad_mfu).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RooflineProfile(ModelConfig{}, H100()).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
