// Scalar dtype conversions of kernels/dtype.h, checked exhaustively against the F16C hardware
// conversions and against bf16 rounding computed from first principles.
#include "kernels/dtype.h"

#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <limits>
#include <random>

namespace tandem {
namespace {

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float FromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// The hardware oracle (F16C is part of the x86-64-v3 floor; tests build without -march).
__attribute__((target("f16c"))) float HwF16ToF32(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) uint16_t HwF32ToF16(float f) {
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

TEST(DTypeTest, NamesAndSizes) {
  EXPECT_EQ(DTypeName(DType::kF32), "F32");
  EXPECT_EQ(DTypeName(DType::kF16), "F16");
  EXPECT_EQ(DTypeName(DType::kBF16), "BF16");
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
}

TEST(DTypeTest, F16ToF32MatchesHardwareForEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float ours = F16ToF32(static_cast<uint16_t>(h));
    const float hw = HwF16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(hw)) {
      ASSERT_TRUE(std::isnan(ours)) << h;
    } else {
      ASSERT_EQ(Bits(ours), Bits(hw)) << "f16 bits " << h;
    }
  }
}

TEST(DTypeTest, F16RoundTripsIncludingSubnormalsAndInfinities) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t v = static_cast<uint16_t>(h);
    const float f = F16ToF32(v);
    if (std::isnan(f)) {
      const uint16_t back = F32ToF16(f);
      ASSERT_EQ(back & 0x7c00u, 0x7c00u);
      ASSERT_NE(back & 0x3ffu, 0u) << "NaN must stay NaN";
      continue;
    }
    ASSERT_EQ(F32ToF16(f), v) << "f16 bits " << h;
  }
  EXPECT_EQ(F32ToF16(5.9604645e-08f), 0x0001);   // smallest subnormal
  EXPECT_EQ(F32ToF16(2.9802322e-08f), 0x0000);   // half of it: ties to even -> 0
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);         // rounds up past max -> inf
  EXPECT_EQ(F32ToF16(-INFINITY), 0xfc00);
}

TEST(DTypeTest, F32ToF16MatchesHardwareRounding) {
  std::mt19937 gen(3001);
  std::printf("[   SEED   ] F32ToF16MatchesHardwareRounding: 3001\n");
  for (int i = 0; i < 2000000; ++i) {
    // Exponents spread over f16's range and beyond, every mantissa pattern.
    uint32_t bits = gen();
    const uint32_t exp = 95 + gen() % 66;  // 2^-32 .. 2^33
    bits = (bits & 0x807fffffu) | (exp << 23);
    const float f = FromBits(bits);
    ASSERT_EQ(F32ToF16(f), HwF32ToF16(f)) << "f32 bits " << bits;
  }
}

// Round to nearest even on the 16 dropped bits, computed the slow way.
uint16_t RefBf16(float f) {
  const uint32_t b = Bits(f);
  const uint32_t hi = b >> 16, lo = b & 0xffffu;
  if (lo > 0x8000u || (lo == 0x8000u && (hi & 1u))) return static_cast<uint16_t>(hi + 1);
  return static_cast<uint16_t>(hi);
}

TEST(DTypeTest, F32ToBf16RoundsToNearestEven) {
  std::mt19937 gen(3002);
  std::printf("[   SEED   ] F32ToBf16RoundsToNearestEven: 3002\n");
  for (int i = 0; i < 2000000; ++i) {
    const float f = FromBits(gen());
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToBf16(f), RefBf16(f)) << Bits(f);
  }
  EXPECT_EQ(F32ToBf16(FromBits(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(F32ToBf16(FromBits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(F32ToBf16(FromBits(0x7f7fffffu)), 0x7f80);  // FLT_MAX rounds to inf
  EXPECT_EQ(F32ToBf16(INFINITY), 0x7f80);
  const uint16_t nan = F32ToBf16(FromBits(0x7f800001u));  // a NaN whose payload is below bit 16
  EXPECT_TRUE(std::isnan(Bf16ToF32(nan)));
  EXPECT_EQ(Bf16ToF32(0x3f80), 1.0f);
  EXPECT_EQ(LoadAsF32(&nan, DType::kBF16, 0) != LoadAsF32(&nan, DType::kBF16, 0), true);
}

}  // namespace
}  // namespace tandem
