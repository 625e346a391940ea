// KV memory that grows (KvAllocation::kGrow) without a model: admission takes the prefill's
// blocks, a decoding sequence takes a block when its next token starts one, and when the pool is
// out the least important running request is preempted (blocks freed, back to waiting) and later
// recomputed: prompt + output[:-1] as a prefill that samples nothing, then decoding resumes with
// the last output token. The token-for-token round trip with a real model is in
// tests/model/preemption_round_trip_test.cc.
#include <gtest/gtest.h>

#include "engine/scheduler.h"
#include "tests/engine/scheduler_test_requests.h"

namespace tandem {
namespace {

constexpr int32_t kBlock = 4;
constexpr int64_t kEos = 2;

RequestLimits Limits() { return testing::SmallVocabularyLimits(); }

// Runs to max_tokens (the test's made-up tokens are no EOS anyway), with an SLO priority.
Request Make(int64_t id, int prompt_len, int max_tokens, int32_t priority = 0) {
  Request r = testing::GreedyRequest(id, prompt_len, max_tokens);
  r.params.ignore_eos = true;
  r.record.slo.priority = priority;
  return r;
}

// Every sampling chunk gets token 50 + its request id, so outputs are recognisable.
StepResult Tokens(const StepPlan& plan) {
  StepResult r;
  for (const ScheduledChunk& c : plan.chunks) {
    if (c.want_logits) r.tokens.push_back(static_cast<int32_t>(50 + c.request->id));
  }
  return r;
}

class KvGrowthTest : public ::testing::Test {
 protected:
  void Make(EngineRole role, int32_t blocks, int32_t budget, QueueOrder order = QueueOrder::kArrival) {
    pool_ = std::make_unique<BlockPool>(blocks);
    SchedulerOptions o{role, 8, budget};
    o.queue_order = order;
    sched_ = std::make_unique<Scheduler>(*pool_, kBlock, Limits(), std::vector<int64_t>{kEos}, o);
  }
  // One step: schedule at `now`, postprocess with made-up tokens.
  StepPlan Step(int64_t now) {
    StepPlan p = sched_->Schedule(now);
    sched_->Postprocess(now, p, Tokens(p));
    return p;
  }
  const ScheduledChunk* ChunkOf(const StepPlan& p, int64_t id) {
    for (const ScheduledChunk& c : p.chunks) {
      if (c.request->id == id) return &c;
    }
    return nullptr;
  }
  std::unique_ptr<BlockPool> pool_;
  std::unique_ptr<Scheduler> sched_;
};

TEST_F(KvGrowthTest, AdmissionTakesThePromptsBlocksAndDecodingTakesOneWhenATokenStartsABlock) {
  Make(EngineRole::kColocated, 16, 100);
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 4, 10), 0).ok());
  Step(1);                               // the prompt (positions 0..3) and the first token
  EXPECT_EQ(pool_->num_free(), 16 - 1);  // one block; prompt + max_tokens would be 4
  Step(2);                               // position 4 starts the second block
  EXPECT_EQ(pool_->num_free(), 16 - 2);
  for (int t = 3; t <= 5; ++t) Step(t);  // positions 5..7 fit in it
  EXPECT_EQ(pool_->num_free(), 16 - 2);
  Step(6);  // position 8
  EXPECT_EQ(pool_->num_free(), 16 - 3);
  while (sched_->HasWork()) Step(10);
  EXPECT_EQ(sched_->TakeFinished(1)->output.size(), 10u);
  EXPECT_EQ(pool_->num_free(), 16);
  EXPECT_EQ(sched_->num_preemptions(), 0);
}

