#include "kernels/cuda/cuda_backend.h"

#include <algorithm>
#include <string>

#include "kernels/cuda/convert.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/decode_attention.h"
#include "kernels/cuda/device_errors.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/gather.h"
#include "kernels/cuda/kv_write.h"
#include "kernels/cuda/matmul_cublaslt.h"
#include "kernels/cuda/prefill_attention.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/swiglu.h"
#include "kernels/cuda_factory.h"

namespace tandem {
namespace cuda {
namespace {

using bf16 = __nv_bfloat16;

// Kept free for activations, cuBLASLt workspaces and the allocator's own needs.
constexpr size_t kMemoryMarginBytes = size_t{1} << 30;
// Weights in F32/F16 are converted through a device staging buffer of this many elements.
constexpr int64_t kConvertChunkElems = int64_t{16} << 20;

const char* DTypeStr(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
  }
  return "?";
}

std::string Shape(const TensorView& t) {
  return std::string(DTypeStr(t.dtype)) + "[" + std::to_string(t.rows) + ", " +
         std::to_string(t.cols) + "]";
}

Status Expect(bool cond, const char* op, const std::string& what) {
  if (cond) return Status::Ok();
  return InvalidArgumentError(std::string("cuda ") + op + ": " + what);
}

Status ExpectBf16(const TensorView& t, const char* op, const char* name) {
  return Expect(t.dtype == DType::kBF16, op,
                std::string(name) + " must be BF16 on the CUDA backend, got " + Shape(t));
}

bf16* Bf(const TensorView& t) {
  return static_cast<bf16*>(t.data);
}

}  // namespace

Result<std::unique_ptr<CudaBackend>> CudaBackend::Create(const BackendOptions& options) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return UnavailableError(std::string("no CUDA device: cudaGetDeviceCount failed: ") +
                            cudaGetErrorString(err));
  }
  if (count == 0) return UnavailableError("no CUDA device: cudaGetDeviceCount returned 0");
  if (options.device_index < 0 || options.device_index >= count) {
    return InvalidArgumentError("cuda: device_index " + std::to_string(options.device_index) +
                                " out of range (" + std::to_string(count) + " devices)");
  }
  if (!(options.gpu_memory_utilization > 0.0 && options.gpu_memory_utilization <= 1.0)) {
    return InvalidArgumentError("cuda: gpu_memory_utilization must be in (0, 1], got " +
                                std::to_string(options.gpu_memory_utilization));
  }
  std::unique_ptr<CudaBackend> backend(new CudaBackend(options));
  RETURN_IF_ERROR(backend->Init());
  return backend;
}

Status CudaBackend::Init() {
  device_ = options_.device_index;
  CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device_));
  CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUDA_RETURN_IF_ERROR(cudaMalloc(reinterpret_cast<void**>(&error_flags_), sizeof(unsigned int)));
  CUDA_RETURN_IF_ERROR(cudaMemsetAsync(error_flags_, 0, sizeof(unsigned int), stream_));
  CUDA_RETURN_IF_ERROR(
      cudaMallocHost(reinterpret_cast<void**>(&host_error_flags_), sizeof(unsigned int)));
  *host_error_flags_ = 0;
  ASSIGN_OR_RETURN(matmul_, CublasLtMatmul::Create());
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return Status::Ok();
}

CudaBackend::~CudaBackend() {
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  matmul_.reset();
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (error_flags_ != nullptr) cudaFree(error_flags_);
  if (host_error_flags_ != nullptr) cudaFreeHost(host_error_flags_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

size_t CudaBackend::kv_cache_budget_bytes() const {
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) return 0;
  const double usable = options_.gpu_memory_utilization * static_cast<double>(free_bytes);
  const double budget = usable - static_cast<double>(kMemoryMarginBytes);
  return budget > 0 ? static_cast<size_t>(budget) : 0;
}

Result<DeviceBuffer> CudaBackend::Allocate(size_t bytes) {
  void* p = nullptr;
  const size_t n = std::max<size_t>(bytes, 1);
  const cudaError_t err = cudaMalloc(&p, n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return ResourceExhaustedError("cuda: cannot allocate " + std::to_string(bytes) +
                                  " bytes: " + cudaGetErrorString(err));
  }
  // Zeroed like the CPU backend's memory, so that an unwritten KV block reads as zeros.
  CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p, 0, n, stream_));
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return DeviceBuffer(p, bytes, [](void* q) { cudaFree(q); });
}

