// UCX transport tests. The two-process tests put the decode side (receiver) in this gtest
// process and the prefill side (sender) in kv_transfer_peer, started with posix_spawn and
// talked to over a socketpair; every wait is bounded and the child is killed on any failure.
#include "kv_transfer/ucx_transport.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kv_transfer/bootstrap_channel.h"
#include "kv_transfer/child_process.h"
#include "kv_transfer/transfer_session.h"
#include "tests/kv_transfer/ucx/peer_protocol.h"

namespace tandem {
namespace {

using namespace kv_test;
using std::chrono::milliseconds;

constexpr milliseconds kStepTimeout(20000);
constexpr uint64_t kSeed = 20240607;

// UCX reads UCX_TLS when a context is created; tests set it for themselves and their child.
class ScopedUcxTls {
 public:
  explicit ScopedUcxTls(const std::string& tls) {
    if (const char* old = std::getenv("UCX_TLS")) old_ = old;
    setenv("UCX_TLS", tls.c_str(), 1);
  }
  ~ScopedUcxTls() {
    if (old_) setenv("UCX_TLS", old_->c_str(), 1);
    else unsetenv("UCX_TLS");
  }

 private:
  std::optional<std::string> old_;
};

// Sender pool: 64 blocks; receiver pool: 128. 4 layers x 4 kv heads x 16 x 64 F32: 16 KiB per
// block per K/V, 48 blocks -> 6 MiB moved.
KvLayout SenderLayout() { return KvLayout{4, 64, 4, 16, 64, DType::kF32}; }
KvLayout ReceiverLayout() { return KvLayout{4, 128, 4, 16, 64, DType::kF32}; }

// Fragmented like a busy decode pool: runs of different lengths, out of order.
std::vector<int> ReservedBlocks() {
  std::vector<int> ids;
  for (int b = 10; b < 20; ++b) ids.push_back(b);
  for (int b = 40; b < 60; ++b) ids.push_back(b);
  for (int b = 5; b < 9; ++b) ids.push_back(b);
  ids.push_back(127);
  for (int b = 100; b < 113; ++b) ids.push_back(b);
  return ids;  // 48 blocks in 5 runs
}

struct Peer {
  ChildProcess child;
  std::unique_ptr<BootstrapChannel> channel;
};

Result<Peer> StartPeer(const std::string& tls, const KvLayout& l, int crash_after_layers) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return InternalError("socketpair failed");
  }
  std::vector<std::string> argv = {
      TANDEM_KV_TRANSFER_PEER,
      "--layers=" + std::to_string(l.num_layers),
      "--blocks=" + std::to_string(l.num_blocks),
      "--kv-heads=" + std::to_string(l.num_kv_heads),
      "--block-size=" + std::to_string(l.block_size),
      "--head-dim=" + std::to_string(l.head_dim),
      "--seed=" + std::to_string(kSeed),
      "--crash-after-layers=" + std::to_string(crash_after_layers),
      "--timeout-ms=" + std::to_string(kStepTimeout.count())};
  auto child = ChildProcess::Spawn(argv, {"UCX_TLS=" + tls}, fds[1]);
  close(fds[1]);
  if (!child.ok()) {
    close(fds[0]);
    return child.status();
  }
  Peer p;
  p.child = std::move(*child);
  p.channel = std::make_unique<BootstrapChannel>(fds[0]);
  return p;
}

// The receiver's pool with every word set to the sentinel, registered with `transport`:
// either the application's memory (RegisterMemory) or the transport's (AllocateMemory).
struct ReceiverPool {
  KvLayout layout = ReceiverLayout();
  std::vector<uint32_t> heap;
  uint32_t* words = nullptr;

  Status Register(Transport& transport, bool transport_allocates) {
    if (transport_allocates) {
      ASSIGN_OR_RETURN(RegisteredRegion region,
                       transport.AllocateMemory(layout.total_bytes(), MemoryKind::kHost));
      words = static_cast<uint32_t*>(region.base);
      std::fill_n(words, layout.total_bytes() / 4, kSentinel);
      return Status::Ok();
    }
    heap.assign(layout.total_bytes() / 4, kSentinel);
    words = heap.data();
    ASSIGN_OR_RETURN(auto rkey, transport.RegisterMemory(words, layout.total_bytes(),
                                                         MemoryKind::kHost));
    (void)rkey;
    return Status::Ok();
  }
};

