#include "scheduler/placement_policy.h"

#include <gtest/gtest.h>

#include "engine/request_rules.h"
#include "tests/scheduler/placement_test_nodes.h"

namespace tandem {
namespace {

using testing::Nodes;

TEST(PlacementPolicyTest, BlocksForARequestRoundUp) {
  EXPECT_EQ(KvBlocksForRequest(16, 0, 16), 1);
  EXPECT_EQ(KvBlocksForRequest(16, 1, 16), 2);
  EXPECT_EQ(KvBlocksForRequest(10, 22, 16), 2);
  EXPECT_EQ(KvBlocksForRequest(10, 23, 16), 3);
}

TEST(PlacementPolicyTest, PicksFewestQueuedTokensAndMostFreeBlocks) {
  Nodes n;
  n.P("prefill-0", 500);
  const NodeIndex p1 = n.P("prefill-1", 20);
  n.P("prefill-2", 300);
  n.D("decode-0", 40);
  const NodeIndex d1 = n.D("decode-1", 90);
  n.D("decode-2", 60);
  n.ConnectAll();
  const PlacementDecision r = n.Place({100, 50});
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace) << r.reason.ToString();
  EXPECT_EQ(n.Id(r.prefill), n.Id(p1));
  EXPECT_EQ(n.Id(r.decode), n.Id(d1));
}

TEST(PlacementPolicyTest, TiesGoToLowestIdWhateverTheOrder) {
  Nodes n;
  n.P("prefill-2", 7);
  n.P("prefill-1", 7);
  n.P("prefill-3", 9);
  n.D("decode-3", 30);
  n.D("decode-1", 30);
  n.D("decode-0", 29);
  n.ConnectAll();
  const PlacementDecision r = n.Place({8, 8});
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace);
  EXPECT_EQ(n.Id(r.prefill), "prefill-1");
  EXPECT_EQ(n.Id(r.decode), "decode-1");
}

// Colocated workers with no prompt waiting: the one holding fewer blocks (a smaller decode
// batch) takes the request, not always the first by id.
TEST(PlacementPolicyTest, IdleColocatedWorkersBalanceByTheBlocksTheyHold) {
  Nodes n;
  n.Colocated("worker-0", 100);
  const NodeIndex w1 = n.Colocated("worker-1", 700);
  n.Colocated("worker-2", 400);
  const PlacementDecision r = n.Place({100, 50});
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace) << r.reason.ToString();
  EXPECT_EQ(r.prefill, w1);
  EXPECT_EQ(r.decode, w1);
}

TEST(PlacementPolicyTest, SkipsDecodeNodesThatCannotHoldTheRequest) {
  // 100 + 60 tokens: 10 blocks of 16, or 3 blocks of 64. decode-0 has more free blocks but
  // small ones that do not suffice; decode-1's bigger blocks hold it.
  Nodes n;
  n.P("prefill-0", 0);
  n.D("decode-0", 9, 16);
  n.D("decode-1", 3, 64);
  n.ConnectAll();
  const PlacementDecision r = n.Place({100, 60});
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace) << r.reason.ToString();
  EXPECT_EQ(n.Id(r.decode), "decode-1");
}

TEST(PlacementPolicyTest, NothingFitsNowIsDeferredAsResourceExhausted) {
  Nodes n;
  n.P("prefill-0", 0);
  n.D("decode-0", 10);
  n.D("decode-1", 124);
  n.ConnectAll();
  const PlacementDecision r = n.Place({1000, 1000});
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kDefer);  // the router queues it until a pool has room
  EXPECT_EQ(r.reason.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.reason.message().find("125 KV blocks"), std::string::npos) << r.reason.ToString();
}

// A growing pool takes the prompt's blocks on arrival: it has room for a request whose
// prompt + max_tokens it could not reserve now, while a pool that reserves does not; a request
// no pool could hold over its life is still refused.
TEST(PlacementPolicyTest, AGrowingPoolNeedsRoomForThePromptOnly) {
  Nodes n;
  n.P("prefill-0", 0);
  const NodeIndex reserving = n.D("decode-0", 70, 16, /*total=*/200);
  n.ConnectAll();
  const PlacementRequest request{1000, 1000};  // 63 prompt blocks, 125 over its life
  EXPECT_EQ(n.Place(request).kind, PlacementDecision::Kind::kDefer);
  EXPECT_EQ(BlocksNeeded(request, n[reserving]), 125u);
  n.Grows(reserving);
  EXPECT_EQ(BlocksNeeded(request, n[reserving]), 63u);
  EXPECT_EQ(LifetimeBlocks(request, n[reserving]), 125u);
  const PlacementDecision r = n.Place(request);
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace);
  EXPECT_EQ(n.Id(r.decode), "decode-0");
  EXPECT_EQ(n.Place({3000, 1000}).kind, PlacementDecision::Kind::kReject);  // 250 > 200 blocks
}

TEST(PlacementPolicyTest, ChargesCountAgainstFreeBlocksAndQueuedTokens) {
  Nodes n;
  const NodeIndex p0 = n.P("prefill-0", 10);
  n.P("prefill-1", 20);
  const NodeIndex d0 = n.D("decode-0", 50);
  n.D("decode-1", 40);
  n.ConnectAll();
  n[p0].charged_tokens = 15;  // placed since its report: now behind prefill-1
  n[d0].charged_blocks = 20;  // 30 left: decode-1 has more
  const PlacementDecision r = n.Place({16, 16});
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace);
  EXPECT_EQ(n.Id(r.prefill), "prefill-1");
  EXPECT_EQ(n.Id(r.decode), "decode-1");
}

