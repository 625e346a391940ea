#include "kv_transfer/kv_layout.h"

#include <gtest/gtest.h>

#include <vector>

namespace tandem {
namespace {

// 3 layers, 10 blocks, 2 kv heads, block 4, head_dim 8, F32: 256 bytes per block per K/V.
KvLayout Small(int num_blocks = 10) {
  KvLayout l;
  l.num_layers = 3;
  l.num_blocks = num_blocks;
  l.num_kv_heads = 2;
  l.block_size = 4;
  l.head_dim = 8;
  l.dtype = DType::kF32;
  return l;
}

TEST(KvLayoutTest, Sizes) {
  KvLayout l = Small();
  EXPECT_EQ(l.bytes_per_block_per_kv(), 2u * 4 * 8 * 4);
  EXPECT_EQ(l.bytes_per_region(), 10u * 256);
  EXPECT_EQ(l.bytes_per_layer(), 2u * 10 * 256);
  EXPECT_EQ(l.total_bytes(), 3u * 2 * 10 * 256);
  l.dtype = DType::kBF16;
  EXPECT_EQ(l.bytes_per_block_per_kv(), 2u * 4 * 8 * 2);
}

TEST(KvLayoutTest, OffsetsFollowLayerKvBlockOrder) {
  KvLayout l = Small();
  EXPECT_EQ(l.RegionOffset(0, KvKind::kKey), 0u);
  EXPECT_EQ(l.RegionOffset(0, KvKind::kValue), 2560u);
  EXPECT_EQ(l.RegionOffset(1, KvKind::kKey), 5120u);
  EXPECT_EQ(l.RegionOffset(2, KvKind::kValue), 2 * 5120u + 2560u);
  EXPECT_EQ(l.BlockOffset(1, KvKind::kValue, 3), 5120u + 2560u + 3 * 256u);
  // The last byte of the last block is the last byte of the pool.
  EXPECT_EQ(l.BlockOffset(2, KvKind::kValue, 9) + l.bytes_per_block_per_kv(), l.total_bytes());
}

TEST(KvLayoutTest, LayerViewMatchesKernelCacheLayout) {
  KvLayout l = Small();
  std::vector<uint8_t> pool(l.total_bytes());
  KvCacheView v = l.LayerView(pool.data(), 2);
  EXPECT_EQ(static_cast<uint8_t*>(v.k), pool.data() + l.RegionOffset(2, KvKind::kKey));
  EXPECT_EQ(static_cast<uint8_t*>(v.v), pool.data() + l.RegionOffset(2, KvKind::kValue));
  EXPECT_EQ(v.num_blocks, 10);
  EXPECT_EQ(v.num_kv_heads, 2);
  EXPECT_EQ(v.block_size, 4);
  EXPECT_EQ(v.head_dim, 8);
  EXPECT_EQ(v.dtype, DType::kF32);
  // Element [block 5][head 1][slot 2][dim 3] of K, as the kernels index it.
  const size_t elem = ((5 * 2 + 1) * 4 + 2) * 8 + 3;
  EXPECT_EQ(static_cast<float*>(v.k) + elem,
            reinterpret_cast<float*>(pool.data() + l.BlockOffset(2, KvKind::kKey, 5)) +
                (1 * 4 + 2) * 8 + 3);
}

TEST(KvLayoutTest, ValidateNamesTheBadField) {
  KvLayout l = Small();
  EXPECT_TRUE(l.Validate().ok());
  l.head_dim = 0;
  Status s = l.Validate();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("head_dim"), std::string::npos);
}

TEST(KvLayoutTest, CompatibilityHashIsStableAndIgnoresCapacity) {
  KvLayout a = Small(10);
  // Pinned: changing the hash breaks compatibility between deployed nodes, so it must be a
  // deliberate act (bump kFormatVersion) and never an accident.
  EXPECT_EQ(a.compatibility_hash(), Small(10).compatibility_hash());
  EXPECT_EQ(a.compatibility_hash(), Small(500).compatibility_hash());
  EXPECT_TRUE(KvLayout::Compatible(a, Small(500)));
  const uint64_t base = a.compatibility_hash();
  for (int field = 0; field < 5; ++field) {
    KvLayout b = a;
    switch (field) {
      case 0: b.num_layers = 4; break;
      case 1: b.num_kv_heads = 1; break;
      case 2: b.block_size = 8; break;
      case 3: b.head_dim = 16; break;
      case 4: b.dtype = DType::kBF16; break;
    }
    EXPECT_NE(b.compatibility_hash(), base) << "field " << field;
    EXPECT_FALSE(KvLayout::Compatible(a, b)) << "field " << field;
  }
  // Swapping two fields' values must not collide (the hash is order-sensitive).
  KvLayout c = a, d = a;
  c.block_size = 8; c.head_dim = 4;
  d.block_size = 4; d.head_dim = 8;
  EXPECT_NE(c.compatibility_hash(), d.compatibility_hash());
}

TEST(KvLayoutTest, CompatibilityHashGoldenValue) {
  // FNV-1a over (version=1, 3, 2, 4, 8 as u32 LE, dtype F32=0 as u8), computed independently.
  uint64_t h = 14695981039346656037ull;
  auto mix = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) { h ^= (v >> (8 * i)) & 0xff; h *= 1099511628211ull; }
  };
  mix(1, 4); mix(3, 4); mix(2, 4); mix(4, 4); mix(8, 4); mix(0, 1);
  EXPECT_EQ(Small().compatibility_hash(), h);
}