// Every reserved block holds the sender's pattern for the block it came from; every other
// block still holds the sentinel. Returns the number of mismatching words (0 = pass).
size_t CountWrongWords(const ReceiverPool& pool, const std::vector<int>& dst) {
  const KvLayout& l = pool.layout;
  const size_t n = l.bytes_per_block_per_kv() / 4;
  std::vector<int> source_of(l.num_blocks, -1);
  for (size_t i = 0; i < dst.size(); ++i) source_of[dst[i]] = static_cast<int>(i);
  size_t wrong = 0;
  for (int layer = 0; layer < l.num_layers; ++layer) {
    for (int k = 0; k < 2; ++k) {
      for (int b = 0; b < l.num_blocks; ++b) {
        const uint32_t* p = pool.words + l.BlockOffset(layer, static_cast<KvKind>(k), b) / 4;
        for (size_t w = 0; w < n; ++w) {
          const uint32_t want =
              source_of[b] < 0 ? kSentinel : PatternWord(kSeed, layer, k, source_of[b], w);
          wrong += p[w] != want;
        }
      }
    }
  }
  return wrong;
}

struct TwoProcessCase {
  std::string tls;
  bool transport_allocates;  // receiver pool from AllocateMemory instead of the heap
  std::string name;
};
void PrintTo(const TwoProcessCase& c, std::ostream* os) { *os << c.name; }

class UcxTwoProcessTest : public ::testing::TestWithParam<TwoProcessCase> {};

TEST_P(UcxTwoProcessTest, PushesFlushesNotifiesAndEveryByteLands) {
  const std::string tls = GetParam().tls;
  ScopedUcxTls env(tls);
  auto transport = UcxTransport::Create();
  if (!transport.ok()) GTEST_SKIP() << "UCX_TLS=" << tls << ": " << transport.status().ToString();
  ReceiverPool pool;
  ASSERT_TRUE(pool.Register(**transport, GetParam().transport_allocates).ok());
  auto peer = StartPeer(tls, SenderLayout(), -1);
  ASSERT_TRUE(peer.ok()) << peer.status().ToString();
  BootstrapChannel& ch = *peer->channel;

  const std::vector<int> dst = ReservedBlocks();
  std::set<int> free_blocks;
  KvReceiveSession session(
      7, pool.layout, dst, [&](std::span<const int> ids) { free_blocks.insert(ids.begin(), ids.end()); },
      SessionClock::now(), SessionOptions{kStepTimeout, milliseconds(2000)});
  ASSERT_TRUE(ch.Send(kEndpoint, EncodePeerEndpoint(*(*transport)->LocalEndpoint()), kStepTimeout).ok());
  ASSERT_TRUE(ch.Send(kReservation, EncodeReservation(session.reservation()), kStepTimeout).ok());
  session.MarkReservationSent(SessionClock::now());

  // The receiver progresses its own worker while it waits: with sm, puts may need it.
  std::optional<std::vector<uint64_t>> stats;
  while (!stats || !IsTerminal(session.state())) {
    (*transport)->Progress();
    auto frame = ch.TryReceive(kStepTimeout);
    ASSERT_TRUE(frame.ok()) << frame.status().ToString();
    ASSERT_EQ(session.Poll(SessionClock::now()), SessionAction::kNone) << session.status().ToString();
    if (!*frame) continue;
    if ((*frame)->type == kError) {
      FAIL() << "peer: " << std::string((*frame)->payload.begin(), (*frame)->payload.end());
    } else if ((*frame)->type == kKvReady) {
      auto notice = DecodeReadyNotice((*frame)->payload);
      ASSERT_TRUE(notice.ok());
      ASSERT_EQ(session.OnKvReady(*notice, SessionClock::now()), SessionAction::kNone);
      EXPECT_EQ(notice->bytes, 2u * 4 * dst.size() * pool.layout.bytes_per_block_per_kv());
    } else if ((*frame)->type == kStats) {
      auto s = DecodeU64s((*frame)->payload);
      ASSERT_TRUE(s.ok());
      stats = *s;
    }
  }
  ASSERT_EQ(session.state(), ReceiveState::kAdmitted) << session.status().ToString();
  // KV ready was sent only after the flush: the bytes must already be here, untouched by
  // anything after the notice.
  EXPECT_EQ(CountWrongWords(pool, dst), 0u);
  // 5 runs on the receiver side, source contiguous: 5 descriptors x (K, V) x 4 layers.
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ((*stats)[0], 40u);
  EXPECT_EQ((*stats)[1], 2u * 4 * dst.size() * pool.layout.bytes_per_block_per_kv());
  EXPECT_EQ(session.TakeBlocks(), dst);
  EXPECT_TRUE(free_blocks.empty());

  ASSERT_TRUE(ch.Send(kBye, {}, kStepTimeout).ok());
  // Keep progressing while the peer closes its endpoint gracefully.
  const auto deadline = SessionClock::now() + kStepTimeout;
  std::optional<int> code;
  while (!code && SessionClock::now() < deadline) {
    (*transport)->Progress();
    auto r = peer->child.TryWait();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    code = *r;
  }
  ASSERT_TRUE(code.has_value()) << "peer did not exit";
  EXPECT_EQ(*code, 0);
}

