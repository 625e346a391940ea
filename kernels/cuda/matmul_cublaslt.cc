#include "kernels/cuda/matmul_cublaslt.h"

#include <string>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/gather.h"

namespace tandem::cuda {

// cuBLASLt is column-major: a row-major [r, c] matrix is a column-major [c, r] one. So
// out^T [n, m] = w [n, k] (column-major [k, n], transposed) @ x^T (column-major [k, m]).
struct CublasLtMatmul::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr;  // w
  cublasLtMatrixLayout_t b = nullptr;  // x
  cublasLtMatrixLayout_t c = nullptr;  // out
  cublasLtMatmulAlgo_t algo{};
  bool fused_bias = false;

  ~Plan() {
    if (c != nullptr) cublasLtMatrixLayoutDestroy(c);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (op != nullptr) cublasLtMatmulDescDestroy(op);
  }
};

namespace {

int AlignmentOf(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 1 && (v % static_cast<uintptr_t>(align)) != 0) align /= 2;
  return align;
}

cudaDataType_t CudaTypeOf(DType t) {
  return t == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF;
}

}  // namespace

Result<std::unique_ptr<CublasLtMatmul>> CublasLtMatmul::Create(size_t workspace_bytes) {
  std::unique_ptr<CublasLtMatmul> mm(new CublasLtMatmul());
  CUBLAS_RETURN_IF_ERROR(cublasLtCreate(&mm->handle_));
  if (workspace_bytes > 0) {
    CUDA_RETURN_IF_ERROR(cudaMalloc(&mm->workspace_, workspace_bytes));
    mm->workspace_bytes_ = workspace_bytes;
  }
  return mm;
}

CublasLtMatmul::~CublasLtMatmul() {
  plans_.clear();
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

Result<CublasLtMatmul::Plan*> CublasLtMatmul::GetPlan(const Key& key, DType out_dtype) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();
  const auto [m, n, k, out_code, fused_bias, align_x, align_w, align_out] = key;
  auto plan = std::make_unique<Plan>();
  CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T;
  const cublasOperation_t trans_b = CUBLAS_OP_N;
  CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA,
                                                        &trans_a, sizeof(trans_a)));
  CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB,
                                                        &trans_b, sizeof(trans_b)));
  if (fused_bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                          &epilogue, sizeof(epilogue)));
  }
  CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->a, CUDA_R_16BF, k, n, k));
  CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->b, CUDA_R_16BF, k, m, k));
  CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->c, CudaTypeOf(out_dtype), n, m, n));

  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_bytes_;
  const uint32_t aa = static_cast<uint32_t>(align_w), ab = static_cast<uint32_t>(align_x),
                 ac = static_cast<uint32_t>(align_out);
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa,
                                              sizeof(aa));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab,
                                              sizeof(ab));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac,
                                              sizeof(ac));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac,
                                              sizeof(ac));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  if (st == CUBLAS_STATUS_SUCCESS) {
    st = cublasLtMatmulAlgoGetHeuristic(handle_, plan->op, plan->a, plan->b, plan->c, plan->c, pref,
                                        1, &result, &returned);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  CUBLAS_RETURN_IF_ERROR(st);
  if (returned == 0) {
    return UnimplementedError("cuBLASLt has no algorithm for m=" + std::to_string(m) +
                              " n=" + std::to_string(n) + " k=" + std::to_string(k) +
                              (fused_bias ? " with bias epilogue" : ""));
  }
  plan->algo = result.algo;
  plan->fused_bias = fused_bias;
  Plan* raw = plan.get();
  plans_.emplace(key, std::move(plan));
  return raw;
}

Status CublasLtMatmul::Run(const __nv_bfloat16* x, const __nv_bfloat16* w, const void* bias,
                           DType bias_dtype, void* out, DType out_dtype, int64_t m, int64_t n,
                           int64_t k, cudaStream_t stream) {
  if (m == 0 || n == 0) return Status::Ok();
  if (out_dtype == DType::kF16 || (bias != nullptr && bias_dtype == DType::kF16)) {
    return InvalidArgumentError("cuda matmul: output and bias must be F32 or BF16");
  }
  // The heuristic ran without the bias pointer, so only a fully aligned bias rides the epilogue.
  bool fused = bias != nullptr && bias_dtype == out_dtype && AlignmentOf(bias) == 256;
  Key key{m,
          n,
          k,
          static_cast<int>(out_dtype),
          fused,
          AlignmentOf(x),
          AlignmentOf(w),
          AlignmentOf(out)};
  Result<Plan*> plan = GetPlan(key, out_dtype);
  if (!plan.ok() && fused) {  // no algorithm with the epilogue: add the bias separately
    fused = false;
    std::get<4>(key) = false;
    plan = GetPlan(key, out_dtype);
  }
  RETURN_IF_ERROR(plan);
  if (fused) {
    CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        (*plan)->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  }
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(handle_, (*plan)->op, &alpha, w, (*plan)->a, x, (*plan)->b,
                                        &beta, out, (*plan)->c, out, (*plan)->c, &(*plan)->algo,
                                        workspace_, workspace_bytes_, stream));
  if (bias != nullptr && !fused) {
    CUDA_RETURN_IF_ERROR(LaunchAddBias(out, out_dtype == DType::kF32, m, n, bias,
                                       bias_dtype == DType::kF32, stream));
  }
  return Status::Ok();
}

}  // namespace tandem::cuda
