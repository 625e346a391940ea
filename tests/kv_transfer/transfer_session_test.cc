#include "kv_transfer/transfer_session.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "kv_transfer/loopback_transport.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;
using SS = SendState;
using RS = ReceiveState;

// A block pool that notices leaks and double frees.
class FakePool {
 public:
  explicit FakePool(int n) : n_(n) {}
  std::vector<int> Take(std::vector<int> ids) {
    for (int id : ids) EXPECT_TRUE(used_.insert(id).second) << "block " << id << " taken twice";
    return ids;
  }
  BlockReleaser Releaser() {
    return [this](std::span<const int> ids) {
      ++release_calls_;
      for (int id : ids) EXPECT_EQ(used_.erase(id), 1u) << "block " << id << " freed twice";
    };
  }
  size_t used() const { return used_.size(); }
  int release_calls() const { return release_calls_; }

 private:
  int n_;
  std::set<int> used_;
  int release_calls_ = 0;
};

constexpr PeerId kDecodePeer = 42;

struct Fixture : ::testing::Test {
  KvLayout prefill_layout{4, 8, 2, 4, 8, DType::kF32};
  KvLayout decode_layout{4, 16, 2, 4, 8, DType::kF32};
  std::shared_ptr<LoopbackFabric> fabric = std::make_shared<LoopbackFabric>();
  LoopbackTransport prefill{fabric}, decode{fabric};
  std::vector<float> src, dst;
  FakePool prefill_pool{8}, decode_pool{16};
  SessionClock::time_point t0 = SessionClock::now();
  SessionOptions options{milliseconds(1000), milliseconds(200)};

  void SetUp() override {
    src.resize(prefill_layout.total_bytes() / 4);
    dst.assign(decode_layout.total_bytes() / 4, -1.0f);
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i) * 0.5f;
    ASSERT_TRUE(prefill.RegisterMemory(src.data(), prefill_layout.total_bytes(), MemoryKind::kHost).ok());
    ASSERT_TRUE(decode.RegisterMemory(dst.data(), decode_layout.total_bytes(), MemoryKind::kHost).ok());
    ASSERT_TRUE(prefill.Connect(kDecodePeer, *decode.LocalEndpoint()).ok());
  }

  std::unique_ptr<KvSendSession> Sender(std::vector<int> blocks, uint64_t id = 1) {
    return std::make_unique<KvSendSession>(id, prefill, prefill_layout, prefill_pool.Take(blocks),
                                           prefill_pool.Releaser(), t0, options);
  }
  std::unique_ptr<KvReceiveSession> Receiver(std::vector<int> blocks, uint64_t id = 1) {
    return std::make_unique<KvReceiveSession>(id, decode_layout, decode_pool.Take(blocks), decode_pool.Releaser(), t0,
                                              options);
  }
  bool LayerLanded(int layer, const std::vector<int>& s, const std::vector<int>& d) {
    const size_t n = prefill_layout.bytes_per_block_per_kv() / 4;
    for (KvKind k : {KvKind::kKey, KvKind::kValue}) {
      for (size_t i = 0; i < s.size(); ++i) {
        const float* a = src.data() + prefill_layout.BlockOffset(layer, k, s[i]) / 4;
        const float* b = dst.data() + decode_layout.BlockOffset(layer, k, d[i]) / 4;
        for (size_t e = 0; e < n; ++e) {
          if (a[e] != b[e]) return false;
        }
      }
    }
    return true;
  }
  template <typename S>
  static std::vector<decltype(std::declval<S>().state())> States(const S& s) {
    std::vector<decltype(std::declval<S>().state())> out;
    for (const auto& [state, t] : s.history()) out.push_back(state);
    return out;
  }
};

