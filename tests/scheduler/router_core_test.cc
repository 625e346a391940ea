// The router core alone: events in, actions out, time passed in. No sockets, no threads, no
// clock: exactly what the simulator will run.
#include "scheduler/router_core.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

constexpr NodeIndex kP = 0, kD0 = 1, kD1 = 2;
constexpr int64_t kSecond = 1'000'000;

struct Actions {
  RouterActions all;

  std::vector<SendPrefill> prefills() const { return Of<SendPrefill>(); }
  std::vector<SendAbort> aborts() const { return Of<SendAbort>(); }
  std::vector<InferenceEvent> events() const {
    std::vector<InferenceEvent> out;
    for (const auto& a : all) {
      if (const auto* e = std::get_if<DeliverEvent>(&a)) out.push_back(e->event);
    }
    return out;
  }
  std::vector<NodeIndex> abort_nodes() const {
    std::vector<NodeIndex> out;
    for (const auto& a : aborts()) out.push_back(a.node);
    return out;
  }
  template <typename T>
  std::vector<T> Of() const {
    std::vector<T> out;
    for (const auto& a : all) {
      if (const auto* x = std::get_if<T>(&a)) out.push_back(*x);
    }
    return out;
  }
};

class RouterCoreTest : public ::testing::Test {
 protected:
  // One prefill node reaching two decode nodes (10 and 5 blocks of 16 tokens).
  void SetUp() override {
    RouterCoreOptions o;
    o.first_token_timeout_us = 10 * kSecond;
    o.inter_token_timeout_us = 5 * kSecond;
    o.max_queued = 4;
    core_ = std::make_unique<RouterCore>(
        std::vector<NodeSpec>{{"p0", NodeRole::kPrefill}, {"d0", NodeRole::kDecode}, {"d1", NodeRole::kDecode}},
        std::make_unique<LeastLoadedPolicy>(), o);
    Actions a;
    core_->OnNodeConnected(kP, 0, 0, &a.all);
    EXPECT_EQ(a.Of<SendClusterView>().size(), 1u);  // P hears where the decode nodes are
    // Pools that reserve prompt + max_tokens: the block counts below read that way (growing
    // pools: AGrowingPoolIsChargedThePromptsBlocks).
    core_->OnNodeConnected(kD0, 16, 0, &a.all, /*reserves_output_blocks=*/true);
    core_->OnNodeConnected(kD1, 16, 0, &a.all, /*reserves_output_blocks=*/true);
    ReportP({"d0", "d1"});
    ReportD(kD0, 10, 10);
    ReportD(kD1, 5, 5);
    EXPECT_TRUE(core_->Ready());
  }

  void ReportP(std::vector<std::string> reaches, uint64_t queued_tokens = 0) {
    NodeLoadReport r;
    r.queued_tokens = queued_tokens;
    r.connected_decode_nodes = std::move(reaches);
    core_->OnLoadReport(kP, r, now_, &last_.all);
  }
  void ReportD(NodeIndex d, uint32_t free, uint32_t total) {
    NodeLoadReport r;
    r.free_blocks = free;
    r.total_blocks = total;
    core_->OnLoadReport(d, r, now_, &last_.all);
  }

  Status Submit(int64_t id, int prompt, int max_tokens, int32_t priority = 0) {
    RequestSlo slo;
    slo.priority = priority;
    return Submit(id, prompt, max_tokens, slo);
  }
  // In SLO class `name`, which lets `max_queued` of its requests wait (-1: no bound).
  Status SubmitInClass(int64_t id, const std::string& name, int32_t max_queued) {
    RequestSlo slo;
    slo.class_name = name;
    slo.ttft_ms = 1000;
    slo.max_queued = max_queued;
    return Submit(id, 150, 10, slo);
  }
  Status Submit(int64_t id, int prompt, int max_tokens, const RequestSlo& slo) {
    auto r = std::make_shared<ServingRequest>();
    r->id = id;
    r->slo = slo;
    r->prompt.assign(static_cast<size_t>(prompt), 7);
    r->params.temperature = 0;
    r->params.max_tokens = max_tokens;
    r->params.seed = 1;
    r->arrival_us = now_;
    last_ = Actions();
    return core_->Submit(r, now_, &last_.all);
  }
  Actions FirstToken(int64_t id, int32_t token, bool finished = false) {
    Actions a;
    FirstTokenReport r;
    r.token = token;
    r.finished = finished;
    r.finish_reason = finished ? FinishReason::kLength : FinishReason::kNone;
    r.prefill_start_us = now_ - 10;
    r.prefill_end_us = now_ - 5;
    core_->OnFirstToken(kP, id, r, now_, &a.all);
    return a;
  }
  Actions Tokens(NodeIndex d, int64_t id, std::vector<int32_t> tokens, bool finished = false) {
    Actions a;
    TokensReport r;
    r.tokens = std::move(tokens);
    r.finished = finished;
    r.finish_reason = finished ? FinishReason::kLength : FinishReason::kNone;
    core_->OnTokens(d, id, r, now_, &a.all);
    return a;
  }
  Actions Tick() {
    Actions a;
    core_->Tick(now_, &a.all);
    return a;
  }