// TCP over loopback, and shared memory, into heap memory (puts emulated by UCX, completed by
// the receiver's progress) and into transport-allocated memory (direct shared-memory puts).
INSTANTIATE_TEST_SUITE_P(Tls, UcxTwoProcessTest,
                         ::testing::Values(TwoProcessCase{"tcp,self", false, "TcpSelf"},
                                           TwoProcessCase{"sm,self", false, "SmSelf"},
                                           TwoProcessCase{"sm,self", true, "SmSelfUcxMemory"}),
                         [](const auto& info) { return info.param.name; });

TEST(UcxPeerFailureTest, SenderCrashMidTransferEndsInPeerFailedWithBlocksReleased) {
  ScopedUcxTls env("tcp,self");
  auto transport = UcxTransport::Create();
  if (!transport.ok()) GTEST_SKIP() << transport.status().ToString();
  ReceiverPool pool;
  ASSERT_TRUE(pool.Register(**transport, false).ok());
  auto peer = StartPeer("tcp,self", SenderLayout(), /*crash_after_layers=*/2);
  ASSERT_TRUE(peer.ok()) << peer.status().ToString();
  BootstrapChannel& ch = *peer->channel;
  const std::vector<int> dst = ReservedBlocks();
  std::set<int> freed;
  KvReceiveSession session(
      8, pool.layout, dst, [&](std::span<const int> ids) { freed.insert(ids.begin(), ids.end()); },
      SessionClock::now(), SessionOptions{kStepTimeout, milliseconds(300)});
  ASSERT_TRUE(ch.Send(kEndpoint, EncodePeerEndpoint(*(*transport)->LocalEndpoint()), kStepTimeout).ok());
  ASSERT_TRUE(ch.Send(kReservation, EncodeReservation(session.reservation()), kStepTimeout).ok());
  session.MarkReservationSent(SessionClock::now());

  const auto deadline = SessionClock::now() + kStepTimeout;
  while (!IsTerminal(session.state()) && SessionClock::now() < deadline) {
    (*transport)->Progress();
    auto frame = ch.TryReceive(kStepTimeout);
    if (!frame.ok()) {
      // The control connection broke: the node treats the peer as failed.
      EXPECT_EQ(frame.status().code(), StatusCode::kUnavailable) << frame.status().ToString();
      if (session.state() == ReceiveState::kAwaitingKv) {
        EXPECT_EQ(session.OnPeerFailed(frame.status(), SessionClock::now()), SessionAction::kNone);
        EXPECT_EQ(session.state(), ReceiveState::kDraining);
      }
    } else if (*frame) {
      FAIL() << "unexpected frame " << (*frame)->type;
    }
    ASSERT_EQ(session.Poll(SessionClock::now()), SessionAction::kNone);
  }
  EXPECT_EQ(session.state(), ReceiveState::kPeerFailed);
  EXPECT_EQ(freed, std::set<int>(dst.begin(), dst.end()));
  auto code = peer->child.Wait(kStepTimeout);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 3);
}

// --- in-process: two UCX workers in this process, for the error paths ---

struct InProcess {
  ScopedUcxTls env{"tcp,self"};
  std::unique_ptr<UcxTransport> a, b;
  std::vector<uint8_t> mem_a = std::vector<uint8_t>(1 << 20), mem_b = std::vector<uint8_t>(1 << 20);

  // The initiator goes first, while its target still exists to answer the close.
  ~InProcess() {
    a.reset();
    b.reset();
  }

  Status Init() {
    ASSIGN_OR_RETURN(a, UcxTransport::Create());
    ASSIGN_OR_RETURN(b, UcxTransport::Create());
    for (size_t i = 0; i < mem_a.size(); ++i) mem_a[i] = static_cast<uint8_t>(i * 7);
    ASSIGN_OR_RETURN(auto key_a, a->RegisterMemory(mem_a.data(), mem_a.size(), MemoryKind::kHost));
    ASSIGN_OR_RETURN(auto key_b, b->RegisterMemory(mem_b.data(), mem_b.size(), MemoryKind::kHost));
    (void)key_a;
    (void)key_b;
    ASSIGN_OR_RETURN(PeerEndpoint ep, b->LocalEndpoint());
    return a->Connect(1, ep);
  }
  // Both workers live on this thread, so waiting must progress the target too.
  Status Wait(TransferId id) {
    const auto deadline = SessionClock::now() + milliseconds(10000);
    while (SessionClock::now() < deadline) {
      b->Progress();
      ASSIGN_OR_RETURN(bool done, a->Poll(id));
      if (done) return Status::Ok();
    }
    return DeadlineExceededError("in-process transfer");
  }
};

