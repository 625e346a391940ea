// The engine core's decisions without a model: a real BlockPool, plans checked by hand, sampled
// tokens made up by the test, time passed in. What the colocated worker, the prefill node and
// the decode node all rely on.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include "tests/engine/scheduler_test_requests.h"

namespace tandem {
namespace {

constexpr int32_t kBlock = 4;  // tokens per block: small, so block counts are easy to read
constexpr int64_t kEos = 2;

RequestLimits Limits() { return testing::SmallVocabularyLimits(); }

Request Make(int64_t id, int prompt_len, int max_tokens) { return testing::GreedyRequest(id, prompt_len, max_tokens); }

// Tokens for every chunk that wants logits: `token` each.
StepResult Tokens(const StepPlan& plan, int32_t token = 50) {
  StepResult r;
  r.tokens.assign(static_cast<size_t>(plan.num_samples()), token);
  return r;
}

// These tests pin the reserving allocation (prompt + max_tokens at admission), so block counts
// are known up front; growth and preemption are in kv_growth_test.cc.
class SchedulerTest : public ::testing::Test {
 protected:
  void Make(EngineRole role, int32_t blocks, int32_t budget, int32_t seqs = 8) {
    pool_ = std::make_unique<BlockPool>(blocks);
    SchedulerOptions o{role, seqs, budget};
    o.kv_allocation = KvAllocation::kReserve;
    sched_ = std::make_unique<Scheduler>(*pool_, kBlock, Limits(), std::vector<int64_t>{kEos}, o);
  }
  std::unique_ptr<BlockPool> pool_;
  std::unique_ptr<Scheduler> sched_;
};

TEST_F(SchedulerTest, ChunksPromptsToTheBudgetThenDecodesAndStampsTheRecord) {
  Make(EngineRole::kColocated, 16, 6);
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 10, 3), /*now=*/100).ok());
  StepPlan p1 = sched_->Schedule(200);
  ASSERT_EQ(p1.chunks.size(), 1u);
  EXPECT_EQ(p1.chunks[0].start, 0);
  EXPECT_EQ(p1.chunks[0].num_tokens, 6);  // the budget
  EXPECT_FALSE(p1.chunks[0].want_logits);
  EXPECT_EQ(pool_->num_free(), 16 - 4);  // ceil((10 + 3) / 4) at admission
  EXPECT_TRUE(sched_->Postprocess(300, p1, Tokens(p1)).empty());
  StepPlan p2 = sched_->Schedule(400);
  ASSERT_EQ(p2.chunks.size(), 1u);
  EXPECT_EQ(p2.chunks[0].start, 6);
  EXPECT_EQ(p2.chunks[0].num_tokens, 4);
  EXPECT_TRUE(p2.chunks[0].want_logits);
  auto out = sched_->Postprocess(500, p2, Tokens(p2, 60));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].token, 60);
  for (int64_t t = 600; sched_->HasWork(); t += 100) {
    StepPlan d = sched_->Schedule(t);
    ASSERT_EQ(d.chunks.size(), 1u);
    EXPECT_EQ(d.chunks[0].num_tokens, 1);
    sched_->Postprocess(t + 50, d, Tokens(d, 61));
  }
  auto done = sched_->TakeFinished(1);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->finish_reason, FinishReason::kLength);
  EXPECT_EQ(done->output, (std::vector<int32_t>{60, 61, 61}));
  const RequestRecord& rec = done->record;
  EXPECT_EQ(rec.arrival_us, 100);
  EXPECT_EQ(rec.queued_us, 100);
  EXPECT_EQ(rec.prefill_start_us, 200);
  EXPECT_EQ(rec.prefill_end_us, 500);
  EXPECT_EQ(rec.first_token_us, 500);
  EXPECT_EQ(rec.token_us, (std::vector<int64_t>{500, 650, 750}));
  EXPECT_EQ(rec.finish_us, 750);
  EXPECT_DOUBLE_EQ(rec.ttft_ms(), 0.4);
  EXPECT_DOUBLE_EQ(rec.tpot_ms(), 0.125);
  EXPECT_EQ(pool_->num_free(), 16);
}

