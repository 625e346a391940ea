// KV transfer bench: moves the KV cache of one realistic request between two processes with
// the real path (KvSendSession -> UcxTransport: one ucp_put_nbx per merged descriptor, layer
// by layer, then a flush) and compares, in the same run, with
//  - a memcpy ceiling: the same descriptors copied between two distinct buffers of the same
//    sizes in this process (with UCX-allocated pools a same-host sm put IS such a memcpy, done
//    by the sender inside ucp_put_nbx, so this is the bound for sm);
//  - ucx_perftest's ucp_put_bw for the same transport and message size (the average descriptor
//    size), when ucx_perftest is installed: it re-puts ONE buffer, so small messages stay in
//    cache and its figure is a cache ceiling, not a streaming one;
//  - ucx_perftest with one message as large as the whole transfer (streaming, apples to apples).
//
// Validates before it times: the first transfer is checked word by word by the receiver.
//
//   kv_transfer_bench [--tokens 4096] [--iters 10] [--tls sm,self --tls tcp,self]
//                     [--memory app --memory ucx] [--json out.json]
//
// The bench re-executes itself with --role=receiver for the decode side (posix_spawn: UCX
// state is never forked).
#include <CLI/CLI.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/logging.h"
#include "kv_transfer/bootstrap_channel.h"
#include "kv_transfer/child_process.h"
#include "kv_transfer/transfer_session.h"
#include "kv_transfer/ucx_transport.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kTimeout(60000);
constexpr uint64_t kSeed = 7;
constexpr PeerId kReceiver = 1;
enum : uint32_t { kEndpoint = 1, kReservation = 2, kKvReady = 3, kVerdict = 4, kBye = 5 };

// The `small` preset: 12 layers, 4 kv heads, head_dim 64, block 16, F32 on CPU.
KvLayout Preset(int num_blocks) { return KvLayout{12, num_blocks, 4, 16, 64, DType::kF32}; }

uint32_t PatternWord(int layer, int kind, int block, size_t word) {
  uint64_t x = kSeed ^ (static_cast<uint64_t>(layer) << 48) ^ (static_cast<uint64_t>(kind) << 40) ^
               (static_cast<uint64_t>(block) << 24) ^ word;
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>(x ^ (x >> 31));
}

// ---------------------------------------------------------------- receiver (decode side)

Status RunReceiver(int num_blocks, bool ucx_alloc) {
  BootstrapChannel ch(3);
  const KvLayout layout = Preset(num_blocks);
  ASSIGN_OR_RETURN(auto transport, UcxTransport::Create());
  std::vector<uint32_t> heap;
  uint32_t* pool = nullptr;
  if (ucx_alloc) {
    ASSIGN_OR_RETURN(RegisteredRegion region,
                     transport->AllocateMemory(layout.total_bytes(), MemoryKind::kHost));
    pool = static_cast<uint32_t*>(region.base);
  } else {
    heap.assign(layout.total_bytes() / 4, 0);
    pool = heap.data();
    ASSIGN_OR_RETURN(auto rkey,
                     transport->RegisterMemory(pool, layout.total_bytes(), MemoryKind::kHost));
    (void)rkey;
  }
  ASSIGN_OR_RETURN(PeerEndpoint ep, transport->LocalEndpoint());
  RETURN_IF_ERROR(ch.Send(kEndpoint, EncodePeerEndpoint(ep), kTimeout));
  std::vector<int> dst;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (std::chrono::steady_clock::now() < deadline) {
    transport->Progress();  // the target progresses too: sm puts may be emulated
    ASSIGN_OR_RETURN(auto frame, ch.TryReceive(kTimeout));
    if (!frame) continue;
    if (frame->type == kReservation) {
      ASSIGN_OR_RETURN(KvReservation r, DecodeReservation(frame->payload));
      dst = r.block_ids;
    } else if (frame->type == kKvReady) {
      // Source block i went to dst[i]; every word must match the sender's pattern.
      uint64_t wrong = 0;
      const size_t n = layout.bytes_per_block_per_kv() / 4;
      for (int l = 0; l < layout.num_layers; ++l) {
        for (int k = 0; k < 2; ++k) {
          for (size_t i = 0; i < dst.size(); ++i) {
            const uint32_t* p = pool + layout.BlockOffset(l, static_cast<KvKind>(k), dst[i]) / 4;
            for (size_t w = 0; w < n; ++w) wrong += p[w] != PatternWord(l, k, static_cast<int>(i), w);
          }
        }
      }
      const std::vector<uint64_t> verdict{wrong};
      RETURN_IF_ERROR(ch.Send(kVerdict, EncodeU64s(verdict), kTimeout));
    } else if (frame->type == kBye) {
      return Status::Ok();
    }
  }
  return DeadlineExceededError("receiver: no goodbye");
}

