// Baseline (x86-64-v3) instantiation of the GEMV kernel.
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/gemv_kernel.h"
#include "kernels/cpu/simd_avx2.h"

namespace tandem::cpu {

GemvRowsFn GemvRowsAvx2(DType wtype) {
  switch (wtype) {
    case DType::kF32: return &GemvKernel<Avx2, F32W>::Rows;
    case DType::kBF16: return &GemvKernel<Avx2, Bf16W>::Rows;
    case DType::kF16: return &GemvKernel<Avx2, F16W>::Rows;
  }
  return nullptr;
}

}  // namespace tandem::cpu