TEST(PlacementPolicyTest, LargerThanEveryPoolIsOutOfRange) {
  Nodes n;
  n.P("prefill-0", 0);
  n.D("decode-0", 50, 16, /*total=*/50);
  n.D("decode-1", 80, 16, /*total=*/120);
  n.ConnectAll();
  const PlacementDecision r = n.Place({1000, 1000});  // 125 blocks
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kReject);
  EXPECT_EQ(r.reason.code(), StatusCode::kOutOfRange);
  EXPECT_NE(r.reason.message().find("(120)"), std::string::npos) << r.reason.ToString();
}

TEST(PlacementPolicyTest, NoCandidatesIsUnavailable) {
  Nodes only_d;
  only_d.D("decode-0", 10);
  const PlacementDecision no_p = only_d.Place({1, 1});
  ASSERT_EQ(no_p.kind, PlacementDecision::Kind::kReject);
  EXPECT_EQ(no_p.reason.code(), StatusCode::kUnavailable);
  EXPECT_NE(no_p.reason.message().find("prefill"), std::string::npos);
  Nodes only_p;
  only_p.P("prefill-0", 0);
  const PlacementDecision no_d = only_p.Place({1, 1});
  ASSERT_EQ(no_d.kind, PlacementDecision::Kind::kReject);
  EXPECT_EQ(no_d.reason.code(), StatusCode::kUnavailable);
  EXPECT_NE(no_d.reason.message().find("decode"), std::string::npos);
}

TEST(PlacementPolicyTest, UnhealthyAndExcludedNodesAreNotCandidates) {
  Nodes n;
  n.P("prefill-0", 0);
  const NodeIndex d0 = n.D("decode-0", 90);
  const NodeIndex d1 = n.D("decode-1", 80);
  const NodeIndex d2 = n.D("decode-2", 70);
  n.ConnectAll();
  n[d0].state = NodeState::kDown;
  const PlacementDecision r = n.Place({4, 4}, {d1});
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace);
  EXPECT_EQ(n.Id(r.decode), "decode-2");
  // Every healthy decode node refused it: said so, not "no healthy decode node".
  const PlacementDecision all_refused = n.Place({4, 4}, {d1, d2});
  ASSERT_EQ(all_refused.kind, PlacementDecision::Kind::kReject);
  EXPECT_EQ(all_refused.reason.code(), StatusCode::kUnavailable);
  EXPECT_NE(all_refused.reason.message().find("every healthy decode node (2) refused"), std::string::npos)
      << all_refused.reason.ToString();
}

// Prefill node `p` reaches decode node `d` and no other (of the four nodes set up).
void OnlyReaches(Nodes& n, NodeIndex p, NodeIndex d) {
  n[p].reaches.assign(4, false);
  n[p].reaches[static_cast<size_t>(d)] = true;
}

TEST(PlacementPolicyTest, OnlyConnectedPairsArePlaced) {
  Nodes n;
  const NodeIndex p0 = n.P("prefill-0", 0);   // fewer queued tokens, but reaches decode-0 only
  const NodeIndex p1 = n.P("prefill-1", 50);  // reaches decode-1 only
  const NodeIndex d0 = n.D("decode-0", 1);    // full for this request
  const NodeIndex d1 = n.D("decode-1", 90);
  OnlyReaches(n, p0, d0);
  OnlyReaches(n, p1, d1);
  const PlacementDecision r = n.Place({16, 16});
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace) << r.reason.ToString();
  EXPECT_EQ(n.Id(r.prefill), "prefill-1");
  EXPECT_EQ(n.Id(r.decode), "decode-1");

  // No prefill node reaches any decode node: waiting for room would not help.
  n[p1].reaches.assign(4, false);
  n[p0].reaches.assign(4, false);
  const PlacementDecision none = n.Place({16, 16});
  ASSERT_EQ(none.kind, PlacementDecision::Kind::kReject);
  EXPECT_EQ(none.reason.code(), StatusCode::kUnavailable);
  EXPECT_NE(none.reason.message().find("connected"), std::string::npos) << none.reason.ToString();
}

// Machines holding both phases (each prefill node reaches its machine's decode node): idle
// prefill nodes tie on work, and the tie goes to the one whose decode side has more room, not to
// the lowest id (which sent every request of a light load to one machine).
TEST(PlacementPolicyTest, EqualPrefillWorkGoesToTheMachineWithTheFreerDecodeNode) {
  Nodes n;
  const NodeIndex p0 = n.P("prefill-0", 0);
  const NodeIndex p1 = n.P("prefill-1", 0);
  const NodeIndex d0 = n.D("decode-0", 40);
  const NodeIndex d1 = n.D("decode-1", 90);
  OnlyReaches(n, p0, d0);
  OnlyReaches(n, p1, d1);
  const PlacementDecision r = n.Place({16, 16});
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace) << r.reason.ToString();
  EXPECT_EQ(n.Id(r.prefill), "prefill-1");
  EXPECT_EQ(n.Id(r.decode), "decode-1");
}

TEST(PlacementPolicyTest, AColocatedNodeIsItsOwnDecodeNode) {
  Nodes n;
  const NodeIndex w = n.Colocated("worker", 20);
  const PlacementDecision r = n.Place({16, 16});
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace);
  EXPECT_EQ(r.prefill, w);
  EXPECT_EQ(r.decode, w);
  n[w].charged_blocks = 19;
  EXPECT_EQ(n.Place({16, 16}).kind, PlacementDecision::Kind::kDefer);
}

TEST(PlacementPolicyTest, FactoryKnowsLeastLoaded) {
  auto p = CreatePlacementPolicy("least-loaded");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->name(), "least-loaded");
  auto bad = CreatePlacementPolicy("random");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