TEST_F(SchedulerTest, TheHeadWaitsForBlocksAndNobodyOvertakesIt) {
  Make(EngineRole::kColocated, 5, 100);
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 8, 4), 0).ok());  // 3 blocks
  ASSERT_TRUE(sched_->Add(tandem::Make(2, 8, 4), 0).ok());  // 3 blocks: does not fit next to 1
  ASSERT_TRUE(sched_->Add(tandem::Make(3, 2, 2), 0).ok());  // 1 block: would fit, but waits
  StepPlan p = sched_->Schedule(1);
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].request->id, 1);
  EXPECT_EQ(sched_->num_waiting(), 2);
  EXPECT_EQ(pool_->num_free(), 2);
}

// EDF: the waiting queue runs by TTFT deadline (arrival + target, or arrival + the untargeted
// budget); deadlines age, so a loose request that waited long goes before a tight newcomer.
TEST_F(SchedulerTest, DeadlineOrderRunsTheEarliestTtftDeadlineFirstAndAgesTheRest) {
  pool_ = std::make_unique<BlockPool>(100);
  SchedulerOptions o{EngineRole::kPrefill, 8, 8};  // one 8-token prompt per step
  o.queue_order = QueueOrder::kDeadline;
  o.untargeted_ttft_us = 5'000'000;
  sched_ = std::make_unique<Scheduler>(*pool_, kBlock, Limits(), std::vector<int64_t>{kEos}, o);
  auto add = [&](int64_t id, int64_t arrival_us, double ttft_ms) {
    Request r = tandem::Make(id, 8, 4);
    r.record.arrival_us = arrival_us;
    r.record.slo.ttft_ms = ttft_ms;
    ASSERT_TRUE(sched_->Add(std::move(r), arrival_us).ok());
  };
  add(1, 0, 0);            // batch, no target: deadline 5 s
  add(2, 1'000, 2000);     // deadline 2.001 s
  add(3, 2'000, 100);      // interactive: 0.102 s
  add(4, 4'000'000, 100);  // interactive, but 4 s later: 4.1 s, before 1 (5 s), after 2
  add(5, 5'000, 2000);     // same deadline class as 2, later: after 2
  std::vector<int64_t> order;
  for (int64_t now = 4'000'001; sched_->HasWork(); now += 10) {
    StepPlan p = sched_->Schedule(now);
    ASSERT_EQ(p.chunks.size(), 1u);
    order.push_back(p.chunks[0].request->id);
    sched_->Postprocess(now, p, Tokens(p));
    for (auto& r : sched_->TakeHandedOff()) (void)pool_->Free(r->block_table);
  }
  EXPECT_EQ(order, (std::vector<int64_t>{3, 2, 5, 4, 1}));
}

TEST_F(SchedulerTest, AnUrgentPromptTakesTheBudgetFromARunningLooseOne) {
  // A prefill node admits every prompt at once, so deadline order must also decide which
  // admitted prompt gets the budget: a tight newcomer runs before the rest of a long loose prompt.
  pool_ = std::make_unique<BlockPool>(100);
  SchedulerOptions o{EngineRole::kPrefill, 64, 8};
  o.queue_order = QueueOrder::kDeadline;
  sched_ = std::make_unique<Scheduler>(*pool_, kBlock, Limits(), std::vector<int64_t>{kEos}, o);
  Request loose = tandem::Make(1, 40, 4);  // five steps of 8
  loose.record.arrival_us = 0;
  ASSERT_TRUE(sched_->Add(std::move(loose), 0).ok());
  StepPlan p = sched_->Schedule(1);
  ASSERT_EQ(p.chunks.at(0).request->id, 1);
  sched_->Postprocess(1, p, Tokens(p));
  Request tight = tandem::Make(2, 8, 4);
  tight.record.arrival_us = 2;
  tight.record.slo.ttft_ms = 50;
  ASSERT_TRUE(sched_->Add(std::move(tight), 2).ok());
  p = sched_->Schedule(3);
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].request->id, 2);
  EXPECT_EQ(sched_->PendingPrompts().front()->id, 2);
}

// Decode role with a step-time model: a prefilled request joins only while the predicted step
// keeps every member's TPOT target; otherwise its KV waits, and it joins when the batch shrinks.
TEST_F(SchedulerTest, APrefilledRequestWaitsWhileJoiningWouldBreakATpotTarget) {
  pool_ = std::make_unique<BlockPool>(100);
  SchedulerOptions o{EngineRole::kDecode, 8, 8};
  o.step_time_us = [](int32_t batch, int64_t) { return 10'000.0 * batch; };  // 10 ms per sequence
  sched_ = std::make_unique<Scheduler>(*pool_, kBlock, Limits(), std::vector<int64_t>{kEos}, o);
  auto prefilled = [&](int64_t id, double tpot_ms, int max_tokens) {
    Request r = tandem::Make(id, 4, max_tokens);
    r.params.ignore_eos = true;
    r.output = {50};
    r.num_computed = 4;
    r.record.slo.tpot_ms = tpot_ms;
    r.block_table = *pool_->Allocate(KvBlocksForRequest(4, max_tokens, kBlock));
    ASSERT_TRUE(sched_->AddPrefilled(std::move(r), 0).ok());
  };
  prefilled(1, 25, 3);  // alone: 10 ms, fine; two sequences: 20 ms, fine; three: 30 ms > 25
  prefilled(2, 0, 8);
  prefilled(3, 0, 8);
  StepPlan p = sched_->Schedule(1);
  EXPECT_EQ(p.chunks.size(), 2u);  // 1 and 2; 3 would push 1 past its 25 ms
  EXPECT_EQ(sched_->num_waiting(), 1);
  for (int step = 0; step < 2; ++step) {  // 1 finishes after two more tokens
    sched_->Postprocess(2 + step, p, Tokens(p));
    p = sched_->Schedule(3 + step);
  }
  EXPECT_EQ(sched_->num_waiting(), 0);  // 1 is done: 3 joins 2 (no targets left to break)
  EXPECT_EQ(p.chunks.size(), 2u);
}

TEST_F(SchedulerTest, ArrivalOrderIgnoresTargets) {
  Make(EngineRole::kPrefill, 100, 8);
  Request loose = tandem::Make(1, 8, 4);
  loose.record.slo.ttft_ms = 10000;
  Request tight = tandem::Make(2, 8, 4);
  tight.record.slo.ttft_ms = 10;
  ASSERT_TRUE(sched_->Add(std::move(loose), 0).ok());
  ASSERT_TRUE(sched_->Add(std::move(tight), 0).ok());
  EXPECT_EQ(sched_->Schedule(1).chunks.at(0).request->id, 1);
}

TEST_F(SchedulerTest, AStepsShapeSeparatesPromptChunksFromDecodeTokens) {
  Make(EngineRole::kColocated, 100, 10);
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 6, 4), 0).ok());
  StepPlan p = sched_->Schedule(1);  // request 1's whole prompt
  StepShape shape = ShapeOf(p);
  EXPECT_EQ(shape.prefill.tokens, 6);
  EXPECT_EQ(shape.prefill.quadratic, 36);
  EXPECT_EQ(shape.decode_batch, 0);
  sched_->Postprocess(1, p, Tokens(p));
  ASSERT_TRUE(sched_->Add(tandem::Make(2, 12, 4), 1).ok());
  p = sched_->Schedule(2);  // request 1 decodes its second token (at position 6); 2 gets 9 tokens
  shape = ShapeOf(p);
  EXPECT_EQ(shape.decode_batch, 1);
  EXPECT_EQ(shape.decode_context, 7);
  EXPECT_EQ(shape.prefill.tokens, 9);
  EXPECT_EQ(shape.prefill.quadratic, 81);
}

