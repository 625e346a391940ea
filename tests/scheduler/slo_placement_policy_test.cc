// The SLO policy on constructed clusters and a constructed latency model, so every prediction
// can be worked out by hand:
//   prefill  1 ms + 0.1 ms/token (a 100-token prompt: 11 ms)
//   decode   10 ms + 0.001 ms/context token + 1 ms/sequence
//   transfer 1 us/token over 10 layers: the exposed last layer is 0.1 us/token
#include "scheduler/slo_placement_policy.h"

#include <gtest/gtest.h>

#include "tests/scheduler/placement_test_nodes.h"

namespace tandem {
namespace {

using testing::Nodes;

LatencyProfile HandProfile() {
  LatencyProfile p;
  p.num_layers = 10;
  p.kv_bytes_per_token = 1000;
  p.max_num_batched_tokens = 2048;
  p.prefill = {{0, 1000, 100, 0}};
  p.decode = {{0, 10000, 1, 1000}};
  p.transfer = {{0, 0, 1000}};
  return p;
}

PlacementRequest Want(int32_t prompt, int32_t max_tokens, double ttft_ms, double tpot_ms, int64_t waited_us = 0) {
  PlacementRequest r;
  r.prompt_tokens = prompt;
  r.max_tokens = max_tokens;
  r.slo.ttft_ms = ttft_ms;
  r.slo.tpot_ms = tpot_ms;
  r.waited_us = waited_us;
  return r;
}

// A prompt placed on p, due at `deadline_us` (by default before anything a test asks about).
void PlacePrompt(NodeView& p, int64_t tokens, int64_t deadline_us = 0) {
  p.placed.prefill_queue.emplace(deadline_us, tokens);
}

void PlaceSequences(NodeView& d, int32_t count, int64_t context_each, double tpot_target_ms = 0) {
  for (int32_t i = 0; i < count; ++i) {
    ++d.placed.decode_requests;
    d.placed.decode_context_tokens += context_each;
    if (tpot_target_ms > 0) d.placed.tpot_targets_ms.insert(tpot_target_ms);
  }
}

TEST(SloPlacementPolicyTest, PredictionsAddUpAsDocumented) {
  Nodes n;
  const NodeIndex p = n.P("p0", 0);
  const NodeIndex d = n.D("d0", 100);
  n.ConnectAll();
  PlacePrompt(n[p], 200);        // 200 tokens ahead of ours
  PlaceSequences(n[d], 3, 500);  // 1500 context tokens
  const SloPlacementPolicy policy(HandProfile(), AdmissionMode::kQueue);
  const SloPrediction x = policy.Predict(Want(100, 64, 0, 0, 2000), n[p], n[d]);
  // Prefill: one step of 300 tokens = 1 + 30 ms; transfer's last layer: 100 * 1000 B / 1000 B/us
  // / 10 layers = 10 us; D's step with 4 sequences, 1500 + 100 + 32 context: 10 + 1.632 + 4 ms;
  // waited 2 ms.
  EXPECT_NEAR(x.ttft_ms, 2 + 31 + 0.01 + 15.632, 1e-9);
  EXPECT_NEAR(x.tpot_ms, 15.632, 1e-9);
  EXPECT_TRUE(x.met());
  EXPECT_EQ(x.headroom, 1.0);  // no targets
}

TEST(SloPlacementPolicyTest, EachNodesReportedCorrectionScalesItsPart) {
  Nodes n;
  const NodeIndex p = n.P("p0", 0);
  const NodeIndex d = n.D("d0", 100);
  n.ConnectAll();
  const SloPlacementPolicy policy(HandProfile(), AdmissionMode::kQueue);
  const SloPrediction base = policy.Predict(Want(100, 64, 0, 0), n[p], n[d]);
  n[p].load.latency_factor = 2.0f;  // P runs twice as slow as profiled: its 11 ms prefill takes 22
  n[d].load.latency_factor = 0.5f;  // D twice as fast
  const SloPrediction corrected = policy.Predict(Want(100, 64, 0, 0), n[p], n[d]);
  EXPECT_NEAR(corrected.tpot_ms, base.tpot_ms / 2, 1e-9);
  EXPECT_NEAR(corrected.ttft_ms, base.ttft_ms + 11 - base.tpot_ms / 2, 1e-9);
}

TEST(SloPlacementPolicyTest, AnInteractiveRequestAvoidsAPrefillNodeBusyWithALongPrompt) {
  Nodes n;
  const NodeIndex busy = n.P("p0", 0);  // its report is stale: it says nothing is queued
  n.P("p1", 0);
  n.D("d0", 100);
  n.ConnectAll();
  PlacePrompt(n[busy], 2000);  // ~200 ms of prefill the router placed there
  const SloPlacementPolicy policy(HandProfile(), AdmissionMode::kQueue);
  const PlacementDecision slo = n.Place(policy, Want(100, 16, 100, 50));
  ASSERT_EQ(slo.kind, PlacementDecision::Kind::kPlace) << slo.reason.ToString();
  EXPECT_EQ(n.Id(slo.prefill), "p1");
  // Least-loaded trusts the (equal) reports and takes the lower id.
  PlacementRequest plain;
  plain.prompt_tokens = 100;
  plain.max_tokens = 16;
  EXPECT_EQ(n.Id(n.Place(plain).prefill), "p0");
}

TEST(SloPlacementPolicyTest, PromptsDueLaterDoNotDelayATighterRequest) {
  // P runs its queue by TTFT deadline: 5000 batch tokens due in 10 s are behind an interactive
  // request due in 100 ms, so p0 can still meet it; under FCFS it could not.
  Nodes n;
  const NodeIndex p = n.P("p0", 0);
  n.D("d0", 100);
  n.ConnectAll();
  PlacePrompt(n[p], 5000, 10'000'000);
  const SloPlacementPolicy policy(HandProfile(), AdmissionMode::kSlo);
  const PlacementDecision r = n.Place(policy, Want(100, 16, 100, 0));
  EXPECT_EQ(r.kind, PlacementDecision::Kind::kPlace) << r.reason.ToString();
  EXPECT_LT(policy.Predict(Want(100, 16, 100, 0), n[p], n[1]).ttft_ms, 100);
  // A request without a target is due in 10 s too, after the earlier batch prompt: it waits.
  EXPECT_GT(policy.Predict(Want(100, 16, 0, 0), n[p], n[1]).ttft_ms, 500);
}

TEST(SloPlacementPolicyTest, ATightTpotGoesToTheSmallerBatchAndMembersTargetsAreKept) {
  Nodes n;
  n.P("p0", 0);
  const NodeIndex big = n.D("d0", 100);
  const NodeIndex small = n.D("d1", 50);  // fewer free blocks: least-loaded prefers d0
  n.ConnectAll();
  PlaceSequences(n[big], 30, 1000);  // step: 10 + 30 + 31 ≈ 71 ms with one more
  PlaceSequences(n[small], 2, 100);  // ≈ 13 ms
  const SloPlacementPolicy policy(HandProfile(), AdmissionMode::kQueue);
  PlacementDecision r = n.Place(policy, Want(100, 16, 1000, 50));
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace);
  EXPECT_EQ(r.decode, small);

