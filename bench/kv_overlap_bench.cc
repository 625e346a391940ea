// Layer-wise vs whole-request KV sending with REAL prefill compute: how much of the transfer the
// prefill hides. The sender process runs the `small` preset's prefill on the CPU backend over a
// KV pool that UcxTransport allocated (exactly as prefill_node/node_runtime.cc does) and pushes
// the request's KV to a receiver process that reserved blocks in its own pool, with the real
// KvSendSession, in three modes per iteration:
//   compute  prefill only, no transfer (the baseline TTFT)
//   layer    OnLayerComputed after every layer, from the transformer's LayerDoneFn (what
//            prefill_engine.cc does): the transfer of layer l overlaps the compute of l+1..
//   whole    every layer handed to the session only once the last layer is done
// and reports, per mode (median over --iters):
//   compute ms  prefill start -> last layer's K/V written
//   added ms    last layer done -> flush complete (the KvReady moment): the transfer NOT hidden
//   ready ms    prefill start -> KvReady; "cost" = ready - the compute-only run's ready, i.e. the
//               TTFT the transfer really adds, including work it put on the compute thread
//               (with UCX shared memory the put IS a memcpy done inside ucp_put_nbx).
// The receiver behaves like decode_node's engine loop: Progress(), then waits up to
// --receiver-wait-ms for control messages (the node's cv.wait_for(1ms)); 0 makes it spin.
// The first transfer of every size is validated: the receiver checksums the reserved blocks
// and must match the sender's checksum of the prefill blocks.
//
//   kv_overlap_bench [--tokens 512,1024,2048,4096] [--iters 3] [--threads 2]
//                    [--tls sm,self --tls tcp,self] [--model DIR] [--json out.json]
#include <CLI/CLI.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/logging.h"
#include "kernels/backend.h"
#include "kv_transfer/bootstrap_channel.h"
#include "kv_transfer/child_process.h"
#include "kv_transfer/transfer_session.h"
#include "kv_transfer/ucx_transport.h"
#include "model/batch_plan.h"
#include "model/block_pool.h"
#include "model/kv_cache.h"
#include "model/make_model.h"
#include "model/model_weights.h"
#include "model/transformer.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
constexpr milliseconds kTimeout(60000);
constexpr PeerId kReceiver = 1;
enum : uint32_t { kEndpoint = 1, kReservation = 2, kChecksum = 3, kVerdict = 4, kBye = 5 };

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Order-sensitive checksum of the given blocks of every layer's K and V (8-byte words).
uint64_t Checksum(const KvLayout& layout, const uint8_t* base, std::span<const int> blocks) {
  uint64_t h = 1469598103934665603ull;
  const size_t words = layout.bytes_per_block_per_kv() / 8;
  for (int l = 0; l < layout.num_layers; ++l) {
    for (int k = 0; k < 2; ++k) {
      for (int b : blocks) {
        const auto* p = reinterpret_cast<const uint64_t*>(
            base + layout.BlockOffset(l, static_cast<KvKind>(k), b));
        for (size_t w = 0; w < words; ++w) h = (h ^ p[w]) * 1099511628211ull;
      }
    }
  }
  return h;
}

// ---------------------------------------------------------------- receiver (decode side)

Status RunReceiver(const KvLayout& layout, int wait_ms) {
  BootstrapChannel ch(3);
  ASSIGN_OR_RETURN(auto transport, UcxTransport::Create());
  ASSIGN_OR_RETURN(RegisteredRegion region,
                   transport->AllocateMemory(layout.total_bytes(), MemoryKind::kHost));
  ASSIGN_OR_RETURN(PeerEndpoint ep, transport->LocalEndpoint());
  RETURN_IF_ERROR(ch.Send(kEndpoint, EncodePeerEndpoint(ep), kTimeout));
  std::vector<int> dst;
  const auto deadline = Clock::now() + std::chrono::minutes(30);
  while (Clock::now() < deadline) {
    // decode_service.cc's loop: progress the worker, then wait a little for control messages.
    transport->Progress();
    if (wait_ms > 0) {
      pollfd p{3, POLLIN, 0};
      poll(&p, 1, wait_ms);
    }
    ASSIGN_OR_RETURN(auto frame, ch.TryReceive(kTimeout));
    if (!frame) continue;
    if (frame->type == kReservation) {
      ASSIGN_OR_RETURN(KvReservation r, DecodeReservation(frame->payload));
      dst = r.block_ids;
    } else if (frame->type == kChecksum) {
      const uint64_t sum = Checksum(layout, static_cast<const uint8_t*>(region.base), dst);
      const std::vector<uint64_t> verdict{sum};
      RETURN_IF_ERROR(ch.Send(kVerdict, EncodeU64s(verdict), kTimeout));
    } else if (frame->type == kBye) {
      return Status::Ok();
    }
  }
  return DeadlineExceededError("receiver: no goodbye");
}