constexpr uint64_t kB = 256;  // bytes per block per K/V in Small()

TEST(BuildDescriptorsTest, FullyContiguousRunIsOneDescriptorPerKind) {
  KvLayout l = Small();
  auto d = BuildDescriptors(l, 1, std::vector<int>{2, 3, 4, 5}, std::vector<int>{6, 7, 8, 9});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->size(), 2u);
  EXPECT_EQ((*d)[0], (TransferDescriptor{l.BlockOffset(1, KvKind::kKey, 2),
                                         l.BlockOffset(1, KvKind::kKey, 6), 4 * kB}));
  EXPECT_EQ((*d)[1], (TransferDescriptor{l.BlockOffset(1, KvKind::kValue, 2),
                                         l.BlockOffset(1, KvKind::kValue, 6), 4 * kB}));
  EXPECT_EQ(DescriptorBytes(*d), 8 * kB);
}

TEST(BuildDescriptorsTest, ContiguousOnOneSideOnlyDoesNotMerge) {
  KvLayout l = Small();
  // Source contiguous, destination not.
  auto a = BuildDescriptors(l, 0, std::vector<int>{0, 1, 2}, std::vector<int>{5, 3, 1});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size(), 6u);
  // Destination contiguous, source not.
  auto b = BuildDescriptors(l, 0, std::vector<int>{4, 0, 7}, std::vector<int>{1, 2, 3});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->size(), 6u);
  for (const auto& d : *b) EXPECT_EQ(d.bytes, kB);
}

TEST(BuildDescriptorsTest, MixedRunsSplitExactlyWhereEitherSideBreaks) {
  KvLayout l = Small();
  // pairs: (0,4) (1,5) | (2,9) | (3,0) (4,1) (5,2) | (8,3)
  const std::vector<int> src{0, 1, 2, 3, 4, 5, 8};
  const std::vector<int> dst{4, 5, 9, 0, 1, 2, 3};
  auto d = BuildDescriptors(l, 2, src, dst);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->size(), 8u);
  const struct { int s, dd, n; } runs[] = {{0, 4, 2}, {2, 9, 1}, {3, 0, 3}, {8, 3, 1}};
  for (int k = 0; k < 2; ++k) {
    const KvKind kind = k == 0 ? KvKind::kKey : KvKind::kValue;
    for (int r = 0; r < 4; ++r) {
      const TransferDescriptor& got = (*d)[k * 4 + r];
      EXPECT_EQ(got.src_offset, l.BlockOffset(2, kind, runs[r].s)) << k << "/" << r;
      EXPECT_EQ(got.dst_offset, l.BlockOffset(2, kind, runs[r].dd)) << k << "/" << r;
      EXPECT_EQ(got.bytes, runs[r].n * kB) << k << "/" << r;
    }
  }
  EXPECT_EQ(DescriptorBytes(*d), 2 * src.size() * kB);
}

TEST(BuildDescriptorsTest, DescendingIdsNeverMerge) {
  KvLayout l = Small();
  auto d = BuildDescriptors(l, 0, std::vector<int>{3, 2, 1}, std::vector<int>{3, 2, 1});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size(), 6u);
}

TEST(BuildDescriptorsTest, KAndVNeverMergeEvenWhenByteAdjacent) {
  // Moving the whole pool: the K region ends exactly where the V region starts, on both sides,
  // yet K and V stay separate descriptors (the receiver may lay them out differently later).
  KvLayout l = Small();
  std::vector<int> all(10);
  for (int i = 0; i < 10; ++i) all[i] = i;
  auto d = BuildDescriptors(l, 1, all, all);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->size(), 2u);
  EXPECT_EQ((*d)[0].src_offset + (*d)[0].bytes, (*d)[1].src_offset);
  EXPECT_EQ((*d)[0].dst_offset + (*d)[0].bytes, (*d)[1].dst_offset);
  EXPECT_EQ((*d)[0].bytes, l.bytes_per_region());
  EXPECT_EQ((*d)[1].bytes, l.bytes_per_region());
}

