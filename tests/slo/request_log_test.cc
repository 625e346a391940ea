#include "slo/request_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace tandem {
namespace {

RequestRecord Finished(int64_t id, FinishReason reason) {
  RequestRecord r;
  r.id = id;
  r.prompt_tokens = 12;
  r.max_tokens = 8;
  r.arrival_us = 1'000'000;
  r.queued_us = 1'000'100;
  r.placed_us = 1'000'500;
  r.prefill_node = "prefill-0";
  r.decode_node = "decode-0";
  r.slo.class_name = "interactive";
  r.slo.ttft_ms = 100;
  r.slo.tpot_ms = 5;
  if (reason != FinishReason::kError) {
    r.AddToken(1'050'000);
    r.AddToken(1'060'000);
    r.AddToken(1'070'000);
  } else {
    r.status = UnavailableError("decode node lost");
  }
  r.finish_us = 1'080'000;
  r.finish_reason = reason;
  return r;
}

TEST(RequestLogTest, ALineCarriesTheRecordAndATraceRow) {
  const nlohmann::ordered_json j = RequestLogLine(Finished(7, FinishReason::kStop), 5'000'000);
  EXPECT_DOUBLE_EQ(j["timestamp"].get<double>(), 6000.0);  // (1 s steady + 5 s offset) in ms
  EXPECT_EQ(j["input_length"], 12);
  EXPECT_EQ(j["output_length"], 3);  // a normal finish: what it produced
  EXPECT_EQ(j["slo_class"], "interactive");
  EXPECT_EQ(j["request_id"], 7);
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_DOUBLE_EQ(j["ttft_ms"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(j["tpot_ms"].get<double>(), 10.0);
  EXPECT_EQ(j["ttft_met"], true);
  EXPECT_EQ(j["tpot_met"], false);
  EXPECT_EQ(j["slo_met"], false);
  EXPECT_DOUBLE_EQ(j["stamps_ms"]["placed"].get<double>(), 0.5);
  EXPECT_TRUE(j["stamps_ms"]["transfer_start"].is_null());
  EXPECT_TRUE(j["error"].is_null());

  const nlohmann::ordered_json failed = RequestLogLine(Finished(8, FinishReason::kError), 0);
  EXPECT_EQ(failed["output_length"], 8);  // a replay asks for what it wanted
  EXPECT_EQ(failed["slo_met"], false);
  EXPECT_NE(failed["error"].get<std::string>().find("decode node lost"), std::string::npos);
  RequestRecord no_slo = Finished(9, FinishReason::kLength);
  no_slo.slo = RequestSlo{};
  EXPECT_TRUE(RequestLogLine(no_slo, 0)["slo_met"].is_null());
}

TEST(RequestLogTest, ConcurrentWritersLeaveWholeLines) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("request_log_" + std::to_string(::getpid()) + ".jsonl")).string();
  std::filesystem::remove(path);
  {
    auto log = RequestLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t) {
      writers.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) (*log)->Write(Finished(t * 100 + i, FinishReason::kLength));
      });
    }
    for (std::thread& w : writers) w.join();
  }
  std::ifstream in(path);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    EXPECT_FALSE(nlohmann::json::parse(line, nullptr, false).is_discarded()) << line;
    ++lines;
  }
  EXPECT_EQ(lines, 200);
  std::filesystem::remove(path);
  EXPECT_FALSE(RequestLog::Open("/nonexistent_dir/log.jsonl").ok());
}

}  // namespace
}  // namespace tandem