TEST_F(SchedulerTest, StopTokensAndEosEndARequestUnlessIgnored) {
  Make(EngineRole::kColocated, 16, 100);
  Request a = tandem::Make(1, 3, 10);
  Request b = tandem::Make(2, 3, 10);
  b.params.ignore_eos = true;
  Request c = tandem::Make(3, 3, 10);
  c.params.stop_token_ids = {77};
  ASSERT_TRUE(sched_->Add(a, 0).ok());
  ASSERT_TRUE(sched_->Add(b, 0).ok());
  ASSERT_TRUE(sched_->Add(c, 0).ok());
  StepPlan p = sched_->Schedule(1);
  StepResult r;
  r.tokens = {static_cast<int32_t>(kEos), static_cast<int32_t>(kEos), 77};
  auto out = sched_->Postprocess(2, p, r);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(out[1].finish_reason, FinishReason::kNone);
  EXPECT_EQ(out[2].finish_reason, FinishReason::kStop);
  EXPECT_EQ(sched_->num_running(), 1);
}

TEST_F(SchedulerTest, AFailedStepFailsExactlyItsRequestsAndFreesTheirBlocks) {
  Make(EngineRole::kColocated, 16, 4);
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 3, 2), 0).ok());
  StepPlan p1 = sched_->Schedule(1);
  sched_->Postprocess(2, p1, Tokens(p1));  // 1 is decoding now
  ASSERT_TRUE(sched_->Add(tandem::Make(2, 3, 2), 3).ok());
  ASSERT_TRUE(sched_->Add(tandem::Make(3, 9, 2), 3).ok());  // waits: the budget is spent
  StepPlan p2 = sched_->Schedule(4);                        // 1 decodes, 2 prefills
  ASSERT_EQ(p2.chunks.size(), 2u);
  auto out = sched_->FailStep(5, p2, InternalError("device fault"));
  ASSERT_EQ(out.size(), 2u);
  for (const StepOutput& o : out) {
    EXPECT_EQ(o.finish_reason, FinishReason::kError);
    EXPECT_EQ(o.status.code(), StatusCode::kInternal);
  }
  auto one = sched_->TakeFinished(1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->record.status.code(), StatusCode::kInternal);
  EXPECT_TRUE(sched_->HasWork());  // 3 goes on
  StepPlan p3 = sched_->Schedule(6);
  ASSERT_EQ(p3.chunks.size(), 1u);
  EXPECT_EQ(p3.chunks[0].request->id, 3);
  EXPECT_EQ(pool_->num_free(), 16 - 3);
}