  std::unique_ptr<RouterCore> core_;
  int64_t now_ = 1000;
  Actions last_;
};

TEST_F(RouterCoreTest, AGrowingPoolIsChargedThePromptsBlocks) {
  Actions a;
  core_->OnNodeConnected(kD0, 16, now_, &a.all, /*reserves_output_blocks=*/false);  // d0 came back growing
  ReportD(kD0, 10, 10);
  ASSERT_TRUE(Submit(1, 20, 100).ok());  // 2 prompt blocks, 8 over its life
  ASSERT_EQ(last_.prefills().size(), 1u);
  EXPECT_EQ(last_.prefills()[0].decode, kD0);
  EXPECT_EQ(core_->nodes()[kD0].free_blocks(), 8u);
}

TEST_F(RouterCoreTest, ARequestFromPlacementToItsRecord) {
  ASSERT_TRUE(Submit(1, 20, 12).ok());  // 2 blocks
  ASSERT_EQ(last_.prefills().size(), 1u);
  EXPECT_EQ(last_.prefills()[0].prefill, kP);
  EXPECT_EQ(last_.prefills()[0].decode, kD0);  // the most free blocks
  EXPECT_EQ(last_.prefills()[0].deadline_us, now_ + 10 * kSecond);
  EXPECT_EQ(core_->nodes()[kD0].free_blocks(), 8u);  // charged
  EXPECT_EQ(core_->nodes()[kP].queued_tokens(), 20u);
  now_ += 300;
  Actions first = FirstToken(1, 5);
  ASSERT_EQ(first.events().size(), 1u);
  EXPECT_EQ(first.events()[0].tokens, std::vector<int32_t>{5});
  EXPECT_EQ(core_->nodes()[kD0].free_blocks(), 8u);  // until D's next report counts the blocks
  ReportD(kD0, 8, 10);
  EXPECT_EQ(core_->nodes()[kD0].free_blocks(), 8u);  // the report's own number now
  now_ += 100;
  Tokens(kD0, 1, {6});
  now_ += 100;
  Actions fin = Tokens(kD0, 1, {7}, true);
  ASSERT_EQ(fin.events().size(), 1u);
  const InferenceEvent ev = fin.events()[0];
  EXPECT_EQ(ev.finish_reason, FinishReason::kLength);
  EXPECT_TRUE(fin.aborts().empty());  // a normal finish leaves nothing to free
  const RequestRecord& rec = ev.record;
  EXPECT_EQ(rec.prefill_node, "p0");
  EXPECT_EQ(rec.decode_node, "d0");
  EXPECT_EQ(rec.arrival_us, 1000);
  EXPECT_EQ(rec.placed_us, 1000);
  EXPECT_EQ(rec.prefill_start_us, 1290);
  EXPECT_EQ(rec.token_us, (std::vector<int64_t>{1300, 1400, 1500}));
  EXPECT_DOUBLE_EQ(rec.ttft_ms(), 0.3);
  EXPECT_DOUBLE_EQ(rec.tpot_ms(), 0.1);
  EXPECT_EQ(rec.output_tokens, 3);
  EXPECT_EQ(core_->num_in_flight(), 0);
}

