// Kernel micro-benchmarks of the CUDA backend, each compared with a ceiling measured in the same
// run: a large device-to-device copy (GB/s, bytes read + written) for decode attention, and a
// large bf16 cuBLASLt GEMM (TFLOP/s) for prefill attention. Every configuration is validated
// against a naive fp32 reference kernel before it is timed. Timing: CUDA events, warm-up, the
// median of repeated runs; decode rotates over several cache copies when one would fit in L2.
//
//   cuda_kernels_bench [--quick] [--json PATH]
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/decode_attention.h"
#include "kernels/cuda/matmul_cublaslt.h"
#include "kernels/cuda/prefill_attention.h"

namespace tandem::cuda {
namespace {

#define CHECK_CUDA(expr)                                                          \
  do {                                                                            \
    const cudaError_t _e = (expr);                                                \
    if (_e != cudaSuccess) {                                                      \
      std::fprintf(stderr, "%s failed at %s:%d: %s\n", #expr, __FILE__, __LINE__, \
                   cudaGetErrorString(_e));                                       \
      std::exit(1);                                                               \
    }                                                                             \
  } while (0)

// Deterministic non-zero values in [-1, 1) from a hash of the index.
__global__ void FillKernel(bf16* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    uint32_t x = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    p[i] = __float2bfloat16((static_cast<float>(x >> 8) + 0.5f) / 8388608.0f - 1.0f);
  }
}

// Naive reference: one block per (checked token, head), fp32, scores through global scratch.
__global__ void RefAttentionKernel(PagedAttentionParams p, const int* tokens, const int* seq_of,
                                   float* scratch, int scratch_stride, float* out) {
  const int i = blockIdx.x, h = blockIdx.y, token = tokens[i], s = seq_of[i];
  const int ctx = p.positions[token] + 1, d_all = p.head_dim,
            kvh = h / (p.num_heads / p.num_kv_heads);
  float* sc = scratch + (size_t(i) * p.num_heads + h) * scratch_stride;
  __shared__ float red[32];
  auto row = [&](const bf16* c, int t) {
    const int b = p.block_tables[size_t(s) * p.max_blocks_per_seq + t / p.block_size];
    return c + ((size_t(b) * p.num_kv_heads + kvh) * p.block_size + t % p.block_size) * d_all;
  };
  const bf16* q = p.q + token * p.q_stride + size_t(h) * d_all;
  float mx = -INFINITY;
  for (int t = threadIdx.x; t < ctx; t += blockDim.x) {
    const bf16* k = row(p.k_cache, t);
    float dot = 0;
    for (int d = 0; d < d_all; ++d) dot += __bfloat162float(q[d]) * __bfloat162float(k[d]);
    sc[t] = dot * p.scale;
    mx = fmaxf(mx, sc[t]);
  }
  mx = BlockMax(mx, red);
  float sum = 0;
  for (int t = threadIdx.x; t < ctx; t += blockDim.x) sum += (sc[t] = expf(sc[t] - mx));
  sum = BlockSum(sum, red);
  __syncthreads();
  for (int d = threadIdx.x; d < d_all; d += blockDim.x) {
    float acc = 0;
    for (int t = 0; t < ctx; ++t) acc += sc[t] * __bfloat162float(row(p.v_cache, t)[d]);
    out[(size_t(i) * p.num_heads + h) * d_all + d] = acc / sum;
  }
}

struct Timer {
  cudaEvent_t a, b;
  Timer() {
    CHECK_CUDA(cudaEventCreate(&a));
    CHECK_CUDA(cudaEventCreate(&b));
  }
  ~Timer() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  // Median milliseconds of fn over reps runs (fn(i) gets the run index), after warm-up.
  double Median(const std::function<void(int)>& fn, int reps, cudaStream_t st) {
    for (int i = 0; i < 3; ++i) fn(i);
    std::vector<double> ms;
    for (int i = 0; i < reps; ++i) {
      CHECK_CUDA(cudaEventRecord(a, st));
      fn(i);
      CHECK_CUDA(cudaEventRecord(b, st));
      CHECK_CUDA(cudaEventSynchronize(b));
      float t = 0;
      CHECK_CUDA(cudaEventElapsedTime(&t, a, b));
      ms.push_back(t);
    }
    CHECK_CUDA(cudaGetLastError());
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }
};

struct Record {
  std::string kind;
  int batch, ctx;
  double ms, rate, fraction, rel_err;
};

template <typename T>
T* DeviceCopy(const std::vector<T>& v) {
  T* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, std::max<size_t>(1, v.size()) * sizeof(T)));
  CHECK_CUDA(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}