Status CudaBackend::CopyToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return Status::Ok();
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return Status::Ok();
}

Status CudaBackend::CopyToHost(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return Status::Ok();
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return Status::Ok();
}

Status CudaBackend::Synchronize() {
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_error_flags_, error_flags_, sizeof(unsigned int),
                                       cudaMemcpyDeviceToHost, stream_));
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  const unsigned int flags = *host_error_flags_;
  if (flags == 0) return Status::Ok();
  CUDA_RETURN_IF_ERROR(cudaMemsetAsync(error_flags_, 0, sizeof(unsigned int), stream_));
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  *host_error_flags_ = 0;
  std::string what;
  auto add = [&](unsigned int bit, const char* text) {
    if ((flags & bit) == 0) return;
    if (!what.empty()) what += "; ";
    what += text;
  };
  add(kErrTokenId, "Embedding: token id outside [0, vocab)");
  add(kErrGatherIndex, "GatherRows: index outside [0, rows)");
  add(kErrSlot, "WriteKv: slot past the end of the cache");
  add(kErrBlockTable, "Attention: block table entry outside [0, num_blocks)");
  add(kErrPartitions, "Attention: a context is longer than plan.max_context_len");
  return InvalidArgumentError("cuda: kernels reported bad input since the last Synchronize: " +
                              what);
}

Result<DeviceWeight> CudaBackend::UploadWeight(const TensorView& host) {
  if (host.rows < 0 || host.cols < 0) {
    return InvalidArgumentError("cuda UploadWeight: negative shape " + Shape(host));
  }
  const int64_t n = host.numel();
  ASSIGN_OR_RETURN(DeviceBuffer storage, Allocate(static_cast<size_t>(n) * sizeof(bf16)));
  bf16* dst = static_cast<bf16*>(storage.data());
  if (host.dtype == DType::kBF16) {
    RETURN_IF_ERROR(CopyToDevice(dst, host.data, static_cast<size_t>(n) * sizeof(bf16)));
  } else if (n > 0) {
    const size_t elem = DTypeSize(host.dtype);
    const int64_t chunk = std::min(n, kConvertChunkElems);
    ASSIGN_OR_RETURN(DeviceBuffer staging, Allocate(static_cast<size_t>(chunk) * elem));
    for (int64_t first = 0; first < n; first += chunk) {
      const int64_t count = std::min(chunk, n - first);
      const char* src = static_cast<const char*>(host.data) + static_cast<size_t>(first) * elem;
      CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(staging.data(), src, static_cast<size_t>(count) * elem,
                                           cudaMemcpyDefault, stream_));
      CUDA_RETURN_IF_ERROR(LaunchConvertToBf16(staging.data(), host.dtype == DType::kF32, count,
                                               dst + first, stream_));
    }
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  }
  DeviceWeight w;
  w.view = TensorView{dst, DType::kBF16, host.rows, host.cols};
  w.storage = std::move(storage);
  return w;
}

Status CudaBackend::Embedding(const TensorView& table, const int32_t* ids, TensorView out) {
  RETURN_IF_ERROR(ExpectBf16(table, "Embedding", "table"));
  RETURN_IF_ERROR(ExpectBf16(out, "Embedding", "out"));
  RETURN_IF_ERROR(Expect(table.cols == out.cols, "Embedding",
                         "table " + Shape(table) + " and out " + Shape(out) + " differ in hidden"));
  CUDA_RETURN_IF_ERROR(LaunchEmbedding(Bf(table), table.rows, table.cols, ids, out.rows, Bf(out),
                                       out.cols, error_flags_, stream_));
  return Status::Ok();
}

