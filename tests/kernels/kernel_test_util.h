// Helpers shared by the kernel tests: seeded random data (never zero), weights stored in any
// dtype, and guarded output buffers that catch writes outside an op's output.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/dtype.h"

namespace tandem::testing {

inline constexpr DType kAllDTypes[] = {DType::kF32, DType::kF16, DType::kBF16};

// A seeded generator; the seed is printed so a failure can be replayed.
class Rng {
 public:
  explicit Rng(uint32_t seed) : gen_(seed) {
    std::printf("[   SEED   ] %s: %u\n",
                ::testing::UnitTest::GetInstance()->current_test_info()->name(), seed);
  }
  // Uniform in [-scale, scale] with |v| >= scale / 20: no zeros that could hide a bug.
  float NonZero(float scale = 1.0f) {
    std::uniform_real_distribution<float> d(0.05f, 1.0f);
    const float v = d(gen_) * scale;
    return (gen_() & 1u) ? v : -v;
  }
  std::vector<float> NonZeros(size_t n, float scale = 1.0f) {
    std::vector<float> v(n);
    for (auto& x : v) x = NonZero(scale);
    return v;
  }
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen_); }
  std::mt19937& gen() { return gen_; }

 private:
  std::mt19937 gen_;
};

// Host storage of a tensor in a given dtype, made from fp32 values (rounded once).
struct HostTensor {
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> bytes;

  HostTensor(const std::vector<float>& values, DType t, int64_t r, int64_t c)
      : dtype(t), rows(r), cols(c), bytes(values.size() * DTypeSize(t)) {
    for (size_t i = 0; i < values.size(); ++i) {
      if (t == DType::kF32) {
        std::memcpy(bytes.data() + 4 * i, &values[i], 4);
      } else {
        const uint16_t h = t == DType::kF16 ? F32ToF16(values[i]) : F32ToBf16(values[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    }
  }
  // The exact value the kernels see.
  double at(int64_t i) const { return LoadAsF32(bytes.data(), dtype, static_cast<size_t>(i)); }
  double at(int64_t r, int64_t c) const { return at(r * cols + c); }
  TensorView view() { return {bytes.data(), dtype, rows, cols}; }
};

// An F32 output with sentinel-filled guard regions on both sides.
class GuardedF32 {
 public:
  static constexpr size_t kGuard = 64;
  static constexpr uint32_t kSentinel = 0x7fbadbadu;  // a NaN no kernel produces

  GuardedF32(int64_t rows, int64_t cols) : rows_(rows), cols_(cols) {
    storage_.resize(static_cast<size_t>(rows * cols) + 2 * kGuard);
    for (auto& v : storage_) std::memcpy(&v, &kSentinel, 4);
  }
  TensorView view() { return {data(), DType::kF32, rows_, cols_}; }
  float* data() { return storage_.data() + kGuard; }
  float at(int64_t r, int64_t c) const { return storage_[kGuard + r * cols_ + c]; }
  void Fill(const std::vector<float>& v) { std::memcpy(data(), v.data(), v.size() * 4); }
  std::vector<float> values() const {
    return {storage_.begin() + kGuard, storage_.begin() + kGuard + rows_ * cols_};
  }
  bool GuardsIntact() const {
    for (size_t i = 0; i < kGuard; ++i) {
      uint32_t a, b;
      std::memcpy(&a, &storage_[i], 4);
      std::memcpy(&b, &storage_[storage_.size() - 1 - i], 4);
      if (a != kSentinel || b != kSentinel) return false;
    }
    return true;
  }

 private:
  int64_t rows_, cols_;
  std::vector<float> storage_;
};

inline std::unique_ptr<Backend> MakeCpuBackend(int threads = 0) {
  BackendOptions options;
  options.num_threads = threads;
  auto backend = CreateBackend("cpu", options);
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  return std::move(backend).value();
}

}  // namespace tandem::testing
