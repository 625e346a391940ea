#include "slo/request_record.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

TEST(RequestRecordTest, LatenciesComeFromTheStamps) {
  RequestRecord r;
  r.id = 9;
  r.arrival_us = 1000;
  r.queued_us = 1000;
  r.placed_us = 1500;
  r.AddToken(3000);
  r.AddToken(3400);
  r.AddToken(4000);
  r.finish_us = 4100;
  EXPECT_EQ(r.first_token_us, 3000);
  EXPECT_EQ(r.output_tokens, 3);
  EXPECT_DOUBLE_EQ(r.ttft_ms(), 2.0);
  EXPECT_DOUBLE_EQ(r.tpot_ms(), 0.5);  // (4000 - 3000) / 2 tokens after the first
  EXPECT_DOUBLE_EQ(r.e2e_ms(), 3.1);
  EXPECT_DOUBLE_EQ(r.queue_ms(), 0.5);
  EXPECT_DOUBLE_EQ(r.transfer_ms(), -1.0);  // no transfer
}

TEST(RequestRecordTest, NoTokenMeansNoTtftAndTheSummarySaysWhy) {
  RequestRecord r;
  r.id = 4;
  r.arrival_us = 10;
  r.finish_us = 20;
  r.finish_reason = FinishReason::kError;
  r.status = DeadlineExceededError("no first token after 60000 ms");
  EXPECT_DOUBLE_EQ(r.ttft_ms(), -1.0);
  EXPECT_DOUBLE_EQ(r.tpot_ms(), 0.0);
  const std::string line = r.Summary();
  EXPECT_NE(line.find("request 4 error"), std::string::npos) << line;
  EXPECT_NE(line.find("P=- D=-"), std::string::npos) << line;
  EXPECT_NE(line.find("error=DEADLINE_EXCEEDED: no first token"), std::string::npos) << line;
}

TEST(RequestRecordTest, TheSummaryNamesNodesAndTheTransfer) {
  RequestRecord r;
  r.id = 1;
  r.prefill_node = "prefill-0";
  r.decode_node = "decode-1";
  r.arrival_us = 0;
  r.prefill_start_us = 100;
  r.prefill_end_us = 600;
  r.transfer_start_us = 200;
  r.transfer_end_us = 700;
  r.kv_bytes = 4096;
  r.AddToken(800);
  r.finish_us = 900;
  r.finish_reason = FinishReason::kStop;
  const std::string line = r.Summary();
  EXPECT_NE(line.find("request 1 stop: P=prefill-0 D=decode-1"), std::string::npos) << line;
  EXPECT_NE(line.find("prefill_ms=0.50"), std::string::npos) << line;
  EXPECT_NE(line.find("kv_bytes=4096 kv_transfer_ms=0.50"), std::string::npos) << line;
}

}  // namespace
}  // namespace tandem