TEST_F(Fixture, HappyPathPushesLayerByLayerThenFlushesNotifiesAndAdmits) {
  const std::vector<int> s{2, 3, 4}, d{7, 8, 12};
  auto rx = Receiver(d);
  auto tx = Sender(s);
  KvReservation r = rx->reservation();
  EXPECT_EQ(r.block_ids, d);
  EXPECT_EQ(r.pool_num_blocks, 16);
  rx->MarkReservationSent(t0);
  EXPECT_EQ(tx->OnReservation(r, kDecodePeer, t0), SessionAction::kNone);
  EXPECT_EQ(tx->state(), SS::kSending);

  for (int layer = 0; layer < 3; ++layer) {
    EXPECT_EQ(tx->OnLayerComputed(layer, t0), SessionAction::kNone);
    EXPECT_EQ(tx->Poll(t0), SessionAction::kNone);
    // Layer-wise: this layer has landed, the next one has not.
    EXPECT_TRUE(LayerLanded(layer, s, d)) << layer;
    EXPECT_FALSE(LayerLanded(layer + 1, s, d)) << layer;
  }
  EXPECT_EQ(tx->OnLayerComputed(3, t0), SessionAction::kNone);
  EXPECT_EQ(tx->state(), SS::kFlushing);
  EXPECT_EQ(prefill_pool.used(), 3u);  // still held until the flush completes
  EXPECT_EQ(tx->Poll(t0), SessionAction::kSendKvReady);
  EXPECT_EQ(tx->state(), SS::kKvReady);
  EXPECT_EQ(prefill_pool.used(), 0u);
  EXPECT_TRUE(LayerLanded(3, s, d));
  // {2,3,4} -> {7,8} merge, {12} alone: 2 runs x (K, V) x 4 layers.
  EXPECT_EQ(tx->descriptors_posted(), 16u);
  EXPECT_EQ(tx->bytes_posted(), 4u * 2 * 3 * prefill_layout.bytes_per_block_per_kv());

  KvReadyNotice n = tx->ready_notice();
  tx->MarkNotified(t0);
  EXPECT_EQ(tx->state(), SS::kDone);
  EXPECT_EQ(rx->OnKvReady(n, t0), SessionAction::kNone);
  EXPECT_EQ(rx->state(), RS::kAdmitted);
  EXPECT_EQ(rx->TakeBlocks(), d);
  EXPECT_EQ(decode_pool.release_calls(), 0);  // the engine owns them now, not the pool
  EXPECT_EQ(States(*tx),
            (std::vector<SS>{SS::kAwaitingReservation, SS::kSending, SS::kFlushing, SS::kKvReady, SS::kDone}));
  EXPECT_EQ(States(*rx), (std::vector<RS>{RS::kReserved, RS::kAwaitingKv, RS::kAdmitted}));
  // Late events are ignored.
  EXPECT_EQ(tx->OnLayerComputed(3, t0), SessionAction::kNone);
  EXPECT_EQ(tx->Abort(AbortedError("late"), t0), SessionAction::kNone);
  EXPECT_EQ(tx->state(), SS::kDone);
  EXPECT_EQ(rx->OnKvReady(n, t0), SessionAction::kNone);
  EXPECT_EQ(prefill_pool.release_calls(), 1);
}