Status CudaBackend::RmsNorm(const TensorView& x, const TensorView& weight, float eps,
                            TensorView out) {
  RETURN_IF_ERROR(ExpectBf16(x, "RmsNorm", "x"));
  RETURN_IF_ERROR(ExpectBf16(out, "RmsNorm", "out"));
  RETURN_IF_ERROR(Expect(weight.dtype != DType::kF16, "RmsNorm", "weight must be BF16 or F32"));
  RETURN_IF_ERROR(Expect(
      x.rows == out.rows && x.cols == out.cols && weight.numel() == x.cols, "RmsNorm",
      "shapes x " + Shape(x) + ", weight " + Shape(weight) + ", out " + Shape(out) + " disagree"));
  CUDA_RETURN_IF_ERROR(LaunchRmsNorm(Bf(x), x.cols, nullptr, 0, weight.data,
                                     weight.dtype == DType::kF32, x.rows, x.cols, eps, Bf(out),
                                     out.cols, stream_));
  return Status::Ok();
}

Status CudaBackend::AddRmsNorm(TensorView residual, const TensorView& x, const TensorView& weight,
                               float eps, TensorView out) {
  RETURN_IF_ERROR(ExpectBf16(residual, "AddRmsNorm", "residual"));
  RETURN_IF_ERROR(ExpectBf16(x, "AddRmsNorm", "x"));
  RETURN_IF_ERROR(ExpectBf16(out, "AddRmsNorm", "out"));
  RETURN_IF_ERROR(Expect(weight.dtype != DType::kF16, "AddRmsNorm", "weight must be BF16 or F32"));
  RETURN_IF_ERROR(Expect(x.rows == out.rows && x.cols == out.cols && residual.rows == x.rows &&
                             residual.cols == x.cols && weight.numel() == x.cols,
                         "AddRmsNorm",
                         "shapes residual " + Shape(residual) + ", x " + Shape(x) + ", weight " +
                             Shape(weight) + ", out " + Shape(out) + " disagree"));
  CUDA_RETURN_IF_ERROR(LaunchRmsNorm(Bf(x), x.cols, Bf(residual), residual.cols, weight.data,
                                     weight.dtype == DType::kF32, x.rows, x.cols, eps, Bf(out),
                                     out.cols, stream_));
  return Status::Ok();
}

Status CudaBackend::Matmul(const TensorView& x, const TensorView& w, const TensorView* bias,
                           TensorView out) {
  RETURN_IF_ERROR(ExpectBf16(x, "Matmul", "x"));
  RETURN_IF_ERROR(ExpectBf16(w, "Matmul", "w (upload it with UploadWeight)"));
  RETURN_IF_ERROR(Expect(out.dtype != DType::kF16, "Matmul", "out must be BF16 or F32"));
  RETURN_IF_ERROR(Expect(x.cols == w.cols && out.rows == x.rows && out.cols == w.rows, "Matmul",
                         "shapes x " + Shape(x) + ", w " + Shape(w) + ", out " + Shape(out) +
                             " disagree (out = x @ w^T)"));
  if (bias != nullptr) {
    RETURN_IF_ERROR(Expect(bias->numel() == w.rows && bias->dtype != DType::kF16, "Matmul",
                           "bias " + Shape(*bias) + " must be BF16 or F32 with " +
                               std::to_string(w.rows) + " elements"));
  }
  return matmul_->Run(Bf(x), Bf(w), bias != nullptr ? bias->data : nullptr,
                      bias != nullptr ? bias->dtype : DType::kBF16, out.data, out.dtype, x.rows,
                      w.rows, x.cols, stream_);
}

