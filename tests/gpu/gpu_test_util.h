// Helpers of the GPU suites: skipping without a GPU, tensors with guard regions on any backend,
// bf16-rounded random data and the relative L2 error.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace tandem::gpu_test {

// Empty when a GPU is usable, else the reason to skip.
inline std::string NoGpuReason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return std::string("no CUDA device (cudaGetDeviceCount: ") + cudaGetErrorString(err) + ")";
  }
  if (count == 0) return "no CUDA device (cudaGetDeviceCount returned 0)";
  return "";
}

#define TANDEM_SKIP_WITHOUT_GPU()                               \
  do {                                                          \
    const std::string _why = ::tandem::gpu_test::NoGpuReason(); \
    if (!_why.empty()) GTEST_SKIP() << _why;                    \
  } while (0)

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const ::tandem::Status _st = (expr);                      \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (0)

// Values drawn in [-scale, scale] (never exactly zero) and rounded to bf16, so that both
// backends see exactly the same numbers whatever their activation dtype.
inline std::vector<float> RandomBf16Values(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) {
    float f = dist(rng);
    if (std::fabs(f) < 1e-3f * scale) f = 1e-3f * scale;
    x = Bf16ToF32(F32ToBf16(f));
  }
  return v;
}

inline std::vector<uint8_t> Encode(const std::vector<float>& v, DType t) {
  std::vector<uint8_t> out(v.size() * DTypeSize(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = t == DType::kBF16 ? F32ToBf16(v[i]) : F32ToF16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

inline std::vector<float> Decode(const std::vector<uint8_t>& bytes, DType t) {
  std::vector<float> out(bytes.size() / DTypeSize(t));
  for (size_t i = 0; i < out.size(); ++i) out[i] = LoadAsF32(bytes.data(), t, i);
  return out;
}

// ||a - b|| / ||b||; NaN or Inf anywhere gives +inf.
inline double RelL2(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den == 0 ? (num == 0 ? 0 : INFINITY) : std::sqrt(num / den);
}

// A tensor in backend memory with kGuardBytes of a fixed pattern before and after it. The data
// starts poisoned with the same pattern (a huge finite value in every dtype), so an element the
// op forgot to write shows up in the error.
class GuardedTensor {
 public:
  static constexpr size_t kGuardBytes = 256;
  static constexpr uint8_t kPattern = 0x7e;

  GuardedTensor(Backend& b, DType t, int64_t rows, int64_t cols) : backend_(&b) {
    view_.dtype = t;
    view_.rows = rows;
    view_.cols = cols;
    auto mem = b.Allocate(view_.bytes() + 2 * kGuardBytes);
    status_ = mem.status();
    if (!mem.ok()) return;
    mem_ = std::move(mem).value();
    view_.data = static_cast<char*>(mem_.data()) + kGuardBytes;
    std::vector<uint8_t> pattern(mem_.bytes(), kPattern);
    status_ = b.CopyToDevice(mem_.data(), pattern.data(), pattern.size());
  }
  const Status& status() const { return status_; }
  TensorView view() const { return view_; }
  Status Fill(const std::vector<float>& values) {
    const auto bytes = Encode(values, view_.dtype);
    return backend_->CopyToDevice(view_.data, bytes.data(), bytes.size());
  }
  std::vector<float> Read() const {
    std::vector<uint8_t> bytes(view_.bytes());
    if (!backend_->CopyToHost(bytes.data(), view_.data, bytes.size()).ok()) return {};
    return Decode(bytes, view_.dtype);
  }
  bool GuardsIntact() const {
    std::vector<uint8_t> all(mem_.bytes());
    if (!backend_->CopyToHost(all.data(), mem_.data(), all.size()).ok()) return false;
    for (size_t i = 0; i < kGuardBytes; ++i) {
      if (all[i] != kPattern || all[all.size() - 1 - i] != kPattern) return false;
    }
    return true;
  }

 private:
  Backend* backend_;
  DeviceBuffer mem_;
  TensorView view_;
  Status status_;
};

// Raw bytes (plan arrays, ids) copied into backend memory.
template <typename T>
inline Result<DeviceBuffer> Upload(Backend& b, const std::vector<T>& v) {
  ASSIGN_OR_RETURN(DeviceBuffer buf, b.Allocate(v.size() * sizeof(T)));
  RETURN_IF_ERROR(b.CopyToDevice(buf.data(), v.data(), v.size() * sizeof(T)));
  return buf;
}

}  // namespace tandem::gpu_test
