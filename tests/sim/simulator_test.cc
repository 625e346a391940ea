#include "sim/simulator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "scheduler/slo_placement_policy.h"

namespace tandem {
namespace {

// A profile whose numbers are easy to follow: prefill 20 ms + 0.1 ms per token, decode 5 ms +
// 1 us per context token + 1 ms per sequence, transfer 0.1 ms per layer + 1 byte per ns.
LatencyProfile TestProfile() {
  LatencyProfile p;
  p.model = "test";
  p.device = "cpu";
  p.num_layers = 4;
  p.kv_bytes_per_token = 1024;
  p.prefill = {{0, 20000, 100, 0}};
  p.decode = {{0, 5000, 1, 1000}};
  p.transfer = {{0, 100, 1000}};
  return p;
}

SimOptions Options(int prefill, int decode, int colocated = 0) {
  SimOptions o;
  o.profile = TestProfile();
  o.num_prefill = prefill;
  o.num_decode = decode;
  o.num_colocated = colocated;
  o.kv_blocks = 4096;
  return o;
}

std::unique_ptr<PlacementPolicy> LeastLoaded() { return CreatePlacementPolicy("least-loaded").value(); }

// The decode steps of one request alone: token i (i >= 1) takes one step over a context of
// prompt + i tokens; each step rounds to whole microseconds as the simulator's clock does.
int64_t DecodeSteps(const LatencyProfile& p, int32_t prompt, int32_t output, std::vector<int64_t>* token_us,
                    int64_t start) {
  int64_t t = start;
  for (int32_t i = 1; i < output; ++i) {
    t += std::llround(p.DecodeStepUs(1, prompt + i));
    token_us->push_back(t);
  }
  return t;
}

TEST(SimulatorTest, OneColocatedRequestTakesTheModelsSum) {
  const SimOptions o = Options(0, 0, 1);
  auto r = Simulate(o, LeastLoaded(), {{1000, 100, 5, {}}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const RequestRecord& rec = r->records[0];
  ASSERT_EQ(rec.finish_reason, FinishReason::kLength);
  const int64_t first = 1000 + std::llround(o.profile.PrefillUs(100));
  EXPECT_EQ(rec.first_token_us, first);
  std::vector<int64_t> expected = {first};
  const int64_t end = DecodeSteps(o.profile, 100, 5, &expected, first);
  EXPECT_EQ(rec.token_us, expected);
  EXPECT_EQ(rec.finish_us, end);
  EXPECT_EQ(r->steps, 5);
}

TEST(SimulatorTest, OneDisaggregatedRequestAddsTheTransferNotHiddenBehindThePrefill) {
  const SimOptions o = Options(1, 1);
  auto r = Simulate(o, LeastLoaded(), {{1000, 100, 5, {}}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const RequestRecord& rec = r->records[0];
  ASSERT_EQ(rec.finish_reason, FinishReason::kLength);
  const double step = std::llround(o.profile.PrefillUs(100));
  const int64_t first = 1000 + static_cast<int64_t>(step);
  EXPECT_EQ(rec.first_token_us, first);
  EXPECT_EQ(rec.prefill_node, "prefill-0");
  EXPECT_EQ(rec.decode_node, "decode-0");
  // 7 blocks of 16 tokens move, one layer after another, each once computed: the last layer
  // leaves when the step ends, so only its share of the transfer is exposed.
  EXPECT_EQ(rec.kv_bytes, 112 * 1024);
  const double per_layer = o.profile.TransferUs(112) / 4;
  const int64_t transfer_end = std::llround(first + per_layer);
  EXPECT_EQ(rec.transfer_end_us, transfer_end);
  std::vector<int64_t> expected = {first};
  const int64_t end = DecodeSteps(o.profile, 100, 5, &expected, transfer_end);
  EXPECT_EQ(rec.token_us, expected);
  EXPECT_EQ(rec.finish_us, end);
}

TEST(SimulatorTest, ASlowLinkExposesTheTransfer) {
  SimOptions o = Options(1, 1);
  o.profile.transfer = {{0, 100, 0.1}};  // 100 bytes per us: 1.1 s for this prompt's KV
  auto r = Simulate(o, LeastLoaded(), {{0, 100, 2, {}}});
  ASSERT_TRUE(r.ok());
  const RequestRecord& rec = r->records[0];
  const int64_t start = rec.prefill_start_us + std::llround(o.profile.PrefillUs(100) / 4);  // first layer done
  EXPECT_NEAR(rec.transfer_end_us, start + o.profile.TransferUs(112), 4);
  EXPECT_GT(rec.transfer_end_us - rec.first_token_us, 1'000'000);
}

std::vector<SimRequest> Poisson(int n, double rate, int32_t prompt, int32_t output, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate);
  std::vector<SimRequest> out;
  double t = 0;
  for (int i = 0; i < n; ++i) {
    t += gap(rng);
    out.push_back({static_cast<int64_t>(t * 1e6), prompt, output, {}});
  }
  return out;
}

TEST(SimulatorTest, TheSameInputsGiveTheSameRecords) {
  SimOptions o = Options(2, 2);
  o.kv_blocks = 64;  // tight: preemptions and refusals happen
  const auto requests = Poisson(300, 20, 200, 40, 7);
  auto a = Simulate(o, LeastLoaded(), requests);
  auto b = Simulate(o, LeastLoaded(), requests);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(a->records.size(), b->records.size());
  for (size_t i = 0; i < a->records.size(); ++i) {
    EXPECT_EQ(a->records[i].token_us, b->records[i].token_us) << i;
    EXPECT_EQ(a->records[i].decode_node, b->records[i].decode_node) << i;
    EXPECT_EQ(a->records[i].finish_reason, b->records[i].finish_reason) << i;
  }
  EXPECT_EQ(a->steps, b->steps);
}

// The planner's fast path: only first and last tokens reach the router core. With least-loaded
// placement nothing it decides reads the middle ones, so records keep the same TTFT and TPOT.
TEST(SimulatorTest, CoalescedTokensKeepEveryRecordsLatencies) {
  for (int colocated : {0, 2}) {
    SimOptions o = colocated > 0 ? Options(0, 0, colocated) : Options(2, 2);
    o.kv_blocks = 40;  // tight: preemptions happen
    o.router.inter_token_timeout_us = 0;
    const auto requests = Poisson(200, 20, 100, 200, 7);
    auto every = Simulate(o, LeastLoaded(), requests);
    o.router.token_times = false;
    o.coalesce_tokens = true;
    auto coalesced = Simulate(o, LeastLoaded(), requests);
    ASSERT_TRUE(every.ok() && coalesced.ok()) << every.status().ToString() << coalesced.status().ToString();
    int64_t preemptions = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
      const RequestRecord& a = every->records[i];
      const RequestRecord& b = coalesced->records[i];
      EXPECT_EQ(a.output_tokens, b.output_tokens) << i;
      EXPECT_EQ(a.first_token_us, b.first_token_us) << i;
      EXPECT_EQ(a.last_token_us, b.last_token_us) << i;
      EXPECT_DOUBLE_EQ(a.tpot_ms(), b.tpot_ms()) << i;
      EXPECT_EQ(a.decode_node, b.decode_node) << i;
      EXPECT_EQ(a.finish_reason, b.finish_reason) << i;
      EXPECT_TRUE(b.token_us.empty());
      preemptions += a.preemptions;
    }
    EXPECT_GT(preemptions, 0) << "colocated " << colocated;
  }
  SimOptions o = Options(1, 1);
  o.coalesce_tokens = true;  // with token times still kept: refused
  EXPECT_EQ(Simulate(o, LeastLoaded(), Poisson(3, 1, 10, 10, 1)).status().code(), StatusCode::kInvalidArgument);
}

// M/D/1: Poisson arrivals, one prefill node serving one prompt per step (the budget is the
// prompt) in a fixed time D. DistServe's closed form for the mean TTFT: D + R·D² / (2(1 − R·D)).
TEST(SimulatorTest, APrefillOnlyQueueMatchesMD1) {
  SimOptions o = Options(1, 1);
  o.prefill_max_num_batched_tokens = 64;
  o.prefill_queue = QueueOrder::kArrival;
  o.kv_blocks = 1 << 16;
  const double d = o.profile.PrefillUs(64) / 1e6;  // 26.4 ms
  for (double load : {0.5, 0.8}) {
    const double rate = load / d;
    const auto requests = Poisson(50'000, rate, 64, 1, 11);
    auto r = Simulate(o, LeastLoaded(), requests);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    double sum = 0;
    for (const RequestRecord& rec : r->records) {
      ASSERT_EQ(rec.finish_reason, FinishReason::kLength);
      sum += (rec.first_token_us - rec.arrival_us) / 1e6;
    }
    const double mean = sum / static_cast<double>(r->records.size());
    const double expected = d + rate * d * d / (2 * (1 - rate * d));
    EXPECT_NEAR(mean / expected, 1.0, 0.02) << "load " << load << ": mean " << mean << " s, M/D/1 " << expected;
  }
}

TEST(SimulatorTest, ATightPoolPreemptsAndLeaksNothing) {
  SimOptions o = Options(0, 0, 1);
  o.kv_blocks = 40;  // 640 tokens for requests of up to 300
  auto r = Simulate(o, LeastLoaded(), Poisson(30, 50, 100, 200, 3));
  ASSERT_TRUE(r.ok()) << r.status().ToString();  // a leaked block is an Internal error
  int64_t preemptions = 0;
  for (const RequestRecord& rec : r->records) {
    EXPECT_EQ(rec.finish_reason, FinishReason::kLength) << rec.status.ToString();
    EXPECT_EQ(rec.output_tokens, 200);
    preemptions += rec.preemptions;
  }
  EXPECT_GT(preemptions, 0);
}

TEST(SimulatorTest, SloAdmissionRefusesWhatNoNodeCanServeInTime) {
  SimOptions o = Options(1, 1);
  auto policy = std::make_unique<SloPlacementPolicy>(o.profile, AdmissionMode::kSlo);
  RequestSlo impossible;
  impossible.class_name = "impossible";
  impossible.ttft_ms = 1;  // a prefill takes 20 ms at least
  RequestSlo easy;
  easy.ttft_ms = 10'000;
  auto r = Simulate(o, std::move(policy), {{0, 100, 3, impossible}, {0, 100, 3, easy}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->refused[0].reason(), "slo_unattainable");
  EXPECT_EQ(r->records[0].finish_reason, FinishReason::kError);
  EXPECT_TRUE(r->refused[1].ok());
  EXPECT_TRUE(r->records[1].slo_met());
}

// A profile that knows its instance's KV pool (a synthetic GPU profile) sizes each node's pool,
// the decode nodes' from their own profile; kv_cache_gib and kv_blocks override it.
TEST(SimulatorTest, EachNodesPoolComesFromItsProfile) {
  SimOptions o = Options(1, 1);
  o.kv_blocks = 0;
  const double block_gib = 1024.0 * 16 / (1ull << 30);
  o.profile.kv_cache_gib = 20 * block_gib;  // prefill: 20 blocks, 320 tokens
  LatencyProfile decode = TestProfile();
  decode.kv_cache_gib = 4 * block_gib;  // decode: 4 blocks, 64 tokens
  o.decode_profile = decode;
  const std::vector<SimRequest> request = {{0, 100, 2, {}}};  // 7 blocks
  auto r = Simulate(o, LeastLoaded(), request);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->refused[0].ok());  // no decode pool holds it
  o.decode_profile->kv_cache_gib = 8 * block_gib;
  r = Simulate(o, LeastLoaded(), request);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->refused[0].ok());
  EXPECT_EQ(r->records[0].finish_reason, FinishReason::kLength);
  o.kv_cache_gib = 4 * block_gib;  // the flag wins over the profiles
  r = Simulate(o, LeastLoaded(), request);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->refused[0].ok());
}

TEST(SimulatorTest, BadSetupsAreClearErrors) {
  SimOptions no_decode_model = Options(1, 1);
  no_decode_model.profile.decode.clear();
  EXPECT_EQ(Simulate(no_decode_model, LeastLoaded(), {{0, 10, 2, {}}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Simulate(Options(0, 1), LeastLoaded(), {{0, 10, 2, {}}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Simulate(Options(1, 1), LeastLoaded(), {{0, 0, 2, {}}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Simulate(Options(1, 1), nullptr, {{0, 10, 2, {}}}).status().code(), StatusCode::kInvalidArgument);
  SimOptions no_kv_size = Options(1, 1);
  no_kv_size.kv_blocks = 0;
  no_kv_size.profile.kv_bytes_per_token = 0;
  EXPECT_EQ(Simulate(no_kv_size, LeastLoaded(), {{0, 10, 2, {}}}).status().code(), StatusCode::kInvalidArgument);
  // A request no pool can ever hold is refused by the router, as in a real cluster.
  SimOptions small = Options(1, 1);
  small.kv_blocks = 4;
  auto r = Simulate(small, LeastLoaded(), {{0, 100, 2, {}}});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->refused[0].ok());
}

// Machines holding both phases (SimOptions::node_groups): a prefill node sends its KV only to its
// own machine's decode nodes.
TEST(SimulatorTest, NodeGroupsKeepEachRequestOnOneMachine) {
  SimOptions o = Options(2, 4);
  o.node_groups = 2;
  auto r = Simulate(o, LeastLoaded(), Poisson(200, 20, 100, 20, 3));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  int per_group[2] = {0, 0};
  for (const RequestRecord& rec : r->records) {
    ASSERT_EQ(rec.finish_reason, FinishReason::kLength);
    const int group = rec.prefill_node == "prefill-0" ? 0 : 1;
    ++per_group[group];
    if (group == 0) {
      EXPECT_TRUE(rec.decode_node == "decode-0" || rec.decode_node == "decode-1") << rec.decode_node;
    } else {
      EXPECT_TRUE(rec.decode_node == "decode-2" || rec.decode_node == "decode-3") << rec.decode_node;
    }
  }
  EXPECT_GT(per_group[0], 0);
  EXPECT_GT(per_group[1], 0);
  o.node_groups = 3;  // does not divide 2 prefill nodes
  EXPECT_EQ(Simulate(o, LeastLoaded(), Poisson(3, 1, 10, 10, 1)).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
