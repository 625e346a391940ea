// Regression test: the send session must reach kKvReady when its flush is seen complete before
// its last put. Each Transport::Poll progresses the transport, so with UCX over tcp the last
// put and the flush can complete in the same progress call made from the flush's Poll, after
// the put's own Poll said "not yet". The session used to keep only that Poll's "flush done" and
// then sat in FLUSHING until its deadline (the tcp,self bench hangs "state FLUSHING").
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "kv_transfer/loopback_transport.h"
#include "kv_transfer/transfer_session.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;

// Forwards to a LoopbackTransport, but reports each put not done on its first Poll: the
// flush (polled after the puts) is then seen complete one Poll before the last put.
class LatePutTransport final : public Transport {
 public:
  explicit LatePutTransport(LoopbackTransport& inner) : inner_(inner) {}

  const TransportCapabilities& capabilities() const override { return inner_.capabilities(); }
  Result<std::vector<uint8_t>> RegisterMemory(void* base, uint64_t bytes,
                                              MemoryKind kind) override {
    return inner_.RegisterMemory(base, bytes, kind);
  }
  Result<RegisteredRegion> AllocateMemory(uint64_t bytes, MemoryKind kind) override {
    return inner_.AllocateMemory(bytes, kind);
  }
  const std::vector<uint8_t>& LocalAddress() const override { return inner_.LocalAddress(); }
  Result<PeerEndpoint> LocalEndpoint() const override { return inner_.LocalEndpoint(); }
  Status Connect(PeerId peer, const PeerEndpoint& remote) override {
    return inner_.Connect(peer, remote);
  }
  Status Disconnect(PeerId peer) override { return inner_.Disconnect(peer); }
  Result<TransferId> PostPut(PeerId peer,
                             std::span<const TransferDescriptor> descriptors) override {
    ASSIGN_OR_RETURN(TransferId id, inner_.PostPut(peer, descriptors));
    unpolled_puts_.insert(id);
    return id;
  }
  Result<TransferId> PostFlush(PeerId peer) override { return inner_.PostFlush(peer); }
  Result<bool> Poll(TransferId id) override {
    ASSIGN_OR_RETURN(bool done, inner_.Poll(id));
    if (unpolled_puts_.erase(id)) return false;
    return done;
  }
  void Release(TransferId id) override {
    unpolled_puts_.erase(id);
    inner_.Release(id);
  }
  void Progress() override { inner_.Progress(); }

 private:
  LoopbackTransport& inner_;
  std::set<TransferId> unpolled_puts_;
};

TEST(SendSessionFlushOrder, FlushSeenBeforeTheLastPutStillReachesKvReady) {
  constexpr PeerId kDecodePeer = 7;
  const KvLayout prefill_layout{4, 8, 2, 4, 8, DType::kF32};
  const KvLayout decode_layout{4, 16, 2, 4, 8, DType::kF32};
  auto fabric = std::make_shared<LoopbackFabric>();
  LoopbackTransport prefill{fabric}, decode{fabric};
  std::vector<float> src(prefill_layout.total_bytes() / 4), dst(decode_layout.total_bytes() / 4);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i) + 0.25f;
  ASSERT_TRUE(
      prefill.RegisterMemory(src.data(), prefill_layout.total_bytes(), MemoryKind::kHost).ok());
  ASSERT_TRUE(
      decode.RegisterMemory(dst.data(), decode_layout.total_bytes(), MemoryKind::kHost).ok());
  ASSERT_TRUE(prefill.Connect(kDecodePeer, *decode.LocalEndpoint()).ok());
  LatePutTransport transport(prefill);

  const SessionClock::time_point t0 = SessionClock::now();
  int released = 0;
  KvSendSession tx(1, transport, prefill_layout, {0, 1, 2},
                   [&](std::span<const int>) { ++released; }, t0,
                   SessionOptions{milliseconds(1000), milliseconds(200)});
  const KvReservation r{1, decode_layout.compatibility_hash(), 16, {9, 3, 14}};
  ASSERT_EQ(tx.OnReservation(r, kDecodePeer, t0), SessionAction::kNone);
  for (int l = 0; l < prefill_layout.num_layers; ++l) {
    ASSERT_EQ(tx.OnLayerComputed(l, t0), SessionAction::kNone);
  }
  ASSERT_EQ(tx.state(), SendState::kFlushing);

  // First poll: every put still "running", the flush already complete.
  EXPECT_EQ(tx.Poll(t0), SessionAction::kNone);
  EXPECT_EQ(tx.state(), SendState::kFlushing);
  EXPECT_EQ(released, 0);  // the puts may still read our blocks
  // Second poll: the puts complete; the flush completed before, so the KV is ready.
  EXPECT_EQ(tx.Poll(t0 + milliseconds(1)), SessionAction::kSendKvReady);
  EXPECT_EQ(tx.state(), SendState::kKvReady);
  EXPECT_EQ(released, 1);
  EXPECT_EQ(std::vector<float>(dst.begin() + decode_layout.BlockOffset(3, KvKind::kValue, 14) / 4,
                               dst.begin() + decode_layout.BlockOffset(3, KvKind::kValue, 14) / 4 +
                                   decode_layout.bytes_per_block_per_kv() / 4),
            std::vector<float>(src.begin() + prefill_layout.BlockOffset(3, KvKind::kValue, 2) / 4,
                               src.begin() + prefill_layout.BlockOffset(3, KvKind::kValue, 2) / 4 +
                                   prefill_layout.bytes_per_block_per_kv() / 4));
  tx.MarkNotified(t0 + milliseconds(2));
  EXPECT_EQ(tx.state(), SendState::kDone);
}

}  // namespace
}  // namespace tandem
