#include "sim/planner.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

// prefill_us per prompt of 100 tokens (per token: batching prompts saves nothing), decode step
// `decode_us` + `per_seq_us` per sequence.
LatencyProfile Profile(double prefill_us, double decode_us, double per_seq_us) {
  LatencyProfile p;
  p.model = "test";
  p.num_layers = 4;
  p.kv_bytes_per_token = 1024;
  p.prefill = {{0, 0, prefill_us / 100, 0}};
  p.decode = {{0, decode_us, 0, per_seq_us}};
  p.transfer = {{0, 10, 10000}};
  return p;
}

// The best deployment with separate prefill and decode instances.
const Deployment* BestDisaggregated(const Plan& plan) {
  for (const Deployment& d : plan.ranked) {
    if (d.num_colocated == 0) return &d;
  }
  return nullptr;
}

PlanOptions Options(LatencyProfile profile, double ttft_ms, double tpot_ms) {
  PlanOptions o;
  o.kinds = {{1, std::move(profile)}};
  for (int i = 0; i < 200; ++i) o.workload.push_back({0, 100, 20, {}});
  o.ttft_ms = ttft_ms;
  o.tpot_ms = tpot_ms;
  o.attainment = 0.9;
  o.node.kv_blocks = 4096;
  o.threads = 2;
  return o;
}