// ---------------------------------------------------------------- sender (prefill side)

struct Result1 {
  std::string tls, pattern, memory;
  size_t descriptors = 0;
  uint64_t bytes = 0;
  double ours_gbps = 0, ours_ms = 0, perftest_gbps = 0, memcpy_gbps = 0, perftest_whole_gbps = 0;
  uint64_t msg_size = 0;
};

std::vector<int> DestinationBlocks(int n, bool fragmented, int pool_blocks) {
  std::vector<int> dst;
  if (!fragmented) {
    for (int i = 0; i < n; ++i) dst.push_back(i);
    return dst;
  }
  // A busy decode pool: free space in runs of 1..8 blocks, scattered over the pool.
  std::mt19937 rng(kSeed);
  std::vector<int> runs_start;
  std::vector<std::pair<int, int>> runs;
  for (int b = 0; b < pool_blocks;) {
    const int len = 1 + static_cast<int>(rng() % 8);
    runs.push_back({b, std::min(len, pool_blocks - b)});
    b += len + 1 + static_cast<int>(rng() % 2);  // a used block or two between free runs
  }
  std::shuffle(runs.begin(), runs.end(), rng);
  for (auto [start, len] : runs) {
    for (int k = 0; k < len && static_cast<int>(dst.size()) < n; ++k) dst.push_back(start + k);
  }
  return dst;
}

// ucx_perftest ucp_put_bw on 127.0.0.1 with the same UCX_TLS, `iters` messages of `msg_size`
// bytes; overall bandwidth in GB/s, or a negative number when it is not installed or fails.
double RunPerftestOnce(const std::string& tls, uint64_t msg_size, uint64_t iters) {
  const char* exe = "/usr/bin/ucx_perftest";
  if (access(exe, X_OK) != 0) return -1;
  const int port = 20000 + static_cast<int>(getpid() % 20000);
  auto server = ChildProcess::Spawn({exe, "-p", std::to_string(port)}, {"UCX_TLS=" + tls}, -1,
                                    /*quiet=*/true);
  if (!server.ok()) return -1;
  usleep(300000);
  const std::string cmd = "UCX_TLS=" + tls + " timeout 120 " + exe + " 127.0.0.1 -p " +
                          std::to_string(port) + " -t ucp_put_bw -s " + std::to_string(msg_size) +
                          " -n " + std::to_string(iters) + " -w " + std::to_string(iters / 10 + 1) +
                          " -f 2>/dev/null";
  std::printf("  perftest: %s\n", cmd.c_str());
  FILE* out = popen(cmd.c_str(), "r");
  if (out == nullptr) return -1;
  char line[512];
  double mbps = -1;
  while (std::fgets(line, sizeof(line), out) != nullptr) {
    // "   iters  lat50  lat_avg  lat_overall  bw_avg  bw_overall  rate_avg  rate_overall"
    double v[8];
    if (std::sscanf(line, "%lf %lf %lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4],
                    &v[5], &v[6], &v[7]) == 8) {
      mbps = v[5];
    }
  }
  pclose(out);
  server->Wait(milliseconds(5000)).status().IgnoreError();
  return mbps < 0 ? -1 : mbps * 1048576.0 / 1e9;  // perftest's MB is 2^20 bytes
}

// Same, at most once per (tls, message size) in one bench run.
double RunPerftest(const std::string& tls, uint64_t msg_size, uint64_t iters) {
  static std::map<std::pair<std::string, uint64_t>, double> cache;
  auto key = std::make_pair(tls, msg_size);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  return cache[key] = RunPerftestOnce(tls, msg_size, iters);
}