// Two decoding requests, a pool that cannot hold both: the one with the larger priority value
// goes back to waiting, its blocks freed, and comes back as a recompute that samples nothing.
TEST_F(KvGrowthTest, AnOutOfBlocksPoolPreemptsTheLeastImportantAndRecomputesIt) {
  Make(EngineRole::kColocated, 4, 100);
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 4, 6, /*priority=*/1), 0).ok());  // batch class
  ASSERT_TRUE(sched_->Add(tandem::Make(2, 4, 6, /*priority=*/0), 0).ok());  // interactive
  Step(1);                                                                  // both prompts: a block each
  Step(2);  // both cross into their second block: the pool is full
  EXPECT_EQ(pool_->num_free(), 0);
  Step(3);  // positions 5 fit
  Step(4);
  Step(5);
  // Position 8 needs a third block for each: 1 (priority 1) is preempted for 2.
  StepPlan p = Step(6);
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].request->id, 2);
  EXPECT_EQ(sched_->num_preemptions(), 1);
  EXPECT_EQ(sched_->num_waiting(), 1);
  Request* one = sched_->Find(1);
  ASSERT_NE(one, nullptr);
  EXPECT_TRUE(one->block_table.empty());
  EXPECT_EQ(one->num_computed, 0);
  EXPECT_EQ(one->output.size(), 5u);
  EXPECT_EQ(one->record.preemptions, 1);
  EXPECT_EQ(one->remaining_prefill(), 4 + 5 - 1);
  while (sched_->Find(2) != nullptr) Step(7);  // 2 finishes; its blocks come back
  // 1 resumes: its prompt and output but the last are recomputed, without sampling.
  StepPlan resume = sched_->Schedule(8);
  const ScheduledChunk* c = ChunkOf(resume, 1);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->start, 0);
  EXPECT_EQ(c->num_tokens, 8);
  EXPECT_FALSE(c->want_logits);
  EXPECT_FALSE(c->decode);
  std::vector<int32_t> expected = one->prompt;
  expected.insert(expected.end(), one->output.begin(), one->output.end() - 1);
  EXPECT_EQ(std::vector<int32_t>(c->tokens().begin(), c->tokens().end()), expected);
  EXPECT_EQ(ShapeOf(resume).decode_batch, 0);
  EXPECT_TRUE(sched_->Postprocess(8, resume, Tokens(resume)).empty());  // nothing sampled
  // Decoding resumes at position 8 with the last output token as input.
  StepPlan next = sched_->Schedule(9);
  c = ChunkOf(next, 1);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->decode);
  EXPECT_EQ(c->start, 8);
  EXPECT_EQ(c->tokens()[0], one->output.back());
  sched_->Postprocess(9, next, Tokens(next));
  while (sched_->HasWork()) Step(10);
  auto done = sched_->TakeFinished(1);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->output, std::vector<int32_t>(6, 51));
  EXPECT_EQ(done->finish_reason, FinishReason::kLength);
  EXPECT_EQ(done->record.token_us.size(), 6u);
  EXPECT_EQ(pool_->num_free(), 4);
}

// Equal priorities: the later deadline (here: the later arrival) is preempted.
TEST_F(KvGrowthTest, AmongEqualPrioritiesTheLatestDeadlineIsPreempted) {
  Make(EngineRole::kColocated, 4, 100, QueueOrder::kDeadline);
  Request early = tandem::Make(1, 4, 10);
  early.record.slo.ttft_ms = 100;  // deadline 100 ms after arrival
  Request late = tandem::Make(2, 4, 10);
  late.record.slo.ttft_ms = 50;
  ASSERT_TRUE(sched_->Add(std::move(early), 0).ok());
  ASSERT_TRUE(sched_->Add(std::move(late), 80'000).ok());  // deadline 130 ms: later
  for (int t = 1; t <= 6; ++t) Step(80'000 + t);           // the prompts, then positions 4..8
  EXPECT_EQ(sched_->num_preemptions(), 1);
  EXPECT_NE(sched_->Find(2), nullptr);
  EXPECT_TRUE(sched_->Find(2)->block_table.empty());
  EXPECT_FALSE(sched_->Find(1)->block_table.empty());
}

// A preempted request goes before later arrivals under FCFS: it resumes first.
TEST_F(KvGrowthTest, APreemptedRequestResumesBeforeLaterArrivals) {
  Make(EngineRole::kColocated, 4, 100);
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 4, 6), 0).ok());
  ASSERT_TRUE(sched_->Add(tandem::Make(2, 4, 6), 0).ok());
  for (int t = 1; t <= 6; ++t) Step(t);
  EXPECT_EQ(sched_->num_preemptions(), 1);  // 2 (admitted later) is the one
  ASSERT_TRUE(sched_->Add(tandem::Make(3, 4, 2), 6).ok());
  while (sched_->Find(1) != nullptr) Step(7);
  StepPlan p = sched_->Schedule(8);
  ASSERT_FALSE(p.chunks.empty());
  EXPECT_EQ(p.chunks[0].request->id, 2);
}

