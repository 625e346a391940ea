#include "kv_transfer/loopback_transport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <vector>

#include "kv_transfer/kv_layout.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;

struct Pair {
  std::shared_ptr<LoopbackFabric> fabric = std::make_shared<LoopbackFabric>();
  LoopbackTransport a{fabric}, b{fabric};
  std::vector<uint8_t> mem_a = std::vector<uint8_t>(4096), mem_b = std::vector<uint8_t>(8192, 0);

  Pair() {
    std::iota(mem_a.begin(), mem_a.end(), 0);
    EXPECT_TRUE(a.RegisterMemory(mem_a.data(), mem_a.size(), MemoryKind::kHost).ok());
    EXPECT_TRUE(b.RegisterMemory(mem_b.data(), mem_b.size(), MemoryKind::kHost).ok());
    auto ep = b.LocalEndpoint();
    EXPECT_TRUE(ep.ok());
    EXPECT_TRUE(a.Connect(7, *ep).ok());
  }
};

TEST(LoopbackTransportTest, PutThenFlushCopiesExactlyTheDescribedBytes) {
  Pair p;
  const std::vector<TransferDescriptor> descs = {{0, 100, 10}, {1000, 5000, 300}};
  auto put = p.a.PostPut(7, descs);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  // Nothing lands before progress: posting is asynchronous.
  EXPECT_EQ(p.mem_b[100], 0);
  auto flush = p.a.PostFlush(7);
  ASSERT_TRUE(flush.ok());
  ASSERT_TRUE(WaitForTransfer(p.a, *flush, milliseconds(100)).ok());
  ASSERT_TRUE(WaitForTransfer(p.a, *put, milliseconds(100)).ok());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(p.mem_b[100 + i], p.mem_a[i]);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(p.mem_b[5000 + i], p.mem_a[1000 + i]);
  EXPECT_EQ(p.mem_b[99], 0);
  EXPECT_EQ(p.mem_b[110], 0);
  EXPECT_EQ(p.mem_b[5300], 0);
  p.a.Release(*put);
  p.a.Release(*flush);
  EXPECT_EQ(p.a.Poll(*put).status().code(), StatusCode::kNotFound);
}

TEST(LoopbackTransportTest, MovesALayerOfKvBlocksWithMergedDescriptors) {
  auto fabric = std::make_shared<LoopbackFabric>();
  LoopbackTransport prefill(fabric), decode(fabric);
  KvLayout src{2, 8, 2, 4, 8, DType::kF32};
  KvLayout dst = src;
  dst.num_blocks = 16;
  std::vector<float> src_pool(src.total_bytes() / 4), dst_pool(dst.total_bytes() / 4, -1.0f);
  for (size_t i = 0; i < src_pool.size(); ++i) src_pool[i] = static_cast<float>(i);
  ASSERT_TRUE(prefill.RegisterMemory(src_pool.data(), src.total_bytes(), MemoryKind::kHost).ok());
  ASSERT_TRUE(decode.RegisterMemory(dst_pool.data(), dst.total_bytes(), MemoryKind::kHost).ok());
  ASSERT_TRUE(prefill.Connect(1, *decode.LocalEndpoint()).ok());
  const std::vector<int> s{0, 1, 2, 5}, d{10, 11, 12, 3};
  for (int layer = 0; layer < 2; ++layer) {
    auto descs = BuildDescriptors(src, dst, layer, s, d);
    ASSERT_TRUE(descs.ok());
    EXPECT_EQ(descs->size(), 4u);
    auto id = prefill.PostPut(1, *descs);
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(WaitForTransfer(prefill, *id, milliseconds(100)).ok());
  }
  const size_t block_floats = src.bytes_per_block_per_kv() / 4;
  for (int layer = 0; layer < 2; ++layer) {
    for (KvKind k : {KvKind::kKey, KvKind::kValue}) {
      for (size_t i = 0; i < s.size(); ++i) {
        const float* from = src_pool.data() + src.BlockOffset(layer, k, s[i]) / 4;
        const float* to = dst_pool.data() + dst.BlockOffset(layer, k, d[i]) / 4;
        for (size_t e = 0; e < block_floats; ++e) ASSERT_EQ(to[e], from[e]);
      }
      // A block that was not reserved is untouched.
      EXPECT_EQ(dst_pool[dst.BlockOffset(layer, k, 0) / 4], -1.0f);
    }
  }
}

TEST(LoopbackTransportTest, RefusesOutOfBoundsDescriptorsBeforePostingAny) {
  Pair p;
  const std::vector<TransferDescriptor> descs = {{0, 0, 16}, {4090, 0, 16}};
  EXPECT_EQ(p.a.PostPut(7, descs).status().code(), StatusCode::kOutOfRange);
  const std::vector<TransferDescriptor> remote_oob = {{0, 8190, 4}};
  EXPECT_EQ(p.a.PostPut(7, remote_oob).status().code(), StatusCode::kOutOfRange);
  const std::vector<TransferDescriptor> wrap = {{0, ~uint64_t{0} - 2, 4}};
  EXPECT_EQ(p.a.PostPut(7, wrap).status().code(), StatusCode::kOutOfRange);
  const std::vector<TransferDescriptor> empty = {{0, 0, 0}};
  EXPECT_EQ(p.a.PostPut(7, empty).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.a.in_flight(), 0u);
  p.a.Progress();
  EXPECT_EQ(p.mem_b[0], 0);
}