// The SLO policy's picture of each node (NodeView::placed) follows a request: its prompt counts
// on P until the first token, its sequence on D (growing with every token) until it ends or
// moves to another decode node.
TEST_F(RouterCoreTest, PlacedWorkFollowsARequestThroughItsLife) {
  auto r = std::make_shared<ServingRequest>();
  r->id = 1;
  r->prompt.assign(20, 7);
  r->params.temperature = 0;
  r->params.max_tokens = 12;
  r->arrival_us = now_;
  r->slo.tpot_ms = 40;
  ASSERT_TRUE(core_->Submit(r, now_, &last_.all).ok());
  const PlacedWork& p = core_->nodes()[kP].placed;
  const PlacedWork& d0 = core_->nodes()[kD0].placed;
  EXPECT_EQ(p.prefill_requests(), 1);
  EXPECT_EQ(p.prefill_tokens(), 20);
  ASSERT_EQ(p.prefill_queue.size(), 1u);
  EXPECT_EQ(p.prefill_queue.begin()->first, now_ + kUntargetedTtftBudgetUs);  // no TTFT target
  EXPECT_EQ(d0.decode_requests, 1);
  EXPECT_EQ(d0.decode_context_tokens, 20);
  EXPECT_EQ(d0.tightest_tpot_ms(), 40);
  FirstToken(1, 5);
  EXPECT_TRUE(p.prefill_queue.empty());
  EXPECT_EQ(p.prefill_requests(), 0);
  EXPECT_EQ(p.prefill_tokens(), 0);
  EXPECT_EQ(d0.decode_context_tokens, 21);
  Tokens(kD0, 1, {6, 7});
  EXPECT_EQ(d0.decode_context_tokens, 23);
  Tokens(kD0, 1, {8}, true);
  EXPECT_EQ(d0.decode_requests, 0);
  EXPECT_EQ(d0.decode_context_tokens, 0);
  EXPECT_TRUE(d0.tpot_targets_ms.empty());

  // Refused by d0: it moves to d1, and d0 forgets it.
  ASSERT_TRUE(Submit(2, 20, 12).ok());
  ASSERT_EQ(last_.prefills().at(0).decode, kD0);
  Actions moved;
  core_->OnReservationRefused(kP, 2, "d0", "no room", now_, &moved.all);
  ASSERT_EQ(moved.prefills().size(), 1u);
  EXPECT_EQ(moved.prefills()[0].decode, kD1);
  EXPECT_EQ(d0.decode_requests, 0);
  EXPECT_EQ(core_->nodes()[kD1].placed.decode_requests, 1);
  EXPECT_EQ(p.prefill_requests(), 1);
  Actions aborted;
  core_->Abort(2, FinishReason::kAbort, now_, &aborted.all);
  EXPECT_EQ(core_->nodes()[kD1].placed.decode_requests, 0);
  EXPECT_EQ(p.prefill_requests(), 0);
}

TEST_F(RouterCoreTest, WhenNoDecodeNodeHasRoomRequestsQueueInOrder) {
  ASSERT_TRUE(Submit(1, 150, 10).ok());  // 10 blocks: only d0 holds it
  ASSERT_EQ(last_.prefills().size(), 1u);
  ASSERT_TRUE(Submit(2, 150, 10).ok());  // d0 is charged full: queued
  EXPECT_TRUE(last_.prefills().empty());
  ASSERT_TRUE(Submit(3, 4, 4).ok());  // would fit d1, but FCFS: nobody overtakes 2
  EXPECT_TRUE(last_.prefills().empty());
  EXPECT_EQ(core_->Load().num_queued, 2);
  now_ += 100;
  FirstToken(1, 5);
  Actions a = Tokens(kD0, 1, {6}, true);  // 1 finished: its charge is gone; the queue drains in order
  ASSERT_EQ(a.prefills().size(), 2u);
  EXPECT_EQ(a.prefills()[0].request->id, 2);
  EXPECT_EQ(a.prefills()[1].request->id, 3);
  EXPECT_EQ(core_->Load().num_queued, 0);
}