// A prompt still prefilling is a victim too: it simply starts over.
TEST_F(KvGrowthTest, APreemptedPromptStartsOverAndSamplesItsFirstToken) {
  Make(EngineRole::kColocated, 9, 2);  // 2 tokens a step: 1's decode token and 1 of 2's prompt
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 4, 16, /*priority=*/0), 0).ok());
  Step(1);
  Step(2);  // 1's prompt in two chunks; first token
  ASSERT_TRUE(sched_->Add(tandem::Make(2, 20, 2, /*priority=*/1), 3).ok());
  Step(4);  // 1 decodes (second block); 2 takes its 5 blocks (2 stay free: the watermark)
  EXPECT_EQ(pool_->num_free(), 2);
  for (int t = 5; t <= 15; ++t) Step(t);  // 1 takes its third and fourth block; 2 at 12 of 20
  EXPECT_EQ(pool_->num_free(), 0);
  EXPECT_EQ(sched_->num_preemptions(), 0);
  Step(16);  // 1 needs a block for position 16: 2 is preempted mid-prompt
  EXPECT_EQ(sched_->num_preemptions(), 1);
  Request* two = sched_->Find(2);
  ASSERT_NE(two, nullptr);
  EXPECT_TRUE(two->output.empty());
  EXPECT_EQ(two->remaining_prefill(), 20);
  while (sched_->HasWork()) Step(20);
  EXPECT_EQ(sched_->TakeFinished(2)->output, (std::vector<int32_t>{52, 52}));
  EXPECT_EQ(sched_->TakeFinished(1)->output.size(), 16u);
  EXPECT_EQ(pool_->num_free(), 9);
}

// Decode role: a prefilled request holds its prompt's blocks, grows, and when preempted is
// recomputed on this node.
TEST_F(KvGrowthTest, DecodeRolePreemptsAndRecomputesLocally) {
  Make(EngineRole::kDecode, 4, 64);
  auto prefilled = [&](int64_t id, int32_t priority) {
    Request r = tandem::Make(id, 4, 6, priority);
    r.output = {40};
    r.params.seed = 1;
    r.block_table = *pool_->Allocate(1);  // the prompt's block only
    ASSERT_TRUE(sched_->AddPrefilled(std::move(r), 0).ok());
  };
  prefilled(1, 0);
  prefilled(2, 1);
  for (int t = 1; t <= 5; ++t) Step(t);  // positions 4..7: second blocks; position 8: out
  EXPECT_EQ(sched_->num_preemptions(), 1);
  EXPECT_TRUE(sched_->Find(2)->block_table.empty());
  while (sched_->HasWork()) Step(10);
  auto two = sched_->TakeFinished(2);
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(two->output, (std::vector<int32_t>{40, 52, 52, 52, 52, 52}));
  EXPECT_EQ(two->record.preemptions, 1);
  EXPECT_EQ(pool_->num_free(), 4);
}

// The watermark: with running sequences, a new prompt is admitted only while two blocks per
// running sequence, and at least 1% of the pool, stay free for their growth.
TEST_F(KvGrowthTest, AdmissionLeavesTheWatermarkForGrowingSequences) {
  Make(EngineRole::kColocated, 200, 1000);                        // watermark: 2 blocks
  ASSERT_TRUE(sched_->Add(tandem::Make(1, 4 * 190, 4), 0).ok());  // 190 blocks
  Step(1);
  ASSERT_TRUE(sched_->Add(tandem::Make(2, 4 * 9, 4), 2).ok());  // 9 blocks: 1 would be left
  StepPlan p = Step(3);
  EXPECT_EQ(ChunkOf(p, 2), nullptr);
  EXPECT_EQ(sched_->num_waiting(), 1);
}

TEST_F(KvGrowthTest, AdmissionKeepsTwoBlocksPerRunningSequence) {
  Make(EngineRole::kColocated, 20, 1000);  // 1% of the pool: nothing
  for (int64_t id = 1; id <= 3; ++id) ASSERT_TRUE(sched_->Add(tandem::Make(id, 4, 8), 0).ok());
  Step(1);                                                   // three prompts, a block each
  ASSERT_TRUE(sched_->Add(tandem::Make(4, 48, 4), 1).ok());  // 12 blocks
  StepPlan p = Step(2);  // the three take their second blocks: 14 free, but 12 + 2 * 3 > 14
  EXPECT_EQ(ChunkOf(p, 4), nullptr);
  EXPECT_EQ(pool_->num_free(), 14);
  while (sched_->Find(1) != nullptr) Step(3);  // they finish: 4 runs
  EXPECT_NE(ChunkOf(Step(4), 4), nullptr);
}

TEST_F(KvGrowthTest, ARequestLargerThanThePoolIsRefusedAtOnce) {
  Make(EngineRole::kColocated, 4, 100);
  Request big = tandem::Make(1, 4, 20);  // 24 tokens: 6 blocks over its life
  RequestLimits l = Limits();
  l.block_size = kBlock;
  l.pool_blocks = 4;
  sched_ = std::make_unique<Scheduler>(*pool_, kBlock, l, std::vector<int64_t>{kEos}, SchedulerOptions{});
  EXPECT_EQ(sched_->Add(std::move(big), 0).code(), StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace tandem
