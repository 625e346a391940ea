#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_sampler.h"
#include "kernels/cuda/cuda_status.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 512;

// Philox4x32-10 (Salmon et al., SC'11): a counter-based generator, so a (key, counter) pair
// names one random number with no state to carry between steps.
__device__ inline uint4 Philox(uint2 key, uint4 ctr) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
#pragma unroll
  for (int i = 0; i < 10; ++i) {
    const uint32_t hi0 = __umulhi(kM0, ctr.x), lo0 = kM0 * ctr.x;
    const uint32_t hi1 = __umulhi(kM1, ctr.z), lo1 = kM1 * ctr.z;
    ctr = make_uint4(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    key.x += kW0;
    key.y += kW1;
  }
  return ctr;
}

// Order-preserving map of floats to unsigned keys (NaN is treated as -inf).
__device__ inline uint32_t OrderKey(float f) {
  if (f != f) f = -INFINITY;
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ inline float Logit(const float* row, int i) {
  const float f = row[i];
  return f != f ? -INFINITY : f;
}

// Block-wide sum of an integer count (exact, so order does not matter).
__device__ inline int BlockCount(int v, int* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  int total = lane < (blockDim.x >> 5) ? scratch[lane] : 0;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
  return total;
}

__global__ void __launch_bounds__(kThreads)
    SampleKernel(const float* __restrict__ logits, int vocab, int64_t row_stride,
                 const GpuSamplingParams* __restrict__ params, int32_t* __restrict__ tokens) {
  __shared__ float fscratch[32];
  __shared__ int iscratch[32];
  __shared__ float prefix_s[kThreads];
  __shared__ float total_s;
  __shared__ int choice_s;
  const int row_id = blockIdx.x;
  const float* row = logits + row_id * row_stride;
  const GpuSamplingParams sp = params[row_id];
  const int tid = threadIdx.x;

  // Argmax with the lowest index on ties.
  float best = -INFINITY;
  int best_i = vocab;  // larger than any index
  for (int i = tid; i < vocab; i += kThreads) {
    const float v = Logit(row, i);
    if (v > best || (v == best && i < best_i)) {
      best = v;
      best_i = i;
    }
  }
  const float max_logit = BlockMax(best, fscratch);
  int cand = best == max_logit ? best_i : vocab;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) cand = min(cand, __shfl_xor_sync(0xffffffffu, cand, o));
  __syncthreads();
  if ((tid & 31) == 0) iscratch[tid >> 5] = cand;
  __syncthreads();
  cand = (tid & 31) < (kThreads >> 5) ? iscratch[tid & 31] : vocab;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) cand = min(cand, __shfl_xor_sync(0xffffffffu, cand, o));
  const int argmax = cand < vocab ? cand : 0;
  if (sp.temperature <= 0.0f || sp.top_k == 1 || max_logit == -INFINITY) {
    if (tid == 0) tokens[row_id] = argmax;
    return;
  }

  const float inv_t = 1.0f / sp.temperature;
  auto weight = [&](float v) { return expf((v - max_logit) * inv_t); };
  const uint32_t max_key = OrderKey(max_logit);
  uint32_t lo = 0;  // keep keys >= lo

  // top-k: the largest key with at least k entries at or above it (bisection over keys).
  if (sp.top_k > 1 && sp.top_k < vocab) {
    uint32_t hi = max_key;
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      int c = 0;
      for (int i = tid; i < vocab; i += kThreads) c += OrderKey(row[i]) >= mid;
      if (BlockCount(c, iscratch) >= sp.top_k)
        lo = mid;
      else
        hi = mid - 1;
    }
  }
  // top-p: the largest key whose mass at or above it reaches top_p of the kept mass.
  if (sp.top_p < 1.0f) {
    float m = 0.0f;
    for (int i = tid; i < vocab; i += kThreads) {
      const float v = Logit(row, i);
      if (OrderKey(v) >= lo) m += weight(v);
    }
    const float target = sp.top_p * BlockSum(m, fscratch);
    uint32_t hi = max_key;
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      float part = 0.0f;
      for (int i = tid; i < vocab; i += kThreads) {
        const float v = Logit(row, i);
        if (OrderKey(v) >= mid) part += weight(v);
      }
      if (BlockSum(part, fscratch) >= target)
        lo = mid;
      else
        hi = mid - 1;
    }
  }
  const float min_weight = sp.min_p > 0.0f ? sp.min_p : 0.0f;  // weight(max) == 1

  // Inverse CDF in index order: each thread owns a contiguous range, ranges are scanned in a
  // fixed order, so the walk is deterministic.
  const int chunk = (vocab + kThreads - 1) / kThreads;
  const int begin = min(vocab, tid * chunk);
  const int end = min(vocab, begin + chunk);
  auto kept = [&](float v) { return OrderKey(v) >= lo && weight(v) >= min_weight; };
  float local = 0.0f;
  for (int i = begin; i < end; ++i) {
    const float v = Logit(row, i);
    if (kept(v)) local += weight(v);
  }
  if (tid == 0) choice_s = -1;
  // Exclusive scan over the kThreads ranges: warp scans, then the warp totals, in fixed order.
  // Range t is [prefix_s[t], prefix_s[t + 1]) (the last ends at total_s): adjacent ranges share
  // their bound exactly, so exactly one thread claims any target in [0, total).
  const int lane = tid & 31, warp = tid >> 5;
  float incl = local;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float n = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += n;
  }
  float excl_in_warp = __shfl_up_sync(0xffffffffu, incl, 1);
  if (lane == 0) excl_in_warp = 0.0f;
  __syncthreads();
  if (lane == 31) fscratch[warp] = incl;
  __syncthreads();
  float warp_base = 0.0f;
  for (int w = 0; w < warp; ++w) warp_base += fscratch[w];
  const float excl = warp_base + excl_in_warp;
  prefix_s[tid] = excl;
  if (tid == kThreads - 1) total_s = excl + local;
  __syncthreads();
  const float total = total_s;
  const float range_end = tid + 1 < kThreads ? prefix_s[tid + 1] : total;

  const uint2 key =
      make_uint2(static_cast<uint32_t>(sp.seed), static_cast<uint32_t>(sp.seed >> 32));
  const uint4 ctr =
      make_uint4(static_cast<uint32_t>(sp.step), static_cast<uint32_t>(sp.step >> 32), 0u, 0u);
  const uint4 r = Philox(key, ctr);
  const float u = static_cast<float>(r.x >> 8) * (1.0f / 16777216.0f);  // [0, 1)
  const float target = u * total;
  if (target >= excl && target < range_end) {
    float acc = excl;
    int pick = -1;
    for (int i = begin; i < end; ++i) {
      const float v = Logit(row, i);
      if (!kept(v)) continue;
      pick = i;
      acc += weight(v);
      if (target < acc) break;
    }
    choice_s = pick;
  }
  __syncthreads();
  if (tid == 0) tokens[row_id] = choice_s >= 0 ? choice_s : argmax;
}

}  // namespace