// A receiver whose prefix cache holds the first blocks skips them: only the rest is sent, the
// skipped destination blocks are never written, and every source block is still released.
TEST_F(Fixture, SkippedBlocksAreNotSentButReleased) {
  const std::vector<int> s{2, 3, 4}, d{7, 8, 12};
  auto rx = Receiver(d);
  auto tx = Sender(s);
  KvReservation r = rx->reservation();
  r.skip_blocks = 2;
  rx->MarkReservationSent(t0);
  ASSERT_EQ(tx->OnReservation(r, kDecodePeer, t0), SessionAction::kNone);
  for (int layer = 0; layer < 4; ++layer) ASSERT_EQ(tx->OnLayerComputed(layer, t0), SessionAction::kNone);
  ASSERT_EQ(tx->Poll(t0), SessionAction::kSendKvReady);
  for (int layer = 0; layer < 4; ++layer) {
    EXPECT_TRUE(LayerLanded(layer, {4}, {12})) << layer;
    EXPECT_FALSE(LayerLanded(layer, {2}, {7})) << layer;  // the receiver's own copy stays
  }
  EXPECT_EQ(tx->bytes_posted(), 4u * 2 * 1 * prefill_layout.bytes_per_block_per_kv());
  EXPECT_EQ(prefill_pool.used(), 0u);
  KvReadyNotice n = tx->ready_notice();
  tx->MarkNotified(t0);
  EXPECT_EQ(rx->OnKvReady(n, t0), SessionAction::kNone);
  EXPECT_EQ(rx->state(), RS::kAdmitted);
  EXPECT_EQ(rx->TakeBlocks(), d);

  // Nonsense, or nothing left to send: the session fails (fresh blocks for each try).
  for (const auto& [skip, first_block] : {std::pair{-1, 0}, std::pair{2, 5}}) {
    auto rx2 = Receiver({first_block, first_block + 1}, 2);
    auto tx2 = Sender({first_block, first_block + 1}, 2);
    KvReservation r2 = rx2->reservation();
    r2.skip_blocks = skip;
    EXPECT_EQ(tx2->OnReservation(r2, kDecodePeer, t0), SessionAction::kSendAbort) << skip;
    EXPECT_EQ(tx2->state(), SS::kFailed);
  }
}

TEST_F(Fixture, LateReservationCatchesUpOnComputedLayers) {
  const std::vector<int> s{0, 1}, d{5, 6};
  auto rx = Receiver(d);
  auto tx = Sender(s);
  EXPECT_EQ(tx->OnLayerComputed(0, t0), SessionAction::kNone);
  EXPECT_EQ(tx->OnLayerComputed(1, t0), SessionAction::kNone);
  EXPECT_EQ(tx->state(), SS::kAwaitingReservation);
  EXPECT_EQ(tx->OnReservation(rx->reservation(), kDecodePeer, t0), SessionAction::kNone);
  EXPECT_EQ(tx->Poll(t0), SessionAction::kNone);
  EXPECT_TRUE(LayerLanded(0, s, d));
  EXPECT_TRUE(LayerLanded(1, s, d));
  EXPECT_FALSE(LayerLanded(2, s, d));
  EXPECT_EQ(tx->OnLayerComputed(2, t0), SessionAction::kNone);
  EXPECT_EQ(tx->OnLayerComputed(3, t0), SessionAction::kNone);
  EXPECT_EQ(tx->Poll(t0), SessionAction::kSendKvReady);
  for (int l = 0; l < 4; ++l) EXPECT_TRUE(LayerLanded(l, s, d));
}