Status CudaBackend::Rope(TensorView q, TensorView k, const int32_t* positions,
                         const float* inv_freq, int head_dim) {
  RETURN_IF_ERROR(ExpectBf16(q, "Rope", "q"));
  RETURN_IF_ERROR(ExpectBf16(k, "Rope", "k"));
  RETURN_IF_ERROR(Expect(head_dim > 0 && head_dim % 2 == 0 && head_dim <= 512, "Rope",
                         "head_dim must be even and <= 512, got " + std::to_string(head_dim)));
  RETURN_IF_ERROR(
      Expect(q.cols % head_dim == 0 && k.cols % head_dim == 0 && q.rows == k.rows, "Rope",
             "q " + Shape(q) + " and k " + Shape(k) +
                 " must have the same rows and whole heads of " + std::to_string(head_dim)));
  CUDA_RETURN_IF_ERROR(LaunchRope(Bf(q), q.cols, static_cast<int>(q.cols / head_dim), Bf(k), k.cols,
                                  static_cast<int>(k.cols / head_dim), positions, inv_freq, q.rows,
                                  head_dim, stream_));
  return Status::Ok();
}

Status CudaBackend::WriteKv(const TensorView& k, const TensorView& v, const int64_t* slot_mapping,
                            const KvCacheView& cache) {
  RETURN_IF_ERROR(ExpectBf16(k, "WriteKv", "k"));
  RETURN_IF_ERROR(ExpectBf16(v, "WriteKv", "v"));
  RETURN_IF_ERROR(Expect(cache.dtype == DType::kBF16, "WriteKv", "the KV cache must be BF16"));
  const int64_t width = int64_t{cache.num_kv_heads} * cache.head_dim;
  RETURN_IF_ERROR(Expect(
      k.cols == width && v.cols == width && k.rows == v.rows, "WriteKv",
      "k " + Shape(k) + " and v " + Shape(v) + " must be [n, " + std::to_string(width) + "]"));
  CUDA_RETURN_IF_ERROR(LaunchWriteKv(Bf(k), k.cols, Bf(v), v.cols, slot_mapping, k.rows,
                                     static_cast<bf16*>(cache.k), static_cast<bf16*>(cache.v),
                                     cache.num_blocks, cache.num_kv_heads, cache.block_size,
                                     cache.head_dim, error_flags_, stream_));
  return Status::Ok();
}

Status CudaBackend::EnsureWorkspace(size_t bytes) {
  if (bytes <= workspace_bytes_) return Status::Ok();
  if (workspace_ != nullptr) {
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // kernels may still read it
    CUDA_RETURN_IF_ERROR(cudaFree(workspace_));
    workspace_ = nullptr;
    workspace_bytes_ = 0;
  }
  const size_t rounded = std::max<size_t>(bytes + bytes / 4, size_t{1} << 20);
  CUDA_RETURN_IF_ERROR(cudaMalloc(&workspace_, rounded));
  workspace_bytes_ = rounded;
  return Status::Ok();
}