TEST_F(RouterCoreTest, AFullQueueRefusesAndNeverFittingIsOutOfRange) {
  EXPECT_EQ(Submit(1, 1000, 1000).code(), StatusCode::kOutOfRange);  // 125 blocks > 10
  ASSERT_TRUE(Submit(2, 150, 10).ok());
  for (int64_t id = 3; id < 7; ++id) ASSERT_TRUE(Submit(id, 150, 10).ok());  // 4 queued: the limit
  EXPECT_EQ(Submit(8, 1000, 1000).code(), StatusCode::kOutOfRange);          // refused at once, queue or not
  const Status full = Submit(7, 150, 10);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(last_.events().empty());  // a refused Submit has no events
  EXPECT_EQ(Submit(2, 1, 1).code(), StatusCode::kAlreadyExists);
  const RouterDecisionCounts d = core_->Load().decisions;  // GET /metrics shows these
  EXPECT_EQ(d.placed, 1);
  EXPECT_EQ(d.queued, 4);
  EXPECT_EQ(d.rejected, 2);
  EXPECT_EQ(d.queue_full, 1);
  EXPECT_EQ(d.shed, 0);
}

// Overload: a full queue sheds its least important request (the latest among equals) for a more
// important newcomer; an equally important one is refused as before.
TEST_F(RouterCoreTest, AFullQueueShedsTheLeastImportantForAMoreImportantRequest) {
  ASSERT_TRUE(Submit(1, 150, 10, /*priority=*/1).ok());  // placed: d0 is charged full
  ASSERT_TRUE(Submit(2, 150, 10, 0).ok());
  for (int64_t id = 3; id < 6; ++id) ASSERT_TRUE(Submit(id, 150, 10, 1).ok());  // 4 queued: the limit
  EXPECT_EQ(Submit(6, 150, 10, 1).code(), StatusCode::kResourceExhausted);
  ASSERT_TRUE(Submit(7, 150, 10, 0).ok());
  ASSERT_EQ(last_.events().size(), 1u);
  EXPECT_EQ(last_.events()[0].request_id, 5);  // the latest of the priority-1 requests
  EXPECT_EQ(last_.events()[0].status.code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(last_.abort_nodes().empty());  // it was on no node
  ASSERT_TRUE(Submit(8, 150, 10, 0).ok());   // 4 goes next
  EXPECT_EQ(last_.events()[0].request_id, 4);
  ASSERT_TRUE(Submit(9, 150, 10, 0).ok());  // and 3
  EXPECT_EQ(last_.events()[0].request_id, 3);
  EXPECT_EQ(Submit(10, 150, 10, 0).code(), StatusCode::kResourceExhausted);  // nothing less important left
  EXPECT_EQ(core_->Load().num_queued, 4);
  EXPECT_EQ(core_->Load().decisions.shed, 3);
  EXPECT_EQ(core_->Load().decisions.queue_full, 2);
}

// A class's own bound: one more of it is refused (503 queue_full, no events, nothing shed) while
// another class still queues; the count follows requests that leave the queue by any way.
TEST_F(RouterCoreTest, AClassWithItsQueueFullIsRefusedAndOthersStillQueue) {
  ASSERT_TRUE(Submit(1, 150, 10).ok());  // placed: d0 is charged full, so 150-token prompts wait
  ASSERT_TRUE(SubmitInClass(2, "batch", 2).ok());
  ASSERT_TRUE(SubmitInClass(3, "batch", 2).ok());
  EXPECT_EQ(core_->num_queued_in_class("batch"), 2);
  const Status full = SubmitInClass(4, "batch", 2);
  EXPECT_EQ(full.code(), StatusCode::kUnavailable);
  EXPECT_EQ(full.reason(), "queue_full");
  EXPECT_NE(full.message().find("SLO class batch"), std::string::npos);
  EXPECT_TRUE(last_.events().empty());                    // refused: no events, and nobody was shed for it
  ASSERT_TRUE(SubmitInClass(5, "interactive", -1).ok());  // another class: the global bound (4) only
  EXPECT_EQ(core_->Load().num_queued, 3);
  EXPECT_EQ(core_->Load().decisions.queue_full, 1);
  EXPECT_EQ(core_->Load().decisions.shed, 0);

  Actions aborted;
  core_->Abort(2, FinishReason::kAbort, now_, &aborted.all);  // an abort frees its place
  EXPECT_EQ(core_->num_queued_in_class("batch"), 1);
  ASSERT_TRUE(SubmitInClass(6, "batch", 2).ok());
  EXPECT_EQ(SubmitInClass(7, "batch", 2).code(), StatusCode::kUnavailable);

  now_ += 100;
  FirstToken(1, 5);
  Actions a = Tokens(kD0, 1, {6}, true);  // room for one: 3 is placed
  ASSERT_EQ(a.prefills().size(), 1u);
  EXPECT_EQ(a.prefills()[0].request->id, 3);
  EXPECT_EQ(core_->num_queued_in_class("batch"), 1);  // 6
  EXPECT_EQ(core_->num_queued_in_class("interactive"), 1);

  now_ += 10 * kSecond;  // past the first-token deadline: the queued ones time out
  Tick();
  EXPECT_EQ(core_->Load().num_queued, 0);
  EXPECT_EQ(core_->num_queued_in_class("batch"), 0);
  EXPECT_EQ(core_->num_queued_in_class("interactive"), 0);
  ASSERT_TRUE(SubmitInClass(8, "batch", 2).ok());  // placed at once: d0 is free
  EXPECT_EQ(last_.prefills().size(), 1u);
}

// max_queued 0: the class is placed when there is room and refused, never queued, when not.
TEST_F(RouterCoreTest, AClassBoundOfZeroNeverWaits) {
  ASSERT_TRUE(SubmitInClass(1, "interactive", 0).ok());
  EXPECT_EQ(last_.prefills().size(), 1u);
  const Status refused = SubmitInClass(2, "interactive", 0);  // no room, queue empty: deferred
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_EQ(refused.reason(), "queue_full");
  EXPECT_EQ(core_->Load().num_queued, 0);
  EXPECT_EQ(core_->num_in_flight(), 1);
}

// Queued requests the policy refuses once their nodes are gone all end, each once, and the
// queue and its class counts are empty after.
TEST_F(RouterCoreTest, QueuedRequestsRefusedWhileDrainingAllEnd) {
  ASSERT_TRUE(Submit(1, 150, 10).ok());
  for (int64_t id = 2; id < 5; ++id) ASSERT_TRUE(SubmitInClass(id, "batch", 8).ok());
  Actions a;
  core_->OnNodeDisconnected(kP, UnavailableError("eof"), now_, &a.all);
  std::vector<int64_t> ended;
  for (const auto& e : a.events()) ended.push_back(e.request_id);
  EXPECT_EQ(ended, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(core_->Load().num_queued, 0);
  EXPECT_EQ(core_->num_queued_in_class("batch"), 0);
  EXPECT_EQ(core_->num_in_flight(), 0);
}

TEST_F(RouterCoreTest, DeadlinesFailQueuedAndPlacedRequests) {
  ASSERT_TRUE(Submit(1, 150, 10).ok());  // placed, never answered (a stuck prefill node)
  ASSERT_TRUE(Submit(2, 150, 10).ok());  // queued behind it
  now_ += 10 * kSecond;
  EXPECT_TRUE(Tick().events().empty());  // not yet
  now_ += 1;
  Actions a = Tick();
  ASSERT_EQ(a.events().size(), 2u);
  for (const auto& e : a.events()) EXPECT_EQ(e.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(a.abort_nodes(), (std::vector<NodeIndex>{kP, kD0}));  // only the placed one had nodes
  EXPECT_EQ(core_->num_in_flight(), 0);
}

TEST_F(RouterCoreTest, ADecodeNodeThatStopsSendingFailsItsStream) {
  ASSERT_TRUE(Submit(1, 10, 50).ok());
  FirstToken(1, 5);
  now_ += 4 * kSecond;
  Tokens(kD0, 1, {6});
  now_ += 5 * kSecond;
  EXPECT_TRUE(Tick().events().empty());
  now_ += 1;
  Actions a = Tick();
  ASSERT_EQ(a.events().size(), 1u);
  EXPECT_EQ(a.events()[0].status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(a.events()[0].status.message().find("no token from decode node d0"), std::string::npos);
  EXPECT_EQ(a.abort_nodes(), (std::vector<NodeIndex>{kP, kD0}));
}

TEST_F(RouterCoreTest, TokensThatOvertakeTheFirstTokenWaitForIt) {
  ASSERT_TRUE(Submit(1, 10, 3).ok());
  EXPECT_TRUE(Tokens(kD0, 1, {6}).events().empty());
  Actions a = FirstToken(1, 5);
  ASSERT_EQ(a.events().size(), 2u);
  EXPECT_EQ(a.events()[0].tokens, std::vector<int32_t>{5});
  EXPECT_EQ(a.events()[1].tokens, std::vector<int32_t>{6});
}

TEST_F(RouterCoreTest, AbortReachesEveryNodeThatMayHoldTheRequest) {
  ASSERT_TRUE(Submit(1, 10, 3).ok());
  Actions a;
  core_->Abort(1, FinishReason::kAbort, now_, &a.all);
  EXPECT_EQ(a.abort_nodes(), (std::vector<NodeIndex>{kP, kD0}));
  ASSERT_EQ(a.events().size(), 1u);
  EXPECT_EQ(a.events()[0].finish_reason, FinishReason::kAbort);
  Actions again;
  core_->Abort(1, FinishReason::kAbort, now_, &again.all);
  EXPECT_TRUE(again.all.empty());
  // The front end's stop string: a normal finish in the record.
  ASSERT_TRUE(Submit(2, 10, 3).ok());
  FirstToken(2, 5);
  Actions stop;
  core_->Abort(2, FinishReason::kStop, now_, &stop.all);
  ASSERT_EQ(stop.events().size(), 1u);
  EXPECT_EQ(stop.events()[0].finish_reason, FinishReason::kStop);
  EXPECT_TRUE(stop.events()[0].record.status.ok());
}

TEST_F(RouterCoreTest, ARefusedReservationMovesToAnotherDecodeNodeThenGivesUp) {
  ASSERT_TRUE(Submit(1, 10, 3).ok());
  EXPECT_EQ(last_.prefills()[0].decode, kD0);
  Actions a;
  core_->OnReservationRefused(kP, 1, "d0", "full", now_, &a.all);
  ASSERT_EQ(a.prefills().size(), 1u);
  EXPECT_EQ(a.prefills()[0].decode, kD1);
  EXPECT_EQ(core_->nodes()[kD0].free_blocks(), 10u);  // its charge went with it
  Actions b;
  core_->OnReservationRefused(kP, 1, "d1", "full too", now_, &b.all);
  ASSERT_EQ(b.events().size(), 1u);
  EXPECT_EQ(b.events()[0].status.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(b.events()[0].status.message().find("d1: full too"), std::string::npos);
  EXPECT_EQ(b.events()[0].record.decode_attempts, 2);
  EXPECT_TRUE(b.aborts().empty());  // nobody holds anything of it
}

TEST_F(RouterCoreTest, ANodeThatGoesDownFailsWhatDependsOnIt) {
  ASSERT_TRUE(Submit(1, 10, 30).ok());  // on d0, prefilling
  ASSERT_TRUE(Submit(2, 10, 30).ok());  // d0 again (8 of 10 free beats d1's 5)
  FirstToken(2, 5);
  core_->OnKvReady(kP, 2, TransferReport{4096, now_ - 3, now_ - 1});  // 2 no longer needs P
  ASSERT_TRUE(Submit(3, 10, 30).ok());
  Actions a;
  core_->OnNodeDisconnected(kP, UnavailableError("eof"), now_, &a.all);
  ASSERT_EQ(a.events().size(), 2u);  // 1 and 3: still needed P
  EXPECT_EQ(a.events()[0].request_id, 1);
  EXPECT_EQ(a.events()[1].request_id, 3);
  EXPECT_NE(a.events()[0].status.message().find("prefill node p0 disconnected"), std::string::npos);
  for (NodeIndex n : a.abort_nodes()) EXPECT_NE(n, kP);  // nothing is sent to the dead node
  EXPECT_FALSE(core_->Ready());
  Actions b;
  core_->OnNodeDisconnected(kD0, UnavailableError("eof"), now_, &b.all);
  ASSERT_EQ(b.events().size(), 1u);
  EXPECT_EQ(b.events()[0].request_id, 2);
  EXPECT_EQ(b.events()[0].record.kv_bytes, 4096);
}

TEST_F(RouterCoreTest, OnlyConnectedPairsAndReadyNeedsThemAll) {
  ReportP({"d1"});
  EXPECT_FALSE(core_->Ready());
  EXPECT_NE(core_->NotReadyReason().find("p0 does not reach decode node d0"), std::string::npos);
  ASSERT_TRUE(Submit(1, 10, 3).ok());
  EXPECT_EQ(last_.prefills()[0].decode, kD1);  // d0 has more room, but P cannot reach it
  ReportP({});
  EXPECT_EQ(Submit(2, 10, 3).code(), StatusCode::kUnavailable);
}

// The prefill node's KvReady copy may reach the router after the decode node's last token: the
// decode node's first chunk carries the transfer too, so the record has it either way.
TEST_F(RouterCoreTest, TheTransferReachesTheRecordFromTheDecodeNodeWhenKvReadyIsLate) {
  ASSERT_TRUE(Submit(1, 20, 2).ok());
  FirstToken(1, 5);
  Actions fin;
  TokensReport r;
  r.tokens = {6};
  r.finished = true;
  r.finish_reason = FinishReason::kLength;
  r.decode_admitted_us = now_;
  r.transfer = {4096, now_ - 50, now_ - 20};
  core_->OnTokens(kD0, 1, r, now_, &fin.all);
  ASSERT_EQ(fin.events().size(), 1u);
  EXPECT_EQ(fin.events()[0].record.kv_bytes, 4096);
  EXPECT_EQ(fin.events()[0].record.transfer_end_us, now_ - 20);
  core_->OnKvReady(kP, 1, TransferReport{4096, now_ - 50, now_ - 20});  // late: ignored
}

TEST_F(RouterCoreTest, LosingOneDecodeNodeDegradesLosingAllStopsServing) {
  EXPECT_TRUE(core_->Ready());
  EXPECT_TRUE(core_->Serving());
  Actions a;
  core_->OnNodeDisconnected(kD0, UnavailableError("connection lost"), now_, &a.all);
  EXPECT_FALSE(core_->Ready());   // degraded: not every node is there
  EXPECT_TRUE(core_->Serving());  // but P still reaches d1
  EXPECT_NE(core_->NotReadyReason().find("d0"), std::string::npos);
  ASSERT_TRUE(Submit(1, 20, 4).ok());
  EXPECT_EQ(last_.prefills().at(0).decode, kD1);
  core_->OnNodeDisconnected(kD1, UnavailableError("connection lost"), now_, &a.all);
  EXPECT_FALSE(core_->Serving());
}

TEST_F(RouterCoreTest, ShutdownFailsEverythingAndRefusesNewRequests) {
  ASSERT_TRUE(Submit(1, 10, 3).ok());
  ASSERT_TRUE(Submit(2, 150, 10).ok());
  ASSERT_TRUE(Submit(3, 150, 10).ok());  // queued
  Actions a;
  core_->Shutdown(now_, &a.all);
  ASSERT_EQ(a.events().size(), 3u);
  for (const auto& e : a.events()) EXPECT_EQ(e.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(Submit(4, 1, 1).code(), StatusCode::kUnavailable);
  EXPECT_FALSE(core_->Ready());
}

TEST(RouterCoreColocatedTest, OneNodeIsBothEndsAndGetsOneAbort) {
  RouterCoreOptions o;
  RouterCore core({{"worker", NodeRole::kColocated}}, std::make_unique<LeastLoadedPolicy>(), o);
  RouterActions a;
  core.OnNodeConnected(0, 16, 0, &a);
  NodeLoadReport r;
  r.free_blocks = r.total_blocks = 8;
  core.OnLoadReport(0, r, 0, &a);
  EXPECT_TRUE(core.Ready());
  auto req = std::make_shared<ServingRequest>();
  req->id = 1;
  req->prompt = {1, 2, 3};
  req->params.max_tokens = 4;
  req->params.seed = 1;
  req->arrival_us = 1;
  RouterActions placed;
  ASSERT_TRUE(core.Submit(req, 1, &placed).ok());
  ASSERT_EQ(placed.size(), 1u);
  const auto& order = std::get<SendPrefill>(placed[0]);
  EXPECT_EQ(order.prefill, 0);
  EXPECT_EQ(order.decode, 0);
  RouterActions aborted;
  core.Abort(1, FinishReason::kAbort, 2, &aborted);
  int aborts = 0;
  for (const auto& x : aborted) aborts += std::holds_alternative<SendAbort>(x);
  EXPECT_EQ(aborts, 1);
  EXPECT_EQ(core.MaxSequenceTokens(), 8 * 16);
}

}  // namespace
}  // namespace tandem