TEST_F(SchedulerTest, AbortFreesAtOnceWhereverTheRequestIs) {
  Make(EngineRole::kColocated, 16, 100, /*seqs=*/1);
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 3, 5), 0).ok());
  ASSERT_TRUE(sched_->Add(tandem::Make(2, 3, 5), 0).ok());  // waits for a sequence slot
  StepPlan p = sched_->Schedule(1);
  sched_->Postprocess(2, p, Tokens(p));
  ASSERT_TRUE(sched_->Abort(1, 3).ok());
  ASSERT_TRUE(sched_->Abort(2, 3).ok());
  EXPECT_EQ(sched_->Abort(2, 4).code(), StatusCode::kNotFound);
  EXPECT_FALSE(sched_->HasWork());
  EXPECT_EQ(pool_->num_free(), 16);
  EXPECT_EQ(sched_->TakeFinished(1)->finish_reason, FinishReason::kAbort);
}

TEST_F(SchedulerTest, RejectsWhatCanNeverRun) {
  Make(EngineRole::kColocated, 4, 100);
  EXPECT_EQ(sched_->Add(tandem::Make(1, 0, 1), 0).code(), StatusCode::kInvalidArgument);
  Request bad = tandem::Make(2, 3, 1);
  bad.prompt[1] = 100;  // outside the vocabulary
  EXPECT_EQ(sched_->Add(bad, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(sched_->Add(tandem::Make(3, 990, 20), 0).code(), StatusCode::kOutOfRange);  // context window
  EXPECT_EQ(sched_->Add(tandem::Make(4, 10, 10), 0).code(), StatusCode::kOutOfRange);   // 5 blocks > 4
  ASSERT_TRUE(sched_->Add(tandem::Make(5, 3, 1), 0).ok());
  EXPECT_EQ(sched_->Add(tandem::Make(5, 3, 1), 0).code(), StatusCode::kAlreadyExists);
}

TEST_F(SchedulerTest, PrefillRoleHoldsThePromptOnlyAndHandsOffWithTheBlocks) {
  Make(EngineRole::kPrefill, 16, 4);
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 10, 50), 0).ok());  // 3 prompt blocks (60 tokens would need 15)
  ASSERT_EQ(sched_->PendingPrompts().size(), 1u);
  StepPlan p1 = sched_->Schedule(1);
  EXPECT_EQ(pool_->num_free(), 16 - 3);
  sched_->Postprocess(2, p1, Tokens(p1));
  StepPlan p2 = sched_->Schedule(3);
  sched_->Postprocess(4, p2, Tokens(p2));
  EXPECT_EQ(sched_->pending_prompt_tokens(), 2);
  StepPlan p3 = sched_->Schedule(5);
  ASSERT_EQ(p3.chunks.size(), 1u);
  EXPECT_EQ(p3.chunks[0].num_tokens, 2);
  EXPECT_TRUE(p3.chunks[0].want_logits);
  auto out = sched_->Postprocess(6, p3, Tokens(p3, 55));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].finish_reason, FinishReason::kNone);  // the decode node goes on
  EXPECT_FALSE(sched_->HasWork());
  auto handed = sched_->TakeHandedOff();
  ASSERT_EQ(handed.size(), 1u);
  EXPECT_EQ(handed[0]->output, std::vector<int32_t>{55});
  EXPECT_EQ(handed[0]->block_table.size(), 3u);  // still held: the transfer reads them
  EXPECT_EQ(pool_->num_free(), 16 - 3);
  EXPECT_EQ(handed[0]->record.prefill_start_us, 1);
  EXPECT_EQ(handed[0]->record.prefill_end_us, 6);
}