Status CudaBackend::Attention(const TensorView& q, const KvCacheView& cache,
                              const AttentionPlanView& plan, int num_heads, float scale,
                              TensorView out) {
  RETURN_IF_ERROR(ExpectBf16(q, "Attention", "q"));
  RETURN_IF_ERROR(ExpectBf16(out, "Attention", "out"));
  RETURN_IF_ERROR(Expect(cache.dtype == DType::kBF16, "Attention", "the KV cache must be BF16"));
  RETURN_IF_ERROR(Expect(cache.head_dim == 64 || cache.head_dim == 128, "Attention",
                         "head_dim must be 64 or 128, got " + std::to_string(cache.head_dim)));
  RETURN_IF_ERROR(Expect(
      num_heads > 0 && cache.num_kv_heads > 0 && num_heads % cache.num_kv_heads == 0, "Attention",
      "num_heads " + std::to_string(num_heads) + " must be a multiple of num_kv_heads " +
          std::to_string(cache.num_kv_heads)));
  const int64_t width = int64_t{num_heads} * cache.head_dim;
  RETURN_IF_ERROR(Expect(
      q.cols == width && out.cols == width && q.rows == out.rows && q.rows == plan.num_tokens,
      "Attention",
      "q " + Shape(q) + " and out " + Shape(out) + " must be [" + std::to_string(plan.num_tokens) +
          ", " + std::to_string(width) + "]"));
  RETURN_IF_ERROR(
      Expect(plan.max_context_len >= 0 && plan.max_query_len >= 0 && cache.block_size > 0,
             "Attention", "plan hints must be set (max_query_len, max_context_len)"));
  if (plan.num_seqs == 0 || plan.num_tokens == 0) return Status::Ok();

  cuda::PagedAttentionParams p;
  p.q = Bf(q);
  p.q_stride = q.cols;
  p.out = Bf(out);
  p.out_stride = out.cols;
  p.k_cache = static_cast<const bf16*>(cache.k);
  p.v_cache = static_cast<const bf16*>(cache.v);
  p.num_blocks = cache.num_blocks;
  p.num_kv_heads = cache.num_kv_heads;
  p.block_size = cache.block_size;
  p.head_dim = cache.head_dim;
  p.num_heads = num_heads;
  p.num_seqs = plan.num_seqs;
  p.positions = plan.positions;
  p.query_start = plan.query_start;
  p.block_tables = plan.block_tables;
  p.max_blocks_per_seq = plan.max_blocks_per_seq;
  p.scale = scale;
  p.error_flags = error_flags_;

  // Decode rows (query length 1) and prefill rows (>= 2) are picked by the kernels themselves
  // from query_start, so a mixed batch is two launches over the same plan and no host sync.
  const DecodeLaunchShape shape = PlanDecode(p, std::max(1, plan.max_context_len), num_sms_);
  RETURN_IF_ERROR(EnsureWorkspace(shape.workspace_bytes));
  CUDA_RETURN_IF_ERROR(LaunchDecodeAttention(p, shape, workspace_, stream_));
  if (plan.max_query_len >= 2) {
    CUDA_RETURN_IF_ERROR(LaunchPrefillAttention(p, plan.max_query_len, stream_));
  }
  return Status::Ok();
}

Status CudaBackend::SiluMul(const TensorView& gate, const TensorView& up, TensorView out) {
  RETURN_IF_ERROR(ExpectBf16(gate, "SiluMul", "gate"));
  RETURN_IF_ERROR(ExpectBf16(up, "SiluMul", "up"));
  RETURN_IF_ERROR(ExpectBf16(out, "SiluMul", "out"));
  RETURN_IF_ERROR(Expect(
      gate.rows == up.rows && gate.cols == up.cols && out.rows == gate.rows &&
          out.cols == gate.cols,
      "SiluMul",
      "shapes gate " + Shape(gate) + ", up " + Shape(up) + ", out " + Shape(out) + " disagree"));
  CUDA_RETURN_IF_ERROR(LaunchSiluMul(Bf(gate), gate.cols, Bf(up), up.cols, gate.rows, gate.cols,
                                     Bf(out), out.cols, stream_));
  return Status::Ok();
}

Status CudaBackend::GatherRows(const TensorView& x, const int32_t* indices, TensorView out) {
  RETURN_IF_ERROR(Expect(x.dtype == out.dtype && x.cols == out.cols, "GatherRows",
                         "x " + Shape(x) + " and out " + Shape(out) + " differ in dtype or cols"));
  CUDA_RETURN_IF_ERROR(LaunchGatherRows(x.data, x.rows,
                                        x.cols * static_cast<int64_t>(DTypeSize(x.dtype)), indices,
                                        out.rows, out.data, error_flags_, stream_));
  return Status::Ok();
}

}  // namespace cuda

Result<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaBackend> backend, cuda::CudaBackend::Create(options));
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace tandem
