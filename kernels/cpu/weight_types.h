// Compile-time descriptions of the weight element types the CPU kernels read (F32, BF16, F16).
// Kernels are templates over (vector traits, weight type); widening happens in registers.
#pragma once

#include <cstdint>
#include <type_traits>

namespace tandem::cpu {

using Bf16Tag = std::integral_constant<int, 0>;
using F16Tag = std::integral_constant<int, 1>;

struct F32W {
  using T = float;
  template <class V>
  static typename V::F Load(const T* p) { return V::Load(p); }
  template <class V>
  static float Scalar(T v) { return V::Widen(v); }
};
struct Bf16W {
  using T = uint16_t;
  template <class V>
  static typename V::F Load(const T* p) { return V::Load(p, Bf16Tag{}); }
  template <class V>
  static float Scalar(T v) { return V::Widen(v, Bf16Tag{}); }
};
struct F16W {
  using T = uint16_t;
  template <class V>
  static typename V::F Load(const T* p) { return V::Load(p, F16Tag{}); }
  template <class V>
  static float Scalar(T v) { return V::Widen(v, F16Tag{}); }
};

}  // namespace tandem::cpu
