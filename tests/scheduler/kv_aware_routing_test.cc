// KV-aware routing: a request goes to the prefill node whose prefix cache holds the start of its
// prompt unless that node is busier by more than the cached part saves; the router's index of
// each node's cache follows its reports (changes, snapshots) and forgets a node that went down.
#include <gtest/gtest.h>

#include <numeric>

#include "model/block_hash.h"
#include "scheduler/placement_policy.h"
#include "scheduler/router_core.h"
#include "tests/scheduler/placement_test_nodes.h"

namespace tandem {
namespace {

using testing::Nodes;

// The chain hashes of `prompt`'s blocks as the router computes them (all but the last token).
std::vector<BlockHash> Hashes(const std::vector<int32_t>& prompt, uint32_t bs, const std::string& salt = "") {
  std::vector<BlockHash> out;
  BlockHash h = PrefixRoot(salt);
  for (size_t i = 0; (i + 1) * bs < prompt.size(); ++i) {
    h = ChainBlockHash(h, std::span<const int32_t>(prompt.data() + i * bs, bs));
    out.push_back(h);
  }
  return out;
}

std::vector<int32_t> Prompt(int n) {
  std::vector<int32_t> p(n);
  std::iota(p.begin(), p.end(), 100);
  return p;
}

TEST(KvAwareRoutingTest, TheNodeHoldingThePrefixWinsUnlessItIsBusierThanTheSaving) {
  const auto prompt = Prompt(100);  // 6 full blocks of 16 before the last token
  const auto hashes = Hashes(prompt, 16);
  ASSERT_EQ(hashes.size(), 6u);
  for (const auto& [queued_on_cached, want_cached] :
       {std::pair{50u, true}, std::pair{95u, true}, std::pair{97u, false}, std::pair{500u, false}}) {
    Nodes n;
    n.P("prefill-0", 0);
    const NodeIndex cached = n.P("prefill-1", queued_on_cached);
    n.D("decode-0", 100);
    n.ConnectAll();
    n[cached].cache_block_size = 16;
    n[cached].cached_blocks.insert(hashes.begin(), hashes.end());  // 96 tokens cached
    PlacementRequest want{100, 10};
    want.prefix_hashes = hashes;
    want.prefix_block_size = 16;
    EXPECT_EQ(want.CachedTokensOn(n[cached]), 96);
    const PlacementDecision r = n.Place(want);
    ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace);
    EXPECT_EQ(r.prefill == cached, want_cached) << "queued " << queued_on_cached;
  }
}

TEST(KvAwareRoutingTest, OnlyTheLeadingRunOfTheSameBlockSizeCounts) {
  const auto prompt = Prompt(100);
  const auto hashes = Hashes(prompt, 16);
  NodeView node;
  node.cache_block_size = 16;
  node.cached_blocks = {hashes[0], hashes[1], hashes[3]};  // a gap after two
  PlacementRequest want{100, 10};
  want.prefix_hashes = hashes;
  want.prefix_block_size = 16;
  EXPECT_EQ(want.CachedTokensOn(node), 32);
  node.cache_block_size = 32;  // another block size: the hashes mean nothing there
  EXPECT_EQ(want.CachedTokensOn(node), 0);
  node.cache_block_size = 16;
  // A prompt of 33 tokens: at most 2 blocks (the 33rd token is computed for its logits).
  PlacementRequest short_one{33, 10};
  short_one.prefix_hashes = hashes;
  short_one.prefix_block_size = 16;
  EXPECT_EQ(short_one.CachedTokensOn(node), 32);
  PlacementRequest tiny{32, 10};
  tiny.prefix_hashes = hashes;
  tiny.prefix_block_size = 16;
  EXPECT_EQ(tiny.CachedTokensOn(node), 16);
}

TEST(KvAwareRoutingTest, WireHashesRoundTrip) {
  const auto hashes = Hashes(Prompt(80), 16);
  std::string wire;
  AppendBlockHashes(hashes, &wire);
  EXPECT_EQ(wire.size(), hashes.size() * 16);
  EXPECT_EQ(ParseBlockHashes(wire), hashes);
  wire.push_back('x');  // a torn trailing hash is ignored
  EXPECT_EQ(ParseBlockHashes(wire), hashes);
}

// Through the router core: reports build each node's index; a request follows its prefix; a
// snapshot replaces the index; a node that goes down is forgotten. Without KV-aware routing the
// router never looks.
void FollowReports(bool kv_aware_routing) {
  RouterCoreOptions options;
  options.kv_aware_routing = kv_aware_routing;
  RouterCore core(
      std::vector<NodeSpec>{
          {"prefill-0", NodeRole::kPrefill}, {"prefill-1", NodeRole::kPrefill}, {"decode-0", NodeRole::kDecode}},
      std::make_unique<LeastLoadedPolicy>(), options);
  RouterActions out;
  for (NodeIndex i = 0; i < 3; ++i) core.OnNodeConnected(i, 16, 0, &out);
  const auto prompt = Prompt(100);
  const auto hashes = Hashes(prompt, 16);
  auto report = [&](NodeIndex node, std::vector<BlockHash> stored, std::vector<BlockHash> removed, bool snapshot) {
    NodeLoadReport r;
    r.free_blocks = r.total_blocks = 1000;
    if (node < 2) {
      r.connected_decode_nodes = {"decode-0"};
      r.cache_block_size = 16;
      r.cache_stored = std::move(stored);
      r.cache_removed = std::move(removed);
      r.cache_snapshot = snapshot;
    }
    core.OnLoadReport(node, r, 0, &out);
  };
  report(0, {}, {}, true);
  report(1, {hashes.begin(), hashes.end()}, {}, false);
  report(2, {}, {}, false);
  int64_t id = 0;
  auto place = [&] {
    auto req = std::make_shared<ServingRequest>();
    req->id = ++id;
    req->prompt = prompt;
    req->params.max_tokens = 4;
    out.clear();
    EXPECT_TRUE(core.Submit(req, 0, &out).ok());
    for (const RouterAction& a : out) {
      if (const auto* s = std::get_if<SendPrefill>(&a)) return s->prefill;
    }
    return NodeIndex{-1};
  };
  EXPECT_EQ(place(), kv_aware_routing ? 1 : 0);  // without it: the lower id (both idle)
  if (!kv_aware_routing) return;
  // prefill-1 evicts the third block: 32 tokens left cached, still worth it.
  report(1, {}, {hashes[2]}, false);
  EXPECT_EQ(core.Load().nodes[1].cached_blocks.size(), 5u);
  // A snapshot with nothing: prefill-1 holds nothing, the two are equal again, so the lower id.
  report(1, {}, {}, true);
  report(0, {}, {}, false);
  EXPECT_TRUE(core.Load().nodes[1].cached_blocks.empty());
  report(1, {hashes.begin(), hashes.end()}, {}, false);
  core.OnNodeDisconnected(1, UnavailableError("gone"), 0, &out);
  EXPECT_TRUE(core.Load().nodes[1].cached_blocks.empty());
  EXPECT_EQ(place(), 0);
}

TEST(KvAwareRoutingTest, TheRouterFollowsReportsAndForgetsADownNode) { FollowReports(true); }
TEST(KvAwareRoutingTest, WithoutKvAwareRoutingTheCachesAreIgnored) { FollowReports(false); }

}  // namespace
}  // namespace tandem