// One attention problem: `batch` sequences of `ctx` cached tokens each; queries are the last
// `qlen` tokens of each sequence. `sets` disjoint copies of the cache to rotate through.
struct Problem {
  int heads = 32, kv_heads = 8, dim = 128, block = 16, batch, ctx, qlen, sets;
  bf16 *k = nullptr, *v = nullptr, *q = nullptr, *out = nullptr;
  std::vector<int32_t*> tables;
  int32_t *pos = nullptr, *qstart = nullptr;
  int max_blocks;
  PagedAttentionParams Params(int set) const {
    PagedAttentionParams p;
    p.q = q;
    p.q_stride = int64_t{heads} * dim;
    p.out = out;
    p.out_stride = p.q_stride;
    p.k_cache = k;
    p.v_cache = v;
    p.num_blocks = max_blocks * batch * sets;
    p.num_kv_heads = kv_heads;
    p.block_size = block;
    p.head_dim = dim;
    p.num_heads = heads;
    p.num_seqs = batch;
    p.positions = pos;
    p.query_start = qstart;
    p.block_tables = tables[set];
    p.max_blocks_per_seq = max_blocks;
    p.scale = 1.0f / std::sqrt(float(dim));
    return p;
  }
  void Create() {
    max_blocks = (ctx + block - 1) / block;
    const size_t cache_elems = size_t(max_blocks) * batch * sets * kv_heads * block * dim;
    CHECK_CUDA(cudaMalloc(&k, cache_elems * sizeof(bf16)));
    CHECK_CUDA(cudaMalloc(&v, cache_elems * sizeof(bf16)));
    const size_t n_tok = size_t(batch) * qlen;
    CHECK_CUDA(cudaMalloc(&q, n_tok * heads * dim * sizeof(bf16)));
    CHECK_CUDA(cudaMalloc(&out, n_tok * heads * dim * sizeof(bf16)));
    FillKernel<<<1024, 256>>>(k, cache_elems, 1);
    FillKernel<<<1024, 256>>>(v, cache_elems, 2);
    FillKernel<<<1024, 256>>>(q, n_tok * heads * dim, 3);
    std::vector<int32_t> positions, starts{0};
    for (int s = 0; s < batch; ++s) {
      for (int t = ctx - qlen; t < ctx; ++t) positions.push_back(t);
      starts.push_back(int32_t(positions.size()));
    }
    pos = DeviceCopy(positions);
    qstart = DeviceCopy(starts);
    for (int set = 0; set < sets; ++set) {
      std::vector<int32_t> bt(size_t(batch) * max_blocks);
      for (size_t i = 0; i < bt.size(); ++i)
        bt[i] = int32_t((size_t(set) * batch * max_blocks) + i);
      tables.push_back(DeviceCopy(bt));
    }
    CHECK_CUDA(cudaDeviceSynchronize());
  }
  void Destroy() {
    for (auto* p : {k, v, q, out}) cudaFree(p);
    for (auto* t : tables) cudaFree(t);
    cudaFree(pos);
    cudaFree(qstart);
  }
  // Compares `checks` query rows against the reference kernel: relative L2 error.
  double Validate(const std::vector<int>& check_tokens) {
    std::vector<int> seq_of;
    for (int t : check_tokens) seq_of.push_back(t / qlen);
    int* dt = DeviceCopy(check_tokens);
    int* ds = DeviceCopy(seq_of);
    const int n = int(check_tokens.size());
    float *scratch, *ref;
    CHECK_CUDA(cudaMalloc(&scratch, size_t(n) * heads * ctx * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&ref, size_t(n) * heads * dim * sizeof(float)));
    RefAttentionKernel<<<dim3(n, heads), 256>>>(Params(0), dt, ds, scratch, ctx, ref);
    CHECK_CUDA(cudaDeviceSynchronize());
    std::vector<float> r(size_t(n) * heads * dim);
    CHECK_CUDA(cudaMemcpy(r.data(), ref, r.size() * sizeof(float), cudaMemcpyDeviceToHost));
    std::vector<bf16> o(size_t(batch) * qlen * heads * dim);
    CHECK_CUDA(cudaMemcpy(o.data(), out, o.size() * sizeof(bf16), cudaMemcpyDeviceToHost));
    double num = 0, den = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < heads * dim; ++j) {
        const double a = __bfloat162float(o[size_t(check_tokens[i]) * heads * dim + j]);
        const double b = r[size_t(i) * heads * dim + j];
        if (!std::isfinite(a)) return INFINITY;
        num += (a - b) * (a - b);
        den += b * b;
      }
    cudaFree(dt);
    cudaFree(ds);
    cudaFree(scratch);
    cudaFree(ref);
    return std::sqrt(num / den);
  }
};