// The memcpy ceiling: `descriptors` (every layer's) copied from a buffer of `src_bytes` into a
// distinct one of `dst_bytes` in this process, `iters` times after one untimed pass (which
// also faults the pages in). GB/s of descriptor bytes. Both buffers together (96 + 192 MiB for
// 4,096 tokens) fit this VM's 480 MiB L3, as the real pools do.
double MemcpyCeiling(const std::vector<TransferDescriptor>& descriptors, uint64_t src_bytes,
                     uint64_t dst_bytes, int iters) {
  std::unique_ptr<uint8_t[]> src(new uint8_t[src_bytes]), dst(new uint8_t[dst_bytes]);
  std::memset(src.get(), 1, src_bytes);
  std::memset(dst.get(), 0, dst_bytes);
  auto copy = [&] {
    for (const TransferDescriptor& d : descriptors) {
      std::memcpy(dst.get() + d.dst_offset, src.get() + d.src_offset, d.bytes);
    }
  };
  copy();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) copy();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile uint8_t sink = dst[descriptors.empty() ? 0 : descriptors.back().dst_offset];
  (void)sink;
  return static_cast<double>(DescriptorBytes(descriptors)) * iters / seconds / 1e9;
}

Status RunOne(const std::string& self, const std::string& tls, bool fragmented, bool ucx_alloc,
              int tokens, int iters, bool perftest, Result1& out) {
  setenv("UCX_TLS", tls.c_str(), 1);
  const int request_blocks = tokens / 16;
  const KvLayout src_layout = Preset(request_blocks);  // the prefill pool holds this request
  const int dst_pool_blocks = 2 * request_blocks;
  const KvLayout dst_layout = Preset(dst_pool_blocks);
  ASSIGN_OR_RETURN(auto transport, UcxTransport::Create());
  std::vector<uint32_t> heap;
  uint32_t* pool = nullptr;
  if (ucx_alloc) {
    ASSIGN_OR_RETURN(RegisteredRegion region,
                     transport->AllocateMemory(src_layout.total_bytes(), MemoryKind::kHost));
    pool = static_cast<uint32_t*>(region.base);
  } else {
    heap.assign(src_layout.total_bytes() / 4, 0);
    pool = heap.data();
    ASSIGN_OR_RETURN(auto rkey,
                     transport->RegisterMemory(pool, src_layout.total_bytes(), MemoryKind::kHost));
    (void)rkey;
  }
  const size_t words = src_layout.bytes_per_block_per_kv() / 4;
  for (int l = 0; l < src_layout.num_layers; ++l) {
    for (int k = 0; k < 2; ++k) {
      for (int b = 0; b < request_blocks; ++b) {
        uint32_t* p = pool + src_layout.BlockOffset(l, static_cast<KvKind>(k), b) / 4;
        for (size_t w = 0; w < words; ++w) p[w] = PatternWord(l, k, b, w);
      }
    }
  }

  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return InternalError("socketpair");
  }
  auto child = ChildProcess::Spawn(
      {self, "--role=receiver", "--pool-blocks=" + std::to_string(dst_pool_blocks),
       std::string("--memory=") + (ucx_alloc ? "ucx" : "app")},
      {"UCX_TLS=" + tls}, fds[1]);
  close(fds[1]);
  if (!child.ok()) {
    close(fds[0]);
    return child.status();
  }
  BootstrapChannel ch(fds[0]);
  ASSIGN_OR_RETURN(Frame ep_frame, ch.Receive(kTimeout));
  ASSIGN_OR_RETURN(PeerEndpoint ep, DecodePeerEndpoint(ep_frame.payload));
  RETURN_IF_ERROR(transport->Connect(kReceiver, ep));

  std::vector<int> src(request_blocks);
  for (int i = 0; i < request_blocks; ++i) src[i] = i;
  KvReservation reservation{1, dst_layout.compatibility_hash(), dst_pool_blocks,
                            DestinationBlocks(request_blocks, fragmented, dst_pool_blocks)};
  RETURN_IF_ERROR(ch.Send(kReservation, EncodeReservation(reservation), kTimeout));

  // One request's transfer exactly as the prefill node does it.
  auto transfer = [&](uint64_t request_id, size_t& descriptors, uint64_t& bytes) -> Status {
    reservation.request_id = request_id;
    KvSendSession session(request_id, *transport, src_layout, src, nullptr,
                          SessionClock::now(), SessionOptions{kTimeout, milliseconds(2000)});
    SessionAction a = session.OnReservation(reservation, kReceiver, SessionClock::now());
    for (int l = 0; l < src_layout.num_layers && a == SessionAction::kNone; ++l) {
      a = session.OnLayerComputed(l, SessionClock::now());
    }
    while (a == SessionAction::kNone && !IsTerminal(session.state())) {
      a = session.Poll(SessionClock::now());
    }
    if (a != SessionAction::kSendKvReady) return session.status();
    session.MarkNotified(SessionClock::now());
    descriptors = session.descriptors_posted();
    bytes = session.bytes_posted();
    return Status::Ok();
  };

  // Validate first.
  RETURN_IF_ERROR(transfer(1, out.descriptors, out.bytes));
  RETURN_IF_ERROR(ch.Send(kKvReady, {}, kTimeout));
  ASSIGN_OR_RETURN(Frame verdict, ch.Receive(kTimeout));
  ASSIGN_OR_RETURN(std::vector<uint64_t> wrong, DecodeU64s(verdict.payload));
  if (verdict.type != kVerdict || wrong.size() != 1 || wrong[0] != 0) {
    return DataLossError("receiver found " + std::to_string(wrong.empty() ? 0 : wrong[0]) +
                         " wrong words after the first transfer");
  }
  // Then time (one warm-up beyond the validated one).
  size_t d;
  uint64_t b;
  RETURN_IF_ERROR(transfer(2, d, b));
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) RETURN_IF_ERROR(transfer(3 + i, d, b));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RETURN_IF_ERROR(ch.Send(kBye, {}, kTimeout));
  // Keep our worker alive and progressing while the receiver tears down.
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    transport->Progress();
    ASSIGN_OR_RETURN(auto code, child->TryWait());
    if (code) {
      if (*code != 0) return InternalError("receiver exited with " + std::to_string(*code));
      break;
    }
  }
  transport.reset();

  out.tls = tls;
  out.pattern = fragmented ? "fragmented" : "contiguous";
  out.memory = ucx_alloc ? "ucx" : "app";
  out.ours_ms = seconds * 1e3 / iters;
  out.ours_gbps = static_cast<double>(out.bytes) * iters / seconds / 1e9;
  out.msg_size = out.bytes / out.descriptors;
  std::vector<TransferDescriptor> all;
  for (int l = 0; l < src_layout.num_layers; ++l) {
    ASSIGN_OR_RETURN(auto layer, BuildDescriptors(src_layout, dst_layout, l, src,
                                                  reservation.block_ids));
    all.insert(all.end(), layer.begin(), layer.end());
  }
  out.memcpy_gbps = MemcpyCeiling(all, src_layout.total_bytes(), dst_layout.total_bytes(), iters);
  if (!perftest) return Status::Ok();
  out.perftest_gbps =
      RunPerftest(tls, out.msg_size, std::max<uint64_t>(50, out.bytes * iters / out.msg_size));
  // ucx_perftest over tcp moves whole-transfer messages at ~20 MB/s here (see docs): 3 are
  // enough to measure that and keep the run short.
  const bool tcp = tls.find("tcp") != std::string::npos;
  out.perftest_whole_gbps = RunPerftest(tls, out.bytes, tcp ? 3 : 20);
  return Status::Ok();
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  using namespace tandem;
  CLI::App app{"KV-cache transfer bench (UCX, two processes on this host)"};
  std::string role = "sender";
  int pool_blocks = 0, tokens = 4096, iters = 10;
  std::vector<std::string> tls_list = {"sm,self", "tcp,self"};
  std::string json_path;
  std::vector<std::string> memories = {"app", "ucx"};
  bool perftest = true;
  app.add_option("--role", role, "internal: sender or receiver");
  app.add_option("--memory", memories,
                 "pool memory: app (heap + RegisterMemory) and/or ucx (AllocateMemory)");
  app.add_option("--pool-blocks", pool_blocks, "internal: receiver pool size");
  app.add_option("--tokens", tokens, "prompt tokens of the request (multiple of 16)");
  app.add_option("--iters", iters, "timed transfers per configuration");
  app.add_option("--tls", tls_list, "UCX_TLS values to run");
  app.add_option("--json", json_path, "also write the results as JSON here");
  app.add_option("--perftest", perftest, "also run ucx_perftest (when installed)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (role == "receiver") {
    Status st = RunReceiver(pool_blocks, memories.size() == 1 && memories[0] == "ucx");
    if (!st.ok()) std::fprintf(stderr, "receiver: %s\n", st.ToString().c_str());
    return st.ok() ? 0 : 1;
  }
  if (tokens <= 0 || tokens % 16 != 0) {
    std::fprintf(stderr, "--tokens must be a positive multiple of 16\n");
    return 2;
  }
  const KvLayout l = Preset(tokens / 16);
  std::printf("KV of one request: %d tokens, small preset (12 layers, 4 kv heads, head_dim 64, "
              "block 16, F32) = %.1f MiB; %d timed transfers each\n",
              tokens, l.total_bytes() / 1048576.0, iters);
  std::vector<Result1> results;
  const std::string self = "/proc/self/exe";
  char path[4096];
  const ssize_t n = readlink(self.c_str(), path, sizeof(path) - 1);
  const std::string exe = n > 0 ? std::string(path, static_cast<size_t>(n)) : argv[0];
  for (const auto& tls : tls_list) {
    for (const auto& memory : memories) {
      for (bool fragmented : {false, true}) {
        Result1 r;
        Status st = RunOne(exe, tls, fragmented, memory == "ucx", tokens, iters, perftest, r);
        if (!st.ok()) {
          std::fprintf(stderr, "%s %s %s: %s\n", tls.c_str(), memory.c_str(),
                       fragmented ? "fragmented" : "contiguous", st.ToString().c_str());
          return 1;
        }
        results.push_back(r);
      }
    }
  }
  std::printf("\nours: GB/s of our transfer; memcpy: the same descriptors copied in one process; "
              "perftest: ucx_perftest ucp_put_bw with our average descriptor size (re-puts one "
              "buffer) and with one message of the whole transfer\n");
  std::printf("\n%-9s %-6s %-11s %6s %9s %8s %7s %7s %6s %8s %6s %8s %6s\n", "UCX_TLS", "memory",
              "dst blocks", "descs", "msg bytes", "ms/xfer", "ours", "memcpy", "/memcpy",
              "pt(msg)", "ratio", "pt(all)", "/all");
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  for (const auto& r : results) {
    std::printf("%-9s %-6s %-11s %6zu %9llu %8.2f %7.2f %7.2f %6.2f %8.2f %6.2f %8.2f %6.2f\n",
                r.tls.c_str(), r.memory.c_str(), r.pattern.c_str(), r.descriptors,
                static_cast<unsigned long long>(r.msg_size), r.ours_ms, r.ours_gbps, r.memcpy_gbps,
                ratio(r.ours_gbps, r.memcpy_gbps), r.perftest_gbps,
                ratio(r.ours_gbps, r.perftest_gbps), r.perftest_whole_gbps,
                ratio(r.ours_gbps, r.perftest_whole_gbps));
  }
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << "[\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      f << "  {\"tls\": \"" << r.tls << "\", \"memory\": \"" << r.memory
        << "\", \"pattern\": \"" << r.pattern
        << "\", \"descriptors\": " << r.descriptors << ", \"bytes\": " << r.bytes
        << ", \"msg_bytes\": " << r.msg_size << ", \"ms_per_transfer\": " << r.ours_ms
        << ", \"ours_gbps\": " << r.ours_gbps << ", \"memcpy_gbps\": " << r.memcpy_gbps
        << ", \"perftest_gbps\": " << r.perftest_gbps
        << ", \"perftest_whole_transfer_gbps\": " << r.perftest_whole_gbps
        << "}" << (i + 1 < results.size() ? "," : "") << "\n";
    }
    f << "]\n";
  }
  return 0;
}