TEST(UcxTransportTest, InProcessPutAndFlush) {
  InProcess p;
  Status init = p.Init();
  if (!init.ok()) GTEST_SKIP() << init.ToString();
  EXPECT_TRUE(p.a->capabilities().cross_process);
  EXPECT_EQ(p.a->capabilities().name, "ucx");
  EXPECT_FALSE(p.a->LocalAddress().empty());
  const std::vector<TransferDescriptor> descs = {{0, 4096, 100000}, {500000, 100, 7}};
  auto put = p.a->PostPut(1, descs);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  auto flush = p.a->PostFlush(1);
  ASSERT_TRUE(flush.ok());
  ASSERT_TRUE(p.Wait(*flush).ok());
  ASSERT_TRUE(p.Wait(*put).ok());
  EXPECT_TRUE(std::equal(p.mem_a.begin(), p.mem_a.begin() + 100000, p.mem_b.begin() + 4096));
  EXPECT_TRUE(std::equal(p.mem_a.begin() + 500000, p.mem_a.begin() + 500007, p.mem_b.begin() + 100));
  EXPECT_EQ(p.mem_b[4095], 0);
  EXPECT_EQ(p.mem_b[4096 + 100000], 0);
  p.a->Release(*put);
  p.a->Release(*flush);
  EXPECT_EQ(p.a->Poll(*put).status().code(), StatusCode::kNotFound);
  // An empty transfer completes at once.
  auto empty = p.a->PostPut(1, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(p.Wait(*empty).ok());
  EXPECT_TRUE(p.a->Disconnect(1).ok());
  EXPECT_EQ(p.a->Disconnect(1).code(), StatusCode::kNotFound);
}

TEST(UcxTransportTest, AllocatedMemoryIsZeroedRegisteredAndExclusive) {
  ScopedUcxTls env("tcp,self");
  auto t = UcxTransport::Create();
  if (!t.ok()) GTEST_SKIP() << t.status().ToString();
  auto region = (*t)->AllocateMemory(1 << 16, MemoryKind::kHost);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  ASSERT_NE(region->base, nullptr);
  EXPECT_FALSE(region->rkey.empty());
  const auto* bytes = static_cast<const uint8_t*>(region->base);
  EXPECT_TRUE(std::all_of(bytes, bytes + (1 << 16), [](uint8_t b) { return b == 0; }));
  auto ep = (*t)->LocalEndpoint();
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->base_address, reinterpret_cast<uint64_t>(region->base));
  EXPECT_EQ(ep->region_bytes, 1u << 16);
  EXPECT_EQ(ep->rkey, region->rkey);
  EXPECT_EQ((*t)->AllocateMemory(16, MemoryKind::kHost).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST(UcxTransportTest, RefusesBadRequestsBeforeTouchingTheWire) {
  InProcess p;
  Status init = p.Init();
  if (!init.ok()) GTEST_SKIP() << init.ToString();
  const std::vector<TransferDescriptor> oob = {{0, (1 << 20) - 10, 11}};
  EXPECT_EQ(p.a->PostPut(1, oob).status().code(), StatusCode::kOutOfRange);
  const std::vector<TransferDescriptor> local_oob = {{(1 << 20) - 1, 0, 2}};
  EXPECT_EQ(p.a->PostPut(1, local_oob).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(p.a->PostPut(2, {}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(p.a->PostFlush(2).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(p.a->RegisterMemory(p.mem_a.data(), 16, MemoryKind::kHost).status().code(),
            StatusCode::kFailedPrecondition);
  auto ep = p.b->LocalEndpoint();
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(p.a->Connect(1, *ep).code(), StatusCode::kAlreadyExists);
  PeerEndpoint no_address = *ep;
  no_address.worker_address.clear();
  EXPECT_EQ(p.a->Connect(3, no_address).code(), StatusCode::kInvalidArgument);
  PeerEndpoint no_key = *ep;
  no_key.rkey.clear();
  EXPECT_EQ(p.a->Connect(3, no_key).code(), StatusCode::kInvalidArgument);
  auto fresh = UcxTransport::Create();
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ((*fresh)->LocalEndpoint().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*fresh)->PostFlush(1).status().code(), StatusCode::kFailedPrecondition);
  if (!(*fresh)->capabilities().cuda_memory) {
    EXPECT_EQ((*fresh)->RegisterMemory(p.mem_a.data(), 16, MemoryKind::kCuda).status().code(),
              StatusCode::kUnimplemented);
  }
}

}  // namespace
}  // namespace tandem