TEST(LoopbackTransportTest, ConnectionErrors) {
  Pair p;
  auto ep = p.b.LocalEndpoint();
  EXPECT_EQ(p.a.Connect(7, *ep).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(p.a.PostPut(8, {}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(p.a.PostFlush(8).status().code(), StatusCode::kNotFound);
  PeerEndpoint bad = *ep;
  bad.rkey[0] ^= 1;
  EXPECT_EQ(p.a.Connect(9, bad).code(), StatusCode::kInvalidArgument);
  bad = *ep;
  bad.region_bytes += 1;
  EXPECT_EQ(p.a.Connect(9, bad).code(), StatusCode::kInvalidArgument);
  bad = *ep;
  bad.worker_address = {1, 2, 3};
  EXPECT_EQ(p.a.Connect(9, bad).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.a.RegisterMemory(p.mem_a.data(), 8, MemoryKind::kHost).status().code(),
            StatusCode::kFailedPrecondition);
  LoopbackTransport c(p.fabric);
  EXPECT_EQ(c.LocalEndpoint().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.RegisterMemory(p.mem_a.data(), 8, MemoryKind::kCuda).status().code(),
            StatusCode::kUnimplemented);
  EXPECT_EQ(p.a.Disconnect(7).code(), StatusCode::kOk);
  EXPECT_EQ(p.a.Disconnect(7).code(), StatusCode::kNotFound);
}

TEST(LoopbackTransportTest, InjectedFailureAndStalls) {
  Pair p;
  const std::vector<TransferDescriptor> descs = {{0, 0, 64}};
  p.a.FailNextTransfers(1, UnavailableError("link down"));
  auto failed = p.a.PostPut(7, descs);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(p.a.Poll(*failed).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(p.mem_b[1], 0);  // a failed transfer copies nothing

  p.a.HoldCompletions(true);
  auto held = p.a.PostPut(7, descs);
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(WaitForTransfer(p.a, *held, milliseconds(5)).code(), StatusCode::kDeadlineExceeded);
  p.a.HoldCompletions(false);
  EXPECT_TRUE(WaitForTransfer(p.a, *held, milliseconds(100)).ok());
  EXPECT_EQ(p.mem_b[1], 1);
}

TEST(LoopbackTransportTest, DisconnectFailsQueuedTransfersAndVanishedPeerIsUnavailable) {
  Pair p;
  const std::vector<TransferDescriptor> descs = {{0, 0, 64}};
  p.a.HoldCompletions(true);
  auto id = p.a.PostPut(7, descs);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(p.a.Disconnect(7).ok());
  p.a.HoldCompletions(false);
  EXPECT_EQ(p.a.Poll(*id).status().code(), StatusCode::kUnavailable);

  auto fabric = std::make_shared<LoopbackFabric>();
  LoopbackTransport a(fabric);
  std::vector<uint8_t> m(64), n(64);
  ASSERT_TRUE(a.RegisterMemory(m.data(), m.size(), MemoryKind::kHost).ok());
  {
    LoopbackTransport b(fabric);
    ASSERT_TRUE(b.RegisterMemory(n.data(), n.size(), MemoryKind::kHost).ok());
    ASSERT_TRUE(a.Connect(1, *b.LocalEndpoint()).ok());
  }  // the peer process "died"
  auto late = a.PostPut(1, descs);
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(a.Poll(*late).status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

TEST(LoopbackTransportTest, AllocatedRegionIsZeroedAndReachable) {
  auto fabric = std::make_shared<LoopbackFabric>();
  LoopbackTransport a(fabric), b(fabric);
  std::vector<uint8_t> src(256);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i + 1);
  ASSERT_TRUE(a.RegisterMemory(src.data(), src.size(), MemoryKind::kHost).ok());
  auto region = b.AllocateMemory(1024, MemoryKind::kHost);
  ASSERT_TRUE(region.ok());
  const auto* dst = static_cast<const uint8_t*>(region->base);
  EXPECT_TRUE(std::all_of(dst, dst + 1024, [](uint8_t v) { return v == 0; }));
  EXPECT_EQ(b.AllocateMemory(8, MemoryKind::kHost).status().code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(a.Connect(1, *b.LocalEndpoint()).ok());
  const std::vector<TransferDescriptor> descs = {{0, 768, 256}};
  auto id = a.PostPut(1, descs);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(WaitForTransfer(a, *id, std::chrono::milliseconds(100)).ok());
  EXPECT_TRUE(std::equal(src.begin(), src.end(), dst + 768));
}

}  // namespace
}  // namespace tandem