// ---------------------------------------------------------------- sender (prefill side)

enum class Mode { kCompute, kLayer, kWhole };
constexpr const char* kModeNames[] = {"compute", "layer", "whole"};

struct Sample {
  double compute_ms = 0, added_ms = 0, ready_ms = 0;
};

struct Row {
  std::string tls;
  int tokens = 0;
  Mode mode = Mode::kCompute;
  double compute_ms = 0, added_ms = 0, ready_ms = 0, cost_ms = 0;
  uint64_t bytes = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Model {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ModelWeights> weights;
};

class Sender {
 public:
  Sender(Model& model, Transport& transport, KvCache& cache, const KvLayout& layout)
      : model_(model), transport_(transport), cache_(cache), layout_(layout) {}

  Status Init() {
    ASSIGN_OR_RETURN(transformer_, Transformer::Create(*model_.backend, *model_.weights));
    return Status::Ok();
  }

  // One prefill of `prompt` into `blocks`, with the transfer done as `mode` says.
  Status RunOnce(Mode mode, std::span<const int32_t> prompt, std::span<const int32_t> blocks,
                 const KvReservation& reservation, Sample& out, uint64_t& bytes) {
    const int num_layers = layout_.num_layers;
    SequenceChunk chunk;
    chunk.tokens = prompt;
    chunk.block_table = blocks;
    ASSIGN_OR_RETURN(BatchPlan plan, BuildBatchPlan(std::span<const SequenceChunk>(&chunk, 1),
                                                    cache_.block_size()));
    const Clock::time_point t0 = Clock::now();
    std::unique_ptr<KvSendSession> session;
    SessionAction action = SessionAction::kNone;
    if (mode != Mode::kCompute) {
      std::vector<int> src(blocks.begin(), blocks.end());
      session = std::make_unique<KvSendSession>(reservation.request_id, transport_, layout_,
                                                std::move(src), nullptr, t0,
                                                SessionOptions{kTimeout, milliseconds(2000)});
      // As prefill_engine.cc: the decode node reserved before the prefill step starts.
      action = session->OnReservation(reservation, kReceiver, t0);
    }
    Clock::time_point t_last{};
    RETURN_IF_ERROR(transformer_->Forward(plan, cache_, &logits_, [&](int layer) {
      const auto now = Clock::now();
      if (layer == num_layers - 1) t_last = now;
      if (action != SessionAction::kNone || !session) return;
      if (mode == Mode::kLayer) {
        action = session->OnLayerComputed(layer, now);
      } else if (layer == num_layers - 1) {
        for (int l = 0; l < num_layers && action == SessionAction::kNone; ++l) {
          action = session->OnLayerComputed(l, now);
        }
      }
    }));
    Clock::time_point t_ready = Clock::now();
    if (session) {
      while (action == SessionAction::kNone && !IsTerminal(session->state())) {
        action = session->Poll(Clock::now());
      }
      if (action != SessionAction::kSendKvReady) {
        return session->status().ok() ? InternalError("transfer ended without KV ready")
                                       : session->status();
      }
      t_ready = Clock::now();
      session->MarkNotified(t_ready);
      bytes = session->bytes_posted();
    }
    out.compute_ms = Ms(t0, t_last);
    out.added_ms = Ms(t_last, t_ready);
    out.ready_ms = Ms(t0, t_ready);
    return Status::Ok();
  }

