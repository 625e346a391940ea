// AVX-512 instantiation of the GEMV kernel; this file alone is built with AVX-512 flags and is
// only reached after UseAvx512() said yes. It must not odr-use inline functions shared with
// baseline files (the linker could keep this file's AVX-512 copy for everyone).
// GCC 12's avx512fintrin.h builds some conversions on _mm512_undefined_*(), which trips
// -Wuninitialized once inlined; the values are fully overwritten.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/gemv_kernel.h"
#include "kernels/cpu/simd_avx512.h"

namespace tandem::cpu {

GemvRowsFn GemvRowsAvx512(DType wtype) {
  switch (wtype) {
    case DType::kF32: return &GemvKernel<Avx512, F32W>::Rows;
    case DType::kBF16: return &GemvKernel<Avx512, Bf16W>::Rows;
    case DType::kF16: return &GemvKernel<Avx512, F16W>::Rows;
  }
  return nullptr;
}

}  // namespace tandem::cpu