TEST_F(Fixture, IncompatibleLayoutFailsBothSidesAndFreesEverything) {
  auto rx = Receiver({1, 2});
  auto tx = Sender({3, 4});
  rx->MarkReservationSent(t0);
  KvReservation r = rx->reservation();
  r.layout_hash ^= 1;
  EXPECT_EQ(tx->OnReservation(r, kDecodePeer, t0), SessionAction::kSendAbort);
  EXPECT_EQ(tx->state(), SS::kFailed);
  EXPECT_EQ(tx->status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(rx->OnPeerAborted(t0), SessionAction::kNone);
  EXPECT_EQ(rx->state(), RS::kAborted);
  EXPECT_EQ(prefill_pool.used(), 0u);
  EXPECT_EQ(decode_pool.used(), 0u);
}

TEST_F(Fixture, ReservationWithWrongBlockCountOrBadIdsFails) {
  auto tx = Sender({3, 4});
  KvReservation r{1, decode_layout.compatibility_hash(), 16, {1}};
  EXPECT_EQ(tx->OnReservation(r, kDecodePeer, t0), SessionAction::kSendAbort);
  EXPECT_EQ(tx->status().code(), StatusCode::kInvalidArgument);
  auto tx2 = Sender({5, 6}, 2);
  KvReservation r2{2, decode_layout.compatibility_hash(), 16, {1, 16}};
  EXPECT_EQ(tx2->OnReservation(r2, kDecodePeer, t0), SessionAction::kSendAbort);
  EXPECT_EQ(tx2->status().code(), StatusCode::kOutOfRange);
  auto tx3 = Sender({7}, 3);
  KvReservation r3{99, decode_layout.compatibility_hash(), 16, {1}};
  EXPECT_EQ(tx3->OnReservation(r3, kDecodePeer, t0), SessionAction::kSendAbort);
  EXPECT_EQ(prefill_pool.used(), 0u);
}

TEST_F(Fixture, SenderTimesOutWithoutReservationAndTellsNobody) {
  auto tx = Sender({0, 1});
  EXPECT_EQ(tx->Poll(t0 + milliseconds(999)), SessionAction::kNone);
  EXPECT_EQ(tx->Poll(t0 + milliseconds(1000)), SessionAction::kNone);  // never reserved
  EXPECT_EQ(tx->state(), SS::kTimedOut);
  EXPECT_EQ(tx->status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(prefill_pool.used(), 0u);
}

TEST_F(Fixture, TransportErrorFailsTheSenderAfterItDrains) {
  const std::vector<int> s{0, 1}, d{3, 4};
  auto rx = Receiver(d);
  auto tx = Sender(s);
  rx->MarkReservationSent(t0);
  ASSERT_EQ(tx->OnReservation(rx->reservation(), kDecodePeer, t0), SessionAction::kNone);
  prefill.FailNextTransfers(1, UnavailableError("link down"));
  EXPECT_EQ(tx->OnLayerComputed(0, t0), SessionAction::kNone);
  EXPECT_EQ(tx->Poll(t0), SessionAction::kSendAbort);
  EXPECT_EQ(tx->state(), SS::kFailed);
  EXPECT_EQ(tx->status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(prefill_pool.used(), 0u);
  EXPECT_EQ(rx->OnPeerAborted(t0), SessionAction::kNone);
  EXPECT_EQ(decode_pool.used(), 0u);
}

TEST_F(Fixture, AbortWithWritesInFlightDrainsBeforeReleasing) {
  const std::vector<int> s{0, 1}, d{3, 4};
  auto rx = Receiver(d);
  auto tx = Sender(s);
  rx->MarkReservationSent(t0);
  ASSERT_EQ(tx->OnReservation(rx->reservation(), kDecodePeer, t0), SessionAction::kNone);
  prefill.HoldCompletions(true);  // the network stalls with layer 0 in flight
  EXPECT_EQ(tx->OnLayerComputed(0, t0), SessionAction::kNone);
  EXPECT_EQ(tx->Abort(AbortedError("client went away"), t0), SessionAction::kNone);
  EXPECT_EQ(tx->state(), SS::kDraining);
  EXPECT_EQ(tx->Poll(t0 + milliseconds(10)), SessionAction::kNone);
  EXPECT_EQ(prefill_pool.used(), 2u);                           // not released while a write may still read them
  EXPECT_EQ(tx->OnLayerComputed(1, t0), SessionAction::kNone);  // ignored while draining
  prefill.HoldCompletions(false);
  EXPECT_EQ(tx->Poll(t0 + milliseconds(20)), SessionAction::kSendAbort);
  EXPECT_EQ(tx->state(), SS::kAborted);
  EXPECT_EQ(tx->status().code(), StatusCode::kAborted);
  EXPECT_EQ(prefill_pool.used(), 0u);
  EXPECT_EQ(States(*tx), (std::vector<SS>{SS::kAwaitingReservation, SS::kSending, SS::kDraining, SS::kAborted}));
}

TEST_F(Fixture, SenderStuckPastTheDeadlineTimesOutThenDrainTimesOut) {
  auto rx = Receiver({3, 4});
  auto tx = Sender({0, 1});
  ASSERT_EQ(tx->OnReservation(rx->reservation(), kDecodePeer, t0), SessionAction::kNone);
  prefill.HoldCompletions(true);
  for (int l = 0; l < 4; ++l) ASSERT_EQ(tx->OnLayerComputed(l, t0), SessionAction::kNone);
  EXPECT_EQ(tx->state(), SS::kFlushing);
  EXPECT_EQ(tx->Poll(t0 + milliseconds(1000)), SessionAction::kNone);
  EXPECT_EQ(tx->state(), SS::kDraining);
  EXPECT_EQ(tx->Poll(t0 + milliseconds(1100)), SessionAction::kNone);
  EXPECT_EQ(prefill_pool.used(), 2u);
  EXPECT_EQ(tx->Poll(t0 + milliseconds(1200)), SessionAction::kSendAbort);
  EXPECT_EQ(tx->state(), SS::kTimedOut);
  EXPECT_EQ(prefill_pool.used(), 0u);
}

TEST_F(Fixture, OutOfOrderLayerIsABug) {
  auto tx = Sender({0});
  EXPECT_EQ(tx->OnLayerComputed(1, t0), SessionAction::kNone);  // not reserved: nobody to tell
  EXPECT_EQ(tx->state(), SS::kFailed);
  EXPECT_EQ(tx->status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(prefill_pool.used(), 0u);
}

TEST_F(Fixture, ReceiverAbortBeforeReservationSentFreesAtOnce) {
  auto rx = Receiver({1, 2, 3});
  EXPECT_EQ(rx->Abort(AbortedError("client went away"), t0), SessionAction::kNone);
  EXPECT_EQ(rx->state(), RS::kAborted);
  EXPECT_EQ(decode_pool.used(), 0u);
}

TEST_F(Fixture, ReceiverAbortAfterReservationDrainsUntilSenderConfirms) {
  auto rx = Receiver({1, 2});
  auto tx = Sender({0, 1});
  rx->MarkReservationSent(t0);
  ASSERT_EQ(tx->OnReservation(rx->reservation(), kDecodePeer, t0), SessionAction::kNone);
  prefill.HoldCompletions(true);
  ASSERT_EQ(tx->OnLayerComputed(0, t0), SessionAction::kNone);
  EXPECT_EQ(rx->Abort(AbortedError("client went away"), t0), SessionAction::kSendAbort);
  EXPECT_EQ(rx->state(), RS::kDraining);
  EXPECT_EQ(decode_pool.used(), 2u);  // the sender may still be writing
  // The KvAbort reaches the sender, which drains and confirms.
  EXPECT_EQ(tx->Abort(AbortedError("decode aborted"), t0), SessionAction::kNone);
  prefill.HoldCompletions(false);
  EXPECT_EQ(tx->Poll(t0), SessionAction::kSendAbort);
  EXPECT_EQ(rx->OnPeerAborted(t0), SessionAction::kNone);
  EXPECT_EQ(rx->state(), RS::kAborted);
  EXPECT_EQ(decode_pool.used(), 0u);
  EXPECT_EQ(prefill_pool.used(), 0u);
}

TEST_F(Fixture, ReceiverTimeoutDrainsThenTimesOut) {
  auto rx = Receiver({1, 2});
  rx->MarkReservationSent(t0);
  EXPECT_EQ(rx->Poll(t0 + milliseconds(999)), SessionAction::kNone);
  EXPECT_EQ(rx->Poll(t0 + milliseconds(1000)), SessionAction::kSendAbort);
  EXPECT_EQ(rx->state(), RS::kDraining);
  EXPECT_EQ(rx->status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(rx->Poll(t0 + milliseconds(1199)), SessionAction::kNone);
  EXPECT_EQ(decode_pool.used(), 2u);
  EXPECT_EQ(rx->Poll(t0 + milliseconds(1200)), SessionAction::kNone);
  EXPECT_EQ(rx->state(), RS::kTimedOut);
  EXPECT_EQ(decode_pool.used(), 0u);
}

TEST_F(Fixture, ReceiverTimeoutEndsEarlyWhenSenderConfirms) {
  auto rx = Receiver({1, 2});
  rx->MarkReservationSent(t0);
  ASSERT_EQ(rx->Poll(t0 + milliseconds(1000)), SessionAction::kSendAbort);
  EXPECT_EQ(rx->OnPeerAborted(t0 + milliseconds(1001)), SessionAction::kNone);
  EXPECT_EQ(rx->state(), RS::kTimedOut);  // the reason that started it is kept
  EXPECT_EQ(decode_pool.used(), 0u);
}

TEST_F(Fixture, ReceiverPeerFailureDrainsWithoutTellingTheDeadPeer) {
  auto rx = Receiver({1, 2});
  rx->MarkReservationSent(t0);
  EXPECT_EQ(rx->OnPeerFailed(UnavailableError("connection reset"), t0), SessionAction::kNone);
  EXPECT_EQ(rx->state(), RS::kDraining);
  EXPECT_EQ(rx->Poll(t0 + milliseconds(200)), SessionAction::kNone);
  EXPECT_EQ(rx->state(), RS::kPeerFailed);
  EXPECT_EQ(rx->status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(decode_pool.used(), 0u);
}

TEST_F(Fixture, ReceiverRejectsANoticeThatDoesNotMatch) {
  auto rx = Receiver({1, 2});
  rx->MarkReservationSent(t0);
  KvReadyNotice n{1, decode_layout.compatibility_hash(), 3, 0};
  EXPECT_EQ(rx->OnKvReady(n, t0), SessionAction::kNone);
  EXPECT_EQ(rx->state(), RS::kFailed);
  EXPECT_EQ(rx->status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(rx->TakeBlocks().empty());
  EXPECT_EQ(decode_pool.used(), 0u);

  auto rx2 = Receiver({5}, 2);
  rx2->MarkReservationSent(t0);
  EXPECT_EQ(rx2->OnKvReady(KvReadyNotice{2, 1234, 1, 0}, t0), SessionAction::kNone);
  EXPECT_EQ(rx2->status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(decode_pool.used(), 0u);
}

TEST_F(Fixture, DestroyingLiveSessionsReleasesTheirBlocks) {
  {
    auto rx = Receiver({1, 2});
    auto tx = Sender({0, 1});
    rx->MarkReservationSent(t0);
    ASSERT_EQ(tx->OnReservation(rx->reservation(), kDecodePeer, t0), SessionAction::kNone);
    ASSERT_EQ(tx->OnLayerComputed(0, t0), SessionAction::kNone);
  }
  EXPECT_EQ(decode_pool.used(), 0u);
  EXPECT_EQ(prefill_pool.used(), 0u);
  EXPECT_EQ(decode_pool.release_calls(), 1);
  EXPECT_EQ(prefill_pool.release_calls(), 1);
}

TEST(SessionStateTest, NamesAndTerminality) {
  EXPECT_EQ(SendStateName(SendState::kKvReady), "KV_READY");
  EXPECT_EQ(ReceiveStateName(ReceiveState::kPeerFailed), "PEER_FAILED");
  EXPECT_FALSE(IsTerminal(SendState::kKvReady));
  EXPECT_FALSE(IsTerminal(SendState::kDraining));
  EXPECT_TRUE(IsTerminal(SendState::kTimedOut));
  EXPECT_TRUE(IsTerminal(ReceiveState::kAdmitted));
  EXPECT_FALSE(IsTerminal(ReceiveState::kDraining));
}

}  // namespace
}  // namespace tandem