Result<std::unique_ptr<CudaSampler>> CudaSampler::Create(cudaStream_t stream) {
  return std::unique_ptr<CudaSampler>(new CudaSampler(stream));
}

CudaSampler::~CudaSampler() {
  if (host_params_ != nullptr) cudaFreeHost(host_params_);
  if (host_tokens_ != nullptr) cudaFreeHost(host_tokens_);
  if (device_params_ != nullptr) cudaFree(device_params_);
  if (device_tokens_ != nullptr) cudaFree(device_tokens_);
}

Status CudaSampler::Reserve(int batch) {
  if (batch <= capacity_) return Status::Ok();
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  if (host_params_ != nullptr) CUDA_RETURN_IF_ERROR(cudaFreeHost(host_params_));
  if (host_tokens_ != nullptr) CUDA_RETURN_IF_ERROR(cudaFreeHost(host_tokens_));
  if (device_params_ != nullptr) CUDA_RETURN_IF_ERROR(cudaFree(device_params_));
  if (device_tokens_ != nullptr) CUDA_RETURN_IF_ERROR(cudaFree(device_tokens_));
  host_params_ = nullptr;
  host_tokens_ = nullptr;
  device_params_ = nullptr;
  device_tokens_ = nullptr;
  capacity_ = 0;
  const int cap = std::max(batch, 64);
  CUDA_RETURN_IF_ERROR(cudaMallocHost(&host_params_, sizeof(GpuSamplingParams) * cap));
  CUDA_RETURN_IF_ERROR(cudaMallocHost(&host_tokens_, sizeof(int32_t) * cap));
  CUDA_RETURN_IF_ERROR(cudaMalloc(&device_params_, sizeof(GpuSamplingParams) * cap));
  CUDA_RETURN_IF_ERROR(cudaMalloc(&device_tokens_, sizeof(int32_t) * cap));
  capacity_ = cap;
  return Status::Ok();
}

Status CudaSampler::Sample(const float* logits, int batch, int vocab, int64_t row_stride,
                           std::span<const GpuSamplingParams> params, int32_t* tokens) {
  if (batch < 0 || vocab <= 0 || row_stride < vocab) {
    return InvalidArgumentError(
        "cuda sampler: need batch >= 0, vocab > 0, row_stride >= vocab; got " +
        std::to_string(batch) + ", " + std::to_string(vocab) + ", " + std::to_string(row_stride));
  }
  if (params.size() != static_cast<size_t>(batch)) {
    return InvalidArgumentError("cuda sampler: " + std::to_string(params.size()) +
                                " parameter sets for a batch of " + std::to_string(batch));
  }
  for (int i = 0; i < batch; ++i) {
    const GpuSamplingParams& p = params[i];
    if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature) ||
        !(p.top_p > 0.0f && p.top_p <= 1.0f) || !(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
      return InvalidArgumentError("cuda sampler: row " + std::to_string(i) +
                                  ": need temperature >= 0, top_p in (0, 1], min_p in [0, 1]");
    }
  }
  if (batch == 0) return Status::Ok();
  RETURN_IF_ERROR(Reserve(batch));
  std::memcpy(host_params_, params.data(), sizeof(GpuSamplingParams) * batch);
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(device_params_, host_params_,
                                       sizeof(GpuSamplingParams) * batch, cudaMemcpyHostToDevice,
                                       stream_));
  SampleKernel<<<batch, kThreads, 0, stream_>>>(logits, vocab, row_stride, device_params_,
                                                device_tokens_);
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_tokens_, device_tokens_, sizeof(int32_t) * batch,
                                       cudaMemcpyDeviceToHost, stream_));
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  std::memcpy(tokens, host_tokens_, sizeof(int32_t) * batch);
  return Status::Ok();
}

}  // namespace tandem::cuda
