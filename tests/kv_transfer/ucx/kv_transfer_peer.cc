// The prefill side of the two-process UCX test: a separate executable started with
// posix_spawn (UCX state must never be forked). It receives the decode pool's endpoint and a
// reservation on fd 3, pushes its KV layer by layer with a KvSendSession over a UcxTransport,
// flushes, and reports "KV ready". --crash-after-layers=N exits abruptly after N layers.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kv_transfer/bootstrap_channel.h"
#include "kv_transfer/transfer_session.h"
#include "kv_transfer/ucx_transport.h"
#include "tests/kv_transfer/ucx/peer_protocol.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;
using namespace kv_test;

constexpr PeerId kDecodePeer = 1;

struct Args {
  KvLayout layout{0, 0, 0, 0, 0, DType::kF32};
  uint64_t seed = 1;
  int crash_after_layers = -1;
  int timeout_ms = 20000;
};

Result<Args> Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      return InvalidArgumentError("bad argument '" + arg + "'");
    }
    const std::string key = arg.substr(2, eq - 2);
    const long long v = std::atoll(arg.c_str() + eq + 1);
    if (key == "layers") a.layout.num_layers = static_cast<int>(v);
    else if (key == "blocks") a.layout.num_blocks = static_cast<int>(v);
    else if (key == "kv-heads") a.layout.num_kv_heads = static_cast<int>(v);
    else if (key == "block-size") a.layout.block_size = static_cast<int>(v);
    else if (key == "head-dim") a.layout.head_dim = static_cast<int>(v);
    else if (key == "seed") a.seed = static_cast<uint64_t>(v);
    else if (key == "crash-after-layers") a.crash_after_layers = static_cast<int>(v);
    else if (key == "timeout-ms") a.timeout_ms = static_cast<int>(v);
    else return InvalidArgumentError("unknown flag --" + key);
  }
  RETURN_IF_ERROR(a.layout.Validate());
  return a;
}

Result<Frame> Expect(BootstrapChannel& ch, uint32_t type, milliseconds timeout) {
  ASSIGN_OR_RETURN(Frame f, ch.Receive(timeout));
  if (f.type == kError) {
    return AbortedError("peer error: " + std::string(f.payload.begin(), f.payload.end()));
  }
  if (f.type != type) {
    return DataLossError("expected frame " + std::to_string(type) + ", got " +
                         std::to_string(f.type));
  }
  return f;
}

Status Run(const Args& args, BootstrapChannel& ch) {
  const milliseconds timeout(args.timeout_ms);
  const KvLayout& layout = args.layout;
  // The pool, filled with the pattern: the stand-in for a forward pass.
  std::vector<uint32_t> pool(layout.total_bytes() / 4);
  const size_t words = layout.bytes_per_block_per_kv() / 4;
  for (int l = 0; l < layout.num_layers; ++l) {
    for (int k = 0; k < 2; ++k) {
      for (int b = 0; b < layout.num_blocks; ++b) {
        uint32_t* p = pool.data() + layout.BlockOffset(l, static_cast<KvKind>(k), b) / 4;
        for (size_t w = 0; w < words; ++w) p[w] = PatternWord(args.seed, l, k, b, w);
      }
    }
  }
  ASSIGN_OR_RETURN(auto transport, UcxTransport::Create());
  ASSIGN_OR_RETURN(std::vector<uint8_t> rkey,
                   transport->RegisterMemory(pool.data(), layout.total_bytes(), MemoryKind::kHost));
  (void)rkey;  // the sender's own key is never needed: only the receiver is written to

  ASSIGN_OR_RETURN(Frame ep_frame, Expect(ch, kEndpoint, timeout));
  ASSIGN_OR_RETURN(PeerEndpoint remote, DecodePeerEndpoint(ep_frame.payload));
  RETURN_IF_ERROR(transport->Connect(kDecodePeer, remote));
  ASSIGN_OR_RETURN(Frame res_frame, Expect(ch, kReservation, timeout));
  ASSIGN_OR_RETURN(KvReservation reservation, DecodeReservation(res_frame.payload));

  // Our blocks: the first N of the pool, as a fresh prefill would have allocated them.
  std::vector<int> src(reservation.block_ids.size());
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<int>(i);
  SessionOptions options{timeout, milliseconds(2000)};
  KvSendSession session(reservation.request_id, *transport, layout, src, nullptr,
                        SessionClock::now(), options);
  SessionAction action = session.OnReservation(reservation, kDecodePeer, SessionClock::now());
  for (int l = 0; l < layout.num_layers && action == SessionAction::kNone; ++l) {
    if (l == args.crash_after_layers) {
      // Let the posted layers land (a flush of our own, outside the session), then die
      // without a KV-ready or a goodbye. Dying before the connection is fully wired up
      // trips an assertion inside UCX 1.13's tcp transport on the receiver (a UCX bug in
      // ucp_request_send_state_ff), which is not what this test is about.
      auto flushed = transport->PostFlush(kDecodePeer);
      if (flushed.ok()) WaitForTransfer(*transport, *flushed, timeout).IgnoreError();
      std::_Exit(3);
    }
    action = session.OnLayerComputed(l, SessionClock::now());
    if (action == SessionAction::kNone) action = session.Poll(SessionClock::now());
  }
  while (action == SessionAction::kNone && !IsTerminal(session.state())) {
    action = session.Poll(SessionClock::now());
  }
  if (action != SessionAction::kSendKvReady) {
    return session.status().ok() ? InternalError("send session ended without KV ready")
                                 : session.status();
  }
  RETURN_IF_ERROR(ch.Send(kKvReady, EncodeReadyNotice(session.ready_notice()), timeout));
  session.MarkNotified(SessionClock::now());
  const std::vector<uint64_t> stats{session.descriptors_posted(), session.bytes_posted()};
  RETURN_IF_ERROR(ch.Send(kStats, EncodeU64s(stats), timeout));
  // Stay alive (and progressing) until the receiver has checked the bytes.
  const auto deadline = SessionClock::now() + timeout;
  while (SessionClock::now() < deadline) {
    transport->Progress();
    ASSIGN_OR_RETURN(auto frame, ch.TryReceive(timeout));
    if (frame && frame->type == kBye) return Status::Ok();
  }
  return DeadlineExceededError("no goodbye from the receiver");
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  using namespace tandem;
  BootstrapChannel channel(3);
  auto args = Parse(argc, argv);
  Status st = args.ok() ? Run(*args, channel) : args.status();
  if (!st.ok()) {
    const std::string text = st.ToString();
    std::fprintf(stderr, "kv_transfer_peer: %s\n", text.c_str());
    channel
        .Send(kv_test::kError, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
              std::chrono::milliseconds(1000))
        .IgnoreError();
    return 1;
  }
  return 0;
}