TEST_F(SchedulerTest, PrefillRoleFailedStepHandsOffWithTheBlocks) {
  Make(EngineRole::kPrefill, 16, 100);
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 6, 5), 0).ok());
  StepPlan p = sched_->Schedule(1);
  sched_->FailStep(2, p, InternalError("fault"));
  auto handed = sched_->TakeHandedOff();
  ASSERT_EQ(handed.size(), 1u);
  EXPECT_EQ(handed[0]->finish_reason, FinishReason::kError);
  EXPECT_EQ(handed[0]->block_table.size(), 2u);  // a transfer may have started: the owner frees
}

TEST_F(SchedulerTest, DecodeRoleTakesPrefilledRequestsAndDrawsFromStepOne) {
  Make(EngineRole::kDecode, 16, 8, /*seqs=*/1);
  Request r = tandem::Make(1, 5, 3);
  r.output = {42};
  auto blocks = pool_->Allocate(2);  // ceil((5 + 3) / 4)
  ASSERT_TRUE(blocks.ok());
  r.block_table = *blocks;
  EXPECT_EQ(sched_->Add(tandem::Make(2, 3, 3), 0).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(sched_->AddPrefilled(r, 10).ok());
  Request short_table = tandem::Make(3, 5, 3);
  short_table.output = {1};
  short_table.block_table = {blocks->front()};
  EXPECT_EQ(sched_->AddPrefilled(short_table, 10).code(), StatusCode::kInvalidArgument);
  StepPlan p = sched_->Schedule(20);
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].start, 5);  // the prompt is in the cache; the first token runs now
  EXPECT_EQ(p.chunks[0].tokens()[0], 42);
  sched_->Postprocess(30, p, Tokens(p));
  EXPECT_EQ(sched_->Find(1)->record.decode_admitted_us, 20);
  EXPECT_EQ(sched_->Find(1)->output.size(), 2u);
}

}  // namespace
}  // namespace tandem