  // A member of d1 holds it to 12 ms: admitting one more (≈ 13.3 ms) would break that, so the
  // request (no TPOT target of its own) goes to d0 although d0 is slower.
  n[small].placed.tpot_targets_ms.insert(12.0);
  r = n.Place(policy, Want(100, 16, 1000, 0));
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace);
  EXPECT_EQ(r.decode, big);
}

TEST(SloPlacementPolicyTest, PrefersTheMostHeadroomAmongPlacementsThatMeetTheTargets) {
  Nodes n;
  const NodeIndex p0 = n.P("p0", 0);
  n.P("p1", 0);
  n.D("d0", 100);
  n.ConnectAll();
  PlacePrompt(n[p0], 300);  // p0: TTFT ≈ 56 ms, p1: ≈ 26 ms; both within 200 ms
  const SloPlacementPolicy policy(HandProfile(), AdmissionMode::kQueue);
  const PlacementDecision r = n.Place(policy, Want(100, 16, 200, 0));
  ASSERT_EQ(r.kind, PlacementDecision::Kind::kPlace);
  EXPECT_EQ(n.Id(r.prefill), "p1");
}

TEST(SloPlacementPolicyTest, UnattainableTtftIsQueuedByDefaultAndRefusedUnderSloAdmission) {
  Nodes n;
  const NodeIndex p = n.P("p0", 0);
  n.D("d0", 100);
  n.ConnectAll();
  PlacePrompt(n[p], 5000);  // half a second ahead of anything new
  const PlacementRequest want = Want(100, 16, 100, 0);

  const PlacementDecision queued = n.Place(SloPlacementPolicy(HandProfile(), AdmissionMode::kQueue), want);
  EXPECT_EQ(queued.kind, PlacementDecision::Kind::kPlace);  // it waits on P, as in vLLM

  const PlacementDecision refused = n.Place(SloPlacementPolicy(HandProfile(), AdmissionMode::kSlo), want);
  ASSERT_EQ(refused.kind, PlacementDecision::Kind::kReject);
  EXPECT_EQ(refused.reason.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.reason.reason(), kSloUnattainable);
  EXPECT_NE(refused.reason.message().find("TTFT target of 100 ms"), std::string::npos) << refused.reason.ToString();

  // Waiting already spent counts: a request that waited past its target is refused too.
  PlacementDecision late =
      n.Place(SloPlacementPolicy(HandProfile(), AdmissionMode::kSlo), Want(10, 16, 1000, 0, 995'000));
  EXPECT_EQ(late.kind, PlacementDecision::Kind::kReject);
}

TEST(SloPlacementPolicyTest, UnderSloAdmissionAMissOnlyOnTpotWaitsForTheBatchToShrink) {
  Nodes n;
  n.P("p0", 0);
  const NodeIndex d = n.D("d0", 100);
  n.ConnectAll();
  PlaceSequences(n[d], 40, 100);
  const PlacementDecision r = n.Place(SloPlacementPolicy(HandProfile(), AdmissionMode::kSlo), Want(100, 16, 5000, 20));
  EXPECT_EQ(r.kind, PlacementDecision::Kind::kDefer);
  EXPECT_EQ(r.reason.code(), StatusCode::kResourceExhausted);
}

TEST(SloPlacementPolicyTest, KeepsTheCommonRulesOfEveryPolicy) {
  Nodes n;
  n.P("p0", 0);
  n.D("d0", 3, 16, 10);
  n.ConnectAll();
  const SloPlacementPolicy policy(HandProfile(), AdmissionMode::kSlo);
  EXPECT_EQ(n.Place(policy, Want(1000, 1000, 1, 1)).kind, PlacementDecision::Kind::kReject);  // never fits
  EXPECT_EQ(n.Place(policy, Want(100, 0, 0, 0)).kind, PlacementDecision::Kind::kDefer);       // no room now
  Nodes colocated;
  colocated.Colocated("w0", 100);
  const PlacementDecision w = colocated.Place(policy, Want(100, 16, 1000, 100));
  ASSERT_EQ(w.kind, PlacementDecision::Kind::kPlace);
  EXPECT_EQ(w.prefill, w.decode);
}

TEST(SloPlacementPolicyTest, AdmissionModesByName) {
  EXPECT_EQ(*ParseAdmissionMode("queue"), AdmissionMode::kQueue);
  EXPECT_EQ(*ParseAdmissionMode("slo"), AdmissionMode::kSlo);
  EXPECT_EQ(ParseAdmissionMode("fifo").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(AdmissionModeName(AdmissionMode::kSlo), "slo");
}

}  // namespace
}  // namespace tandem