 private:
  Model& model_;
  Transport& transport_;
  KvCache& cache_;
  KvLayout layout_;
  std::unique_ptr<Transformer> transformer_;
  std::vector<float> logits_;
};

std::string LayoutArg(const KvLayout& l) {
  return std::to_string(l.num_layers) + "," + std::to_string(l.num_blocks) + "," +
         std::to_string(l.num_kv_heads) + "," + std::to_string(l.block_size) + "," +
         std::to_string(l.head_dim) + "," + std::to_string(static_cast<int>(l.dtype));
}

Status RunTls(const std::string& exe, const std::string& tls, Model& model,
              const std::vector<int>& token_counts, int iters, int receiver_wait_ms,
              std::vector<Row>& rows) {
  setenv("UCX_TLS", tls.c_str(), 1);
  const ModelConfig& cfg = model.weights->config;
  const int max_tokens = *std::max_element(token_counts.begin(), token_counts.end());
  const int blocks_needed = BlocksForTokens(max_tokens, 16);
  KvLayout layout{static_cast<int>(cfg.num_layers), blocks_needed,
                  static_cast<int>(cfg.num_kv_heads), 16, static_cast<int>(cfg.head_dim),
                  model.backend->kv_cache_dtype()};
  ASSIGN_OR_RETURN(auto transport, UcxTransport::Create());
  ASSIGN_OR_RETURN(RegisteredRegion region,
                   transport->AllocateMemory(layout.total_bytes(), MemoryKind::kHost));
  KvCacheOptions kv;
  kv.block_size = 16;
  kv.num_blocks = blocks_needed;
  ASSIGN_OR_RETURN(auto cache, KvCache::CreateOver(region.base, layout.total_bytes(),
                                                   layout.dtype, cfg, kv));
  // The decode pool: twice as large, the request's blocks in its second half.
  KvLayout remote_layout = layout;
  remote_layout.num_blocks = 2 * blocks_needed;

  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return InternalError("socketpair");
  }
  auto child = ChildProcess::Spawn({exe, "--role=receiver", "--layout=" + LayoutArg(remote_layout),
                                    "--receiver-wait-ms=" + std::to_string(receiver_wait_ms)},
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

  Sender sender(model, *transport, *cache, layout);
  RETURN_IF_ERROR(sender.Init());
  std::mt19937 rng(11);
  uint64_t request_id = 1;
  for (int tokens : token_counts) {
    ASSIGN_OR_RETURN(std::vector<int32_t> blocks,
                     cache->pool().Allocate(BlocksForTokens(tokens, 16)));
    KvReservation reservation{0, remote_layout.compatibility_hash(), remote_layout.num_blocks, {}};
    for (size_t i = 0; i < blocks.size(); ++i) {
      reservation.block_ids.push_back(blocks_needed + static_cast<int>(i));
    }
    RETURN_IF_ERROR(ch.Send(kReservation, EncodeReservation(reservation), kTimeout));
    std::vector<int32_t> prompt(tokens);
    auto fresh_prompt = [&] {
      for (auto& t : prompt) t = static_cast<int32_t>(rng() % cfg.vocab_size);
    };

    // Validate (and warm up): one layer-wise transfer of a fresh prompt, checksummed.
    fresh_prompt();
    Sample s;
    uint64_t bytes = 0;
    reservation.request_id = request_id++;
    RETURN_IF_ERROR(sender.RunOnce(Mode::kLayer, prompt, blocks, reservation, s, bytes));
    const std::vector<int> src(blocks.begin(), blocks.end());
    const uint64_t ours = Checksum(layout, static_cast<const uint8_t*>(region.base), src);
    RETURN_IF_ERROR(ch.Send(kChecksum, {}, kTimeout));
    ASSIGN_OR_RETURN(Frame verdict, ch.Receive(kTimeout));
    ASSIGN_OR_RETURN(std::vector<uint64_t> theirs, DecodeU64s(verdict.payload));
    if (verdict.type != kVerdict || theirs.size() != 1 || theirs[0] != ours) {
      return DataLossError(tls + ", " + std::to_string(tokens) +
                           " tokens: the receiver's KV checksum differs from the sender's");
    }

    std::vector<Sample> samples[3];
    for (int it = 0; it < iters; ++it) {
      fresh_prompt();
      for (Mode mode : {Mode::kCompute, Mode::kLayer, Mode::kWhole}) {
        reservation.request_id = request_id++;
        RETURN_IF_ERROR(sender.RunOnce(mode, prompt, blocks, reservation, s, bytes));
        samples[static_cast<int>(mode)].push_back(s);
      }
    }
    const double base_ready = Median([&] {
      std::vector<double> v;
      for (const Sample& x : samples[0]) v.push_back(x.ready_ms);
      return v;
    }());
    for (Mode mode : {Mode::kCompute, Mode::kLayer, Mode::kWhole}) {
      std::vector<double> c, a, r;
      for (const Sample& x : samples[static_cast<int>(mode)]) {
        c.push_back(x.compute_ms);
        a.push_back(x.added_ms);
        r.push_back(x.ready_ms);
      }
      Row row{tls, tokens, mode, Median(c), Median(a), Median(r), Median(r) - base_ready,
              mode == Mode::kCompute ? 0 : bytes};
      rows.push_back(row);
      std::printf("%-9s %6d %-8s %10.1f %9.2f %9.1f %9.2f %8.1f\n", tls.c_str(), tokens,
                  kModeNames[static_cast<int>(mode)], row.compute_ms,
                  mode == Mode::kCompute ? 0.0 : row.added_ms, row.ready_ms, row.cost_ms,
                  row.bytes / 1048576.0);
      std::fflush(stdout);
    }
    RETURN_IF_ERROR(cache->pool().Free(blocks));
  }
  RETURN_IF_ERROR(ch.Send(kBye, {}, kTimeout));
  const auto deadline = Clock::now() + kTimeout;
  while (Clock::now() < deadline) {
    transport->Progress();
    ASSIGN_OR_RETURN(auto code, child->TryWait());
    if (code) {
      if (*code != 0) return InternalError("receiver exited with " + std::to_string(*code));
      break;
    }
  }
  cache.reset();
  return Status::Ok();
}

Result<KvLayout> ParseLayout(const std::string& s) {
  int v[6];
  if (std::sscanf(s.c_str(), "%d,%d,%d,%d,%d,%d", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) {
    return InvalidArgumentError("--layout: expected 6 integers, got '" + s + "'");
  }
  KvLayout l{v[0], v[1], v[2], v[3], v[4], static_cast<DType>(v[5])};
  RETURN_IF_ERROR(l.Validate());
  return l;
}

int Main(int argc, char** argv) {
  CLI::App app{"KV transfer overlap with real prefill compute (layer-wise vs whole-request)"};
  std::string role = "sender", layout_arg, model_dir, json_path;
  std::vector<int> token_counts = {512, 1024, 2048, 4096};
  std::vector<std::string> tls_list = {"sm,self", "tcp,self"};
  int iters = 3, threads = 2, receiver_wait_ms = 1;
  app.add_option("--role", role, "internal: sender or receiver");
  app.add_option("--layout", layout_arg, "internal: receiver pool layout");
  app.add_option("--tokens", token_counts, "prompt lengths")->delimiter(',');
  app.add_option("--iters", iters, "timed iterations per length and mode (median)");
  app.add_option("--threads", threads, "CPU backend threads for the prefill")->capture_default_str();
  app.add_option("--tls", tls_list, "UCX_TLS values to run");
  app.add_option("--receiver-wait-ms", receiver_wait_ms,
                 "receiver: wait per loop for control messages (decode node: 1; 0 spins)")
      ->capture_default_str();
  app.add_option("--model", model_dir, "model directory (default: the small preset, made once)");
  app.add_option("--json", json_path, "also write the results as JSON here");
  CLI11_PARSE(app, argc, argv);

  if (role == "receiver") {
    auto layout = ParseLayout(layout_arg);
    Status st = layout.ok() ? RunReceiver(*layout, receiver_wait_ms) : layout.status();
    if (!st.ok()) std::fprintf(stderr, "receiver: %s\n", st.ToString().c_str());
    return st.ok() ? 0 : 1;
  }
  if (token_counts.empty() || iters <= 0) {
    std::fprintf(stderr, "--tokens and --iters must not be empty or zero\n");
    return 2;
  }
  if (model_dir.empty()) {
    model_dir = std::string(TANDEM_BENCH_BINARY_DIR) + "/models/small-bf16";
    if (!std::filesystem::exists(model_dir + "/config.json")) {
      MakeModelOptions mo;
      mo.preset = "small";
      mo.out_dir = model_dir;
      if (Status s = MakeModel(mo); !s.ok()) {
        std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
        return 1;
      }
    }
  }
  Model model;
  BackendOptions bo;
  bo.num_threads = threads;
  auto backend = CreateBackend("cpu", bo);
  if (!backend.ok()) return std::fprintf(stderr, "error: %s\n", backend.status().ToString().c_str()), 1;
  model.backend = std::move(*backend);
  auto weights = LoadModelWeights(model_dir, *model.backend);
  if (!weights.ok()) return std::fprintf(stderr, "error: %s\n", weights.status().ToString().c_str()), 1;
  model.weights = std::move(*weights);

  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  const std::string exe = n > 0 ? std::string(path, static_cast<size_t>(n)) : argv[0];
  std::printf("model %s, CPU backend with %d threads, receiver wait %d ms, median of %d\n"
              "compute: start -> last layer done; added: last layer done -> flush complete; "
              "ready: start -> KV ready; cost: ready - ready(compute only)\n\n",
              model_dir.c_str(), threads, receiver_wait_ms, iters);
  std::printf("%-9s %6s %-8s %10s %9s %9s %9s %8s\n", "UCX_TLS", "tokens", "mode", "compute ms",
              "added ms", "ready ms", "cost ms", "KV MiB");
  std::vector<Row> rows;
  for (const auto& tls : tls_list) {
    Status st = RunTls(exe, tls, model, token_counts, iters, receiver_wait_ms, rows);
    if (!st.ok()) {
      std::fprintf(stderr, "%s: %s\n", tls.c_str(), st.ToString().c_str());
      return 1;
    }
  }
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << "[\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      f << "  {\"tls\": \"" << r.tls << "\", \"tokens\": " << r.tokens << ", \"mode\": \""
        << kModeNames[static_cast<int>(r.mode)] << "\", \"compute_ms\": " << r.compute_ms
        << ", \"added_ms\": " << r.added_ms << ", \"ready_ms\": " << r.ready_ms
        << ", \"cost_ms\": " << r.cost_ms << ", \"bytes\": " << r.bytes << "}"
        << (i + 1 < rows.size() ? "," : "") << "\n";
    }
    f << "]\n";
  }
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) { return tandem::Main(argc, argv); }