TEST(PlannerTest, APrefillHeavyWorkloadGetsMorePrefillInstances) {
  // A prompt takes 50 ms; decoding a batch costs 2 ms + 0.05 ms per sequence: one decode
  // instance keeps up with many prefill instances.
  PlanOptions o = Options(Profile(50'000, 2'000, 50), 500, 20);
  o.resources = 8;
  auto plan = MakePlan(o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_FALSE(plan->ranked.empty());
  const Deployment& best = plan->ranked.front();
  EXPECT_EQ(best.num_colocated, 0) << best.name;
  EXPECT_GT(best.num_prefill, best.num_decode) << best.name;
  EXPECT_LE(best.resources, 8);
  EXPECT_GT(plan->prefill[0].rate, 10);  // about 1 / 50 ms at 90%, below the 20/s the server has
  EXPECT_LT(plan->prefill[0].rate, 20);
  EXPECT_GT(plan->decode[0].rate, 3 * plan->prefill[0].rate);
  EXPECT_GT(best.goodput, 0.7 * best.predicted_rate);
}

TEST(PlannerTest, ATightTpotGetsMoreDecodeInstances) {
  // Prompts are cheap (2 ms); a decode step costs 10 ms + 4 ms per sequence against a 30 ms
  // TPOT: a decode instance holds about 5 sequences, so decoding is the bottleneck.
  PlanOptions o = Options(Profile(2'000, 10'000, 4'000), 1000, 30);
  o.resources = 8;
  auto plan = MakePlan(o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const Deployment* best = BestDisaggregated(*plan);
  ASSERT_NE(best, nullptr);
  EXPECT_GT(best->num_decode, best->num_prefill) << best->name;
  EXPECT_LT(plan->decode[0].rate, plan->prefill[0].rate);
}

TEST(PlannerTest, ARateIsProvisionedWithTheFewestResourcesThatMeetIt) {
  PlanOptions o = Options(Profile(50'000, 2'000, 50), 500, 20);
  o.rate = 30;  // about two prefill instances' worth
  auto plan = MakePlan(o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const Deployment& best = plan->ranked.front();
  EXPECT_GE(best.attainment_at_rate, 0.9) << best.name;
  const Deployment* disaggregated = BestDisaggregated(*plan);
  ASSERT_NE(disaggregated, nullptr);
  EXPECT_GE(disaggregated->num_prefill, 2) << disaggregated->name;  // 30 req/s of 50 ms prompts
  for (const Deployment& d : plan->ranked) {
    if (d.attainment_at_rate >= 0.9) EXPECT_GE(d.resources, best.resources) << d.name;
  }
}

TEST(PlannerTest, BadRequestsAreClearErrors) {
  PlanOptions o = Options(Profile(1000, 1000, 10), 100, 10);
  EXPECT_EQ(MakePlan(o).status().code(), StatusCode::kInvalidArgument);  // neither budget nor rate
  o.resources = 4;
  PlanOptions none = o;
  none.kinds.clear();
  EXPECT_EQ(MakePlan(none).status().code(), StatusCode::kInvalidArgument);
  PlanOptions no_slo = o;
  no_slo.ttft_ms = no_slo.tpot_ms = 0;
  EXPECT_EQ(MakePlan(no_slo).status().code(), StatusCode::kInvalidArgument);
  PlanOptions bad_goal = o;
  bad_goal.attainment = 1.5;
  EXPECT_EQ(MakePlan(bad_goal).status().code(), StatusCode::kInvalidArgument);
  PlanOptions no_decode = o;
  no_decode.kinds[0].profile.decode.clear();
  EXPECT_EQ(MakePlan(no_decode).status().code(), StatusCode::kInvalidArgument);
  PlanOptions small_budget = o;
  small_budget.per_node = 8;  // 4 resources are not one machine of 8
  EXPECT_EQ(MakePlan(small_budget).status().code(), StatusCode::kInvalidArgument);
}

// Low node affinity (DistServe's Algorithm 2): 10 MB of KV per request takes 1 s between machines
// but 10 ms inside one. Prefill and decode instances on separate machines miss the TPOT target
// (the transfer sits between the first and second tokens); machines holding both phases meet it.
TEST(PlannerTest, ASlowLinkBetweenMachinesGetsPrefillAndDecodeOnTheSameMachine) {
  LatencyProfile profile = Profile(20'000, 5'000, 100);
  profile.kv_bytes_per_token = 100'000;
  profile.transfer = {{0, 10, 1e6}};
  PlanOptions o = Options(profile, 500, 40);
  o.resources = 8;
  o.per_node = 4;
  o.cross_node_bytes_per_us = 10;  // 10 MB/s
  o.node.kv_blocks = 100'000;
  auto plan = MakePlan(o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_FALSE(plan->ranked.empty());
  const Deployment& best = plan->ranked.front();
  EXPECT_TRUE(best.joint) << best.name;
  EXPECT_EQ(best.machines, 2);
  EXPECT_EQ(best.resources, 8);
  EXPECT_NE(best.name.find("2 machines x ("), std::string::npos) << best.name;
  EXPECT_GT(best.goodput, 0);
  EXPECT_GT(plan->decode_in_machine[0].rate, 0);
  EXPECT_EQ(plan->decode[0].rate, 0);  // one second between tokens 1 and 2: never within 40 ms
  for (const Deployment& d : plan->ranked) {
    EXPECT_EQ(d.resources % 4, 0) << d.name;  // whole machines
    EXPECT_FALSE(d.samples.empty()) << d.name;
  }
  // With the link as fast inside as between machines, both placements predict the same.
  o.cross_node_bytes_per_us = 0;
  auto fast = MakePlan(o);
  ASSERT_TRUE(fast.ok());
  EXPECT_GT(fast->decode[0].rate, 0);
  EXPECT_EQ(fast->decode[0].rate, fast->decode_in_machine[0].rate);
}

TEST(PlannerTest, InstancesLargerThanAMachineAreNotCandidates) {
  PlanOptions o = Options(Profile(20'000, 5'000, 100), 500, 40);
  o.kinds.push_back({8, Profile(5'000, 2'000, 50)});
  o.resources = 8;
  o.per_node = 4;
  auto plan = MakePlan(o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->prefill[1].rate, 0);
  EXPECT_EQ(plan->colocated[1].rate, 0);
  for (const Deployment& d : plan->ranked) {
    EXPECT_NE(d.prefill_size, 8) << d.name;
    EXPECT_NE(d.colocated_size, 8) << d.name;
    EXPECT_LE(d.resources, 8) << d.name;
  }
}

TEST(PlannerTest, JointAttainmentCountsFailuresAsMisses) {
  SimResult r;
  r.records.resize(4);
  for (RequestRecord& rec : r.records) {
    rec.finish_reason = FinishReason::kLength;
    rec.arrival_us = 0;
    rec.AddToken(100'000);  // TTFT 100 ms
    rec.AddToken(120'000);  // TPOT 20 ms
  }
  r.records[1].finish_reason = FinishReason::kError;
  r.records[2].last_token_us = 200'000;  // TPOT 100 ms
  EXPECT_DOUBLE_EQ(JointAttainment(r, 150, 50), 0.5);
  EXPECT_DOUBLE_EQ(JointAttainment(r, 50, 0), 0.0);
  EXPECT_DOUBLE_EQ(JointAttainment(r, 0, 200), 0.75);
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

// A decode instance limited by its batch cap, not its TPOT: at most max_num_seqs sequences every
// step of 1 ms + 0.1 ms per sequence, 19 decode steps a request (its first token comes from the
// prefill). Twenty requests at that rate all fit one batch and would meet the goal at any rate;
// the runs are sized to the rate instead, so the phase's rate stays at what the batch cap allows
// (the queue a slight overload builds within a run's length may still meet the TTFT target).
TEST(PlannerTest, AHighRateRunsLongEnoughToReachItsSteadyState) {
  PlanOptions o = Options(Profile(1'000, 1'000, 100), 100, 10);
  o.workload.resize(20);
  o.resources = 2;
  o.node.decode_max_num_seqs = 8;
  auto plan = MakePlan(o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const double step_s = (1'000 + 8 * 100) / 1e6;
  const double cap = 8 / (19 * step_s);  // requests/s one decode instance can finish
  EXPECT_LT(plan->decode[0].rate, 1.15 * cap);
  EXPECT_GT(plan->decode[0].rate, 0.5 * cap);
  EXPECT_FALSE(plan->capped);
}

}  // namespace
}  // namespace tandem
