#include "scheduler/router_metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/common/metrics_test_util.h"

namespace tandem {
namespace {

using testing::SampleValue;

constexpr char kRouter[] = "{model_name=\"tiny\",role=\"router\"}";

// A disaggregated request: arrival 0, prefill 1-3 ms, transfer 2-4 ms, tokens at 3, 5, 7, 9 ms.
RequestRecord Served(const std::string& slo_class, double ttft_ms, double tpot_ms) {
  RequestRecord r;
  r.id = 1;
  r.prompt_tokens = 20;
  r.arrival_us = 1'000'000;
  r.queued_us = r.arrival_us;
  r.placed_us = r.arrival_us + 500;
  r.prefill_start_us = r.arrival_us + 1000;
  r.prefill_end_us = r.arrival_us + 3000;
  r.transfer_start_us = r.arrival_us + 2000;
  r.transfer_end_us = r.arrival_us + 4000;
  r.kv_bytes = 65536;
  for (int64_t t : {3000, 5000, 7000, 9000}) r.AddToken(r.arrival_us + t);
  r.finish_us = r.arrival_us + 9500;
  r.finish_reason = FinishReason::kStop;
  r.preemptions = 1;
  r.slo.class_name = slo_class;
  r.slo.ttft_ms = ttft_ms;
  r.slo.tpot_ms = tpot_ms;
  return r;
}

TEST(RouterMetricsTest, AFinishedRequestFillsEveryFamily) {
  RouterMetrics m("tiny", "router");
  m.ObserveFinished(Served("interactive", 10, 5));  // met: TTFT 3 ms, TPOT 2 ms
  m.ObserveFinished(Served("interactive", 1, 1));   // both missed
  RequestRecord failed = Served("batch", 100, 100);
  failed.finish_reason = FinishReason::kError;
  m.ObserveFinished(failed);
  const std::string text = m.Render(LoadInfo{});
  auto v = [&](const std::string& name) { return SampleValue(text, name + kRouter); };
  EXPECT_EQ(v("tandem:prompt_tokens_total"), 60);
  EXPECT_EQ(v("tandem:generation_tokens_total"), 12);
  EXPECT_EQ(v("tandem:num_preemptions_total"), 3);
  EXPECT_EQ(v("tandem:time_to_first_token_seconds_count"), 3);
  EXPECT_DOUBLE_EQ(v("tandem:time_to_first_token_seconds_sum"), 0.009);
  EXPECT_EQ(v("tandem:inter_token_latency_seconds_count"), 9);
  EXPECT_EQ(v("tandem:request_time_per_output_token_seconds_count"), 3);
  EXPECT_DOUBLE_EQ(v("tandem:request_queue_time_seconds_sum"), 0.003);  // to the first prompt chunk
  EXPECT_DOUBLE_EQ(v("tandem:request_prefill_time_seconds_sum"), 0.006);
  EXPECT_DOUBLE_EQ(v("tandem:request_decode_time_seconds_sum"), 0.018);
  EXPECT_DOUBLE_EQ(v("tandem:kv_transfer_seconds_sum"), 0.006);
  EXPECT_DOUBLE_EQ(v("tandem:kv_transfer_exposed_seconds_sum"), 0.003);  // 1 ms after each prefill
  EXPECT_EQ(v("tandem:kv_transfer_bytes_sum"), 3 * 65536);
  EXPECT_EQ(
      SampleValue(text, "tandem:request_success_total{model_name=\"tiny\",role=\"router\",finished_reason=\"stop\""),
      2);
  EXPECT_EQ(
      SampleValue(text, "tandem:request_success_total{model_name=\"tiny\",role=\"router\",finished_reason=\"error\""),
      1);
  EXPECT_EQ(
      SampleValue(text, "tandem:slo_requests_total{model_name=\"tiny\",role=\"router\",slo_class=\"interactive\"}"), 2);
  EXPECT_EQ(SampleValue(text, "tandem:slo_met_total{model_name=\"tiny\",role=\"router\",slo_class=\"interactive\"}"),
            1);
  EXPECT_EQ(SampleValue(text, "tandem:slo_met_total{model_name=\"tiny\",role=\"router\",slo_class=\"batch\"}"), -1);
  EXPECT_EQ(SampleValue(text,
                        "tandem:slo_missed_total{model_name=\"tiny\",role=\"router\",slo_class=\"interactive\","
                        "target=\"ttft\"}"),
            1);
  EXPECT_EQ(SampleValue(text,
                        "tandem:slo_missed_total{model_name=\"tiny\",role=\"router\",slo_class=\"interactive\","
                        "target=\"tpot\"}"),
            1);
  EXPECT_EQ(SampleValue(text,
                        "tandem:slo_missed_total{model_name=\"tiny\",role=\"router\",slo_class=\"batch\","
                        "target=\"finish\"}"),
            1);
}

TEST(RouterMetricsTest, StateComesFromTheLoadAtScrapeTime) {
  RouterMetrics m("tiny", "router");
  m.CountRejection("rate_limit_exceeded");
  m.CountRejection("rate_limit_exceeded");
  m.CountRejection("");
  LoadInfo load;
  load.num_requests = 5;
  load.num_queued = 2;
  load.decisions.placed = 4;
  load.decisions.shed = 1;
  NodeView up;
  up.id = "decode-0";
  up.role = NodeRole::kDecode;
  up.state = NodeState::kReady;
  up.reported = true;
  up.times_up = 2;
  up.times_down = 1;
  NodeView down = up;
  down.id = "prefill-0";
  down.role = NodeRole::kPrefill;
  down.state = NodeState::kDown;
  load.nodes = {up, down};
  const std::string text = m.Render(load);
  EXPECT_EQ(SampleValue(text, std::string("tandem:num_requests_running") + kRouter), 3);
  EXPECT_EQ(SampleValue(text, std::string("tandem:num_requests_waiting") + kRouter), 2);
  EXPECT_EQ(SampleValue(text, "tandem:placement_decisions_total{decision=\"placed\""), 4);
  EXPECT_EQ(SampleValue(text, "tandem:placement_decisions_total{decision=\"shed\""), 1);
  EXPECT_EQ(
      SampleValue(text,
                  "tandem:request_rejections_total{model_name=\"tiny\",role=\"router\",reason=\"rate_limit_exceeded\""),
      2);
  EXPECT_EQ(SampleValue(text, "tandem:request_rejections_total{model_name=\"tiny\",role=\"router\",reason=\"unknown\""),
            1);
  EXPECT_EQ(SampleValue(text, "tandem:node_up{model_name=\"tiny\",node_id=\"decode-0\""), 1);
  EXPECT_EQ(SampleValue(text, "tandem:node_up{model_name=\"tiny\",node_id=\"prefill-0\""), 0);
  EXPECT_EQ(SampleValue(text,
                        "tandem:node_transitions_total{model_name=\"tiny\",node_id=\"decode-0\",node_role=\"decode\","
                        "role=\"router\",to=\"down\"}"),
            1);
  EXPECT_EQ(SampleValue(text, "tandem:kv_cache_usage_perc"), -1);  // the nodes export their own
  const auto check = testing::PromtoolCheck(text, "/tmp/tandem_router_metrics_" + std::to_string(::getpid()));
  if (check.available) EXPECT_EQ(check.problems, "");
}

TEST(RouterMetricsTest, AColocatedWorkerExportsItsKvUsage) {
  RouterMetrics m("tiny", "worker");
  LoadInfo load;
  load.num_free_kv_blocks = 30;
  load.num_total_kv_blocks = 40;
  EXPECT_DOUBLE_EQ(SampleValue(m.Render(load), "tandem:kv_cache_usage_perc{model_name=\"tiny\",role=\"worker\"}"),
                   0.25);
}

}  // namespace
}  // namespace tandem