TEST(BuildDescriptorsTest, DifferentPoolCapacitiesUseEachSidesOffsets) {
  KvLayout src = Small(4), dst = Small(100);
  auto d = BuildDescriptors(src, dst, 2, std::vector<int>{0, 1}, std::vector<int>{50, 51});
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->size(), 2u);
  EXPECT_EQ((*d)[1].src_offset, 2 * src.bytes_per_layer() + src.bytes_per_region());
  EXPECT_EQ((*d)[1].dst_offset, 2 * dst.bytes_per_layer() + dst.bytes_per_region() + 50 * kB);
  EXPECT_EQ((*d)[1].bytes, 2 * kB);
}

TEST(BuildDescriptorsTest, EmptyListGivesNoDescriptors) {
  auto d = BuildDescriptors(Small(), 0, std::vector<int>{}, std::vector<int>{});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->empty());
}

TEST(BuildDescriptorsTest, LongRandomListMatchesBlockByBlockCopy) {
  // Property: applying the merged descriptors moves exactly the bytes a per-block copy moves.
  KvLayout src = Small(64), dst = Small(80);
  std::vector<int> s, d;
  uint32_t x = 12345;  // fixed LCG seed
  auto next = [&] { return x = x * 1664525u + 1013904223u; };
  int si = 0, di = 0;
  while (si < 60 && di < 76) {
    const int run = 1 + static_cast<int>(next() % 5);
    for (int k = 0; k < run && si < 60 && di < 76; ++k) { s.push_back(si++); d.push_back(di++); }
    si += static_cast<int>(next() % 3);
    di += static_cast<int>(next() % 2);
  }
  std::vector<uint8_t> a(src.total_bytes()), b1(dst.total_bytes(), 0), b2(dst.total_bytes(), 0);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(next() >> 24);
  for (int layer = 0; layer < 3; ++layer) {
    auto descs = BuildDescriptors(src, dst, layer, s, d);
    ASSERT_TRUE(descs.ok());
    EXPECT_LT(descs->size(), 2 * s.size());  // some merging happened
    for (const auto& t : *descs) {
      std::copy_n(a.begin() + t.src_offset, t.bytes, b1.begin() + t.dst_offset);
    }
    for (size_t i = 0; i < s.size(); ++i) {
      for (KvKind k : {KvKind::kKey, KvKind::kValue}) {
        std::copy_n(a.begin() + src.BlockOffset(layer, k, s[i]), kB,
                    b2.begin() + dst.BlockOffset(layer, k, d[i]));
      }
    }
  }
  EXPECT_EQ(b1, b2);
}

TEST(BuildDescriptorsTest, RejectsBadInput) {
  KvLayout l = Small();
  auto code = [&](const KvLayout& a, const KvLayout& b, int layer, std::vector<int> s,
                  std::vector<int> d) { return BuildDescriptors(a, b, layer, s, d).status().code(); };
  EXPECT_EQ(code(l, l, 0, {1, 2}, {1}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(l, l, 3, {1}, {1}), StatusCode::kOutOfRange);
  EXPECT_EQ(code(l, l, -1, {1}, {1}), StatusCode::kOutOfRange);
  EXPECT_EQ(code(l, l, 0, {10}, {1}), StatusCode::kOutOfRange);
  EXPECT_EQ(code(l, l, 0, {-1}, {1}), StatusCode::kOutOfRange);
  EXPECT_EQ(code(l, Small(5), 0, {1}, {5}), StatusCode::kOutOfRange);
  EXPECT_EQ(code(l, l, 0, {1, 2}, {4, 4}), StatusCode::kInvalidArgument);  // dst twice
  KvLayout bf = l;
  bf.dtype = DType::kBF16;
  EXPECT_EQ(code(l, bf, 0, {1}, {1}), StatusCode::kFailedPrecondition);
  KvLayout broken = l;
  broken.num_kv_heads = 0;
  EXPECT_EQ(code(broken, l, 0, {1}, {1}), StatusCode::kInvalidArgument);
  // Naming the same SOURCE block twice is allowed (e.g. shared prefix blocks fanned out).
  EXPECT_TRUE(BuildDescriptors(l, 0, std::vector<int>{1, 1}, std::vector<int>{2, 3}).ok());
}

}  // namespace
}  // namespace tandem