int Run(int argc, char** argv) {
  bool quick = false;
  const char* json = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc)
      json = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--json PATH]\n", argv[0]);
      return 2;
    }
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("no CUDA device: nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t st;
  CHECK_CUDA(cudaStreamCreate(&st));
  Timer timer;
  std::vector<Record> records;

  // Ceiling 1: device-to-device copy of 2 GiB (bytes read + bytes written).
  const size_t copy_bytes = size_t(2) << 30;
  void *src, *dst;
  CHECK_CUDA(cudaMalloc(&src, copy_bytes));
  CHECK_CUDA(cudaMalloc(&dst, copy_bytes));
  FillKernel<<<1024, 256>>>(static_cast<bf16*>(src), copy_bytes / 2, 9);
  const double copy_ms = timer.Median(
      [&](int) { CHECK_CUDA(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, st)); },
      10, st);
  const double copy_gbps = 2.0 * copy_bytes / (copy_ms * 1e-3) / 1e9;
  cudaFree(src);
  cudaFree(dst);
  records.push_back({"copy_ceiling", 0, 0, copy_ms, copy_gbps, 1.0, 0.0});

  // Ceiling 2: bf16 GEMM 8192^3 through cuBLASLt, fp32 compute.
  const int64_t gm = 8192;
  bf16 *ga, *gb, *gc;
  CHECK_CUDA(cudaMalloc(&ga, gm * gm * sizeof(bf16)));
  CHECK_CUDA(cudaMalloc(&gb, gm * gm * sizeof(bf16)));
  CHECK_CUDA(cudaMalloc(&gc, gm * gm * sizeof(bf16)));
  FillKernel<<<1024, 256>>>(ga, gm * gm, 4);
  FillKernel<<<1024, 256>>>(gb, gm * gm, 5);
  auto mm = CublasLtMatmul::Create();
  if (!mm.ok()) {
    std::fprintf(stderr, "%s\n", mm.status().ToString().c_str());
    return 1;
  }
  const double gemm_ms = timer.Median(
      [&](int) {
        const Status s =
            (*mm)->Run(ga, gb, nullptr, DType::kBF16, gc, DType::kBF16, gm, gm, gm, st);
        if (!s.ok()) {
          std::fprintf(stderr, "%s\n", s.ToString().c_str());
          std::exit(1);
        }
      },
      10, st);
  const double gemm_tflops = 2.0 * gm * gm * gm / (gemm_ms * 1e-3) / 1e12;
  cudaFree(ga);
  cudaFree(gb);
  cudaFree(gc);
  records.push_back({"gemm_ceiling", 0, 0, gemm_ms, gemm_tflops, 1.0, 0.0});
  std::printf("device %s, %d SMs\nceilings: copy %.0f GB/s, bf16 GEMM %.0f TFLOP/s\n", prop.name,
              prop.multiProcessorCount, copy_gbps, gemm_tflops);

  // Decode: Llama-3-8B attention shape (32 heads, 8 KV heads, head_dim 128, block 16).
  void* ws = nullptr;
  size_t ws_bytes = 0;
  const std::vector<int> batches =
      quick ? std::vector<int>{1, 64} : std::vector<int>{1, 16, 64, 256};
  const std::vector<int> ctxs =
      quick ? std::vector<int>{512, 8192} : std::vector<int>{512, 2048, 8192, 32768};
  std::printf("\n%-8s %6s %6s %10s %10s %9s %9s\n", "decode", "batch", "ctx", "ms", "GB/s",
              "of copy", "rel_err");
  for (int batch : batches) {
    for (int ctx : ctxs) {
      Problem pr;
      pr.batch = batch;
      pr.ctx = ctx;
      pr.qlen = 1;
      const double kv_bytes = 2.0 * batch * ctx * pr.kv_heads * pr.dim * sizeof(bf16);
      if (kv_bytes > 24e9) continue;  // keep within an 80 GB card with room to spare
      pr.sets = int(std::clamp(std::ceil(2.0 * prop.l2CacheSize / kv_bytes), 1.0, 8.0));
      pr.Create();
      const DecodeLaunchShape shape = PlanDecode(pr.Params(0), ctx, prop.multiProcessorCount);
      if (shape.workspace_bytes > ws_bytes) {
        if (ws) cudaFree(ws);
        ws_bytes = shape.workspace_bytes;
        CHECK_CUDA(cudaMalloc(&ws, ws_bytes));
      }
      CHECK_CUDA(LaunchDecodeAttention(pr.Params(0), shape, ws, st));
      CHECK_CUDA(cudaStreamSynchronize(st));
      std::vector<int> check;
      for (int s = 0; s < std::min(batch, 4); ++s) check.push_back(s);
      const double err = pr.Validate(check);
      if (!(err <= 1e-2)) {
        std::fprintf(stderr, "decode batch %d ctx %d: rel err %g\n", batch, ctx, err);
        return 1;
      }
      const double ms = timer.Median(
          [&](int i) { CHECK_CUDA(LaunchDecodeAttention(pr.Params(i % pr.sets), shape, ws, st)); },
          20, st);
      const double gbps = kv_bytes / (ms * 1e-3) / 1e9;
      records.push_back({"decode", batch, ctx, ms, gbps, gbps / copy_gbps, err});
      std::printf("%-8s %6d %6d %10.4f %10.0f %8.1f%% %9.2e\n", "", batch, ctx, ms, gbps,
                  100 * gbps / copy_gbps, err);
      pr.Destroy();
    }
  }
  if (ws) cudaFree(ws);

  // Prefill: one causal prompt, same head shape. FLOPs = 4 * S^2 / 2 * heads * head_dim.
  std::printf("\n%-8s %6s %6s %10s %10s %9s %9s\n", "prefill", "batch", "len", "ms", "TFLOP/s",
              "of GEMM", "rel_err");
  const std::vector<int> lens =
      quick ? std::vector<int>{2048} : std::vector<int>{2048, 4096, 8192, 16384};
  for (int len : lens) {
    Problem pr;
    pr.batch = 1;
    pr.ctx = len;
    pr.qlen = len;
    pr.sets = 1;
    pr.Create();
    CHECK_CUDA(LaunchPrefillAttention(pr.Params(0), len, st));
    CHECK_CUDA(cudaStreamSynchronize(st));
    std::vector<int> check;
    for (int t : {0, 1, 63, 64, 65, len / 2, len - 2, len - 1}) check.push_back(t);
    const double err = pr.Validate(check);
    if (!(err <= 1e-2)) {
      std::fprintf(stderr, "prefill len %d: rel err %g\n", len, err);
      return 1;
    }
    const double ms = timer.Median(
        [&](int) { CHECK_CUDA(LaunchPrefillAttention(pr.Params(0), len, st)); }, 10, st);
    const double tflops = 4.0 * len * double(len) / 2 * pr.heads * pr.dim / (ms * 1e-3) / 1e12;
    records.push_back({"prefill", 1, len, ms, tflops, tflops / gemm_tflops, err});
    std::printf("%-8s %6d %6d %10.3f %10.1f %8.1f%% %9.2e\n", "", 1, len, ms, tflops,
                100 * tflops / gemm_tflops, err);
    pr.Destroy();
  }

  if (json != nullptr) {
    FILE* f = std::fopen(json, "w");
    if (f == nullptr) {
      std::fprintf(stderr, "cannot write %s\n", json);
      return 1;
    }
    std::fprintf(f, "{\"device\": \"%s\", \"results\": [\n", prop.name);
    for (size_t i = 0; i < records.size(); ++i) {
      const Record& r = records[i];
      std::fprintf(f,
                   "  {\"kind\": \"%s\", \"batch\": %d, \"ctx\": %d, \"ms\": %.6f, \"rate\": %.3f, "
                   "\"fraction_of_ceiling\": %.4f, \"rel_err\": %.3e}%s\n",
                   r.kind.c_str(), r.batch, r.ctx, r.ms, r.rate, r.fraction, r.rel_err,
                   i + 1 < records.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
  cudaStreamDestroy(st);
  return 0;
}

}  // namespace
}  // namespace tandem::cuda

int main(int argc, char** argv) {
  return tandem::cuda::Run(argc, argv);
}
