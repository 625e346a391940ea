// ClusterClient when things go wrong: aborts, node errors, nodes that die, stall or never
// answer, a stopping client and a throwing callback. Each request ends with one final event.
#include <gtest/gtest.h>

#include "scheduler/cluster_client.h"
#include "tests/scheduler/cluster_client_fixture.h"

namespace tandem {
namespace {

using namespace tandem::testing;
using std::chrono::milliseconds;

TEST_F(ClusterClientTest, AbortReachesBothNodesAndFreesTheReservation) {
  StartNodes({64});
  decodes_[0]->hold = true;  // the request sits in D's batch until aborted
  CreateReadyClient();
  EventSink& sink = Sink();
  ASSERT_TRUE(client_->Submit(Req(11, {1, 2, 3}, 50), sink.Callback()).ok());
  ASSERT_TRUE(sink.WaitTokens(1));
  EXPECT_LT(decodes_[0]->free_blocks(), 64u);
  client_->Abort(11);
  auto fin = sink.WaitFinal(milliseconds(1000));
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->finish_reason, FinishReason::kAbort);
  const std::string wire = ClusterClient::WireId(11);
  EXPECT_TRUE(prefill_->inbox.WaitFor(proto::Envelope::kAbort, wire, milliseconds(2000)));
  EXPECT_TRUE(decodes_[0]->inbox.WaitFor(proto::Envelope::kAbort, wire, milliseconds(2000)));
  for (int i = 0; i < 100 && decodes_[0]->free_blocks() != 64u; ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(decodes_[0]->free_blocks(), 64u);
  client_->Abort(11);  // finished: ignored
  client_->Abort(12345);
  EXPECT_EQ(sink.NumEvents(), 2u);
}

TEST_F(ClusterClientTest, NodeErrorBecomesAnErrorEventAndAbortsThePeer) {
  StartNodes({64});
  prefill_->fail_with = static_cast<int>(StatusCode::kInvalidArgument);
  CreateReadyClient();
  EventSink& sink = Sink();
  ASSERT_TRUE(client_->Submit(Req(4, {1, 2}, 4), sink.Callback()).ok());
  auto fin = sink.WaitFinal();
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->finish_reason, FinishReason::kError);
  EXPECT_EQ(fin->status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(fin->status.message().find("injected failure"), std::string::npos) << fin->status.ToString();
  EXPECT_TRUE(decodes_[0]->inbox.WaitFor(proto::Envelope::kAbort, ClusterClient::WireId(4), milliseconds(2000)));
}

TEST_F(ClusterClientTest, DecodeNodeDeathFailsItsRequestsAndIsAvoided) {
  StartNodes({64, 32});
  decodes_[0]->hold = true;
  CreateReadyClient();
  EventSink& sink = Sink();
  ASSERT_TRUE(client_->Submit(Req(21, {3, 1}, 20), sink.Callback()).ok());
  ASSERT_TRUE(sink.WaitTokens(1));  // decoding on decode-0 (most free blocks)
  const auto t0 = std::chrono::steady_clock::now();
  decodes_[0]->Stop();
  auto fin = sink.WaitFinal(milliseconds(5000));
  ASSERT_TRUE(fin.has_value()) << "no error event within 5 s";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(fin->finish_reason, FinishReason::kError);
  EXPECT_EQ(fin->status.code(), StatusCode::kUnavailable);
  EXPECT_NE(fin->status.message().find("decode node decode-0"), std::string::npos) << fin->status.ToString();
  EXPECT_TRUE(prefill_->inbox.WaitFor(proto::Envelope::kAbort, ClusterClient::WireId(21), milliseconds(2000)));
  EXPECT_FALSE(client_->Ready());

  EventSink& next = Sink();
  ASSERT_TRUE(client_->Submit(Req(22, {3, 1}, 4), next.Callback()).ok());
  auto fin2 = next.WaitFinal();
  ASSERT_TRUE(fin2.has_value());
  EXPECT_EQ(fin2->finish_reason, FinishReason::kLength) << fin2->status.ToString();
  auto rec = Record(22);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->decode_node, "decode-1");
}

TEST_F(ClusterClientTest, PrefillNodeDeathDuringPrefillAbortsTheDecodeReservation) {
  StartNodes({64});
  prefill_->hold = true;
  CreateReadyClient();
  EventSink& sink = Sink();
  ASSERT_TRUE(client_->Submit(Req(31, {1, 2, 3}, 10), sink.Callback()).ok());
  ASSERT_TRUE(prefill_->inbox.WaitFor(proto::Envelope::kPrefillRequest, "", milliseconds(2000)));
  prefill_->Stop();
  auto fin = sink.WaitFinal(milliseconds(5000));
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->finish_reason, FinishReason::kError);
  EXPECT_EQ(fin->status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(decodes_[0]->inbox.WaitFor(proto::Envelope::kAbort, ClusterClient::WireId(31), milliseconds(2000)));
  for (int i = 0; i < 100 && decodes_[0]->free_blocks() != 64u; ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(decodes_[0]->free_blocks(), 64u);
  // No prefill node left: new requests fail at once.
  EventSink& next = Sink();
  EXPECT_EQ(client_->Submit(Req(32, {1}, 2), next.Callback()).code(), StatusCode::kUnavailable);
}

TEST_F(ClusterClientTest, StuckPrefillTimesOut) {
  StartNodes({64});
  prefill_->hold = true;
  ClusterClientOptions o = Options();
  o.first_token_timeout = milliseconds(300);
  CreateClient(std::move(o));
  ASSERT_TRUE(client_->WaitReady(milliseconds(5000)).ok());
  EventSink& sink = Sink();
  ASSERT_TRUE(client_->Submit(Req(41, {1, 2}, 4), sink.Callback()).ok());
  auto fin = sink.WaitFinal(milliseconds(3000));
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(decodes_[0]->inbox.WaitFor(proto::Envelope::kAbort, ClusterClient::WireId(41), milliseconds(2000)));
  EXPECT_TRUE(prefill_->inbox.WaitFor(proto::Envelope::kAbort, ClusterClient::WireId(41), milliseconds(2000)));
}

TEST_F(ClusterClientTest, StopFailsWhatIsInFlight) {
  StartNodes({64});
  decodes_[0]->hold = true;
  CreateReadyClient();
  EventSink& sink = Sink();
  ASSERT_TRUE(client_->Submit(Req(51, {1, 2}, 30), sink.Callback()).ok());
  ASSERT_TRUE(sink.WaitTokens(1));
  client_->Stop();
  auto fin = sink.WaitFinal(milliseconds(10));  // delivered before Stop returned
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(decodes_[0]->inbox.WaitFor(proto::Envelope::kAbort, ClusterClient::WireId(51), milliseconds(2000)));
  EXPECT_FALSE(client_->Ready());
  EventSink& late = Sink();
  EXPECT_EQ(client_->Submit(Req(52, {1}, 2), late.Callback()).code(), StatusCode::kUnavailable);
}

TEST_F(ClusterClientTest, AStalledDecodeNodeEndsTheStreamAfterTheInterTokenTimeout) {
  StartNodes({64});
  decodes_[0]->hold = true;  // takes the KV, then never sends a token (a wedged step)
  ClusterClientOptions o = Options();
  o.inter_token_timeout = milliseconds(300);
  CreateClient(std::move(o));
  ASSERT_TRUE(client_->WaitReady(milliseconds(5000)).ok());
  EventSink& sink = Sink();
  ASSERT_TRUE(client_->Submit(Req(90, {1, 2}, 40), sink.Callback()).ok());
  ASSERT_TRUE(sink.WaitTokens(1));
  const auto t0 = std::chrono::steady_clock::now();
  auto fin = sink.WaitFinal(milliseconds(3000));
  ASSERT_TRUE(fin.has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(250));
  EXPECT_EQ(fin->finish_reason, FinishReason::kError);
  EXPECT_EQ(fin->status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(fin->status.message().find("no token from decode node decode-0"), std::string::npos)
      << fin->status.ToString();
  const std::string wire = ClusterClient::WireId(90);
  EXPECT_TRUE(decodes_[0]->inbox.WaitFor(proto::Envelope::kAbort, wire, milliseconds(2000)));
  EXPECT_TRUE(prefill_->inbox.WaitFor(proto::Envelope::kAbort, wire, milliseconds(2000)));
  for (int i = 0; i < 100 && decodes_[0]->free_blocks() != 64u; ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(decodes_[0]->free_blocks(), 64u);
}

TEST_F(ClusterClientTest, ACallbackThatThrowsFailsOnlyItsRequest) {
  StartNodes({64});
  decodes_[0]->hold = true;
  CreateReadyClient();
  std::mutex mu;
  std::vector<InferenceEvent> seen;
  EventCallback throwing = [&](InferenceEvent ev) {
    const bool final = ev.final();
    {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(std::move(ev));
    }
    if (!final) throw std::runtime_error("application bug");
  };
  ASSERT_TRUE(client_->Submit(Req(100, {1, 2}, 30), throwing).ok());  // D holds it after the first token
  for (int i = 0; i < 300; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!seen.empty() && seen.back().final()) break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(seen.size(), 2u);  // the first token (threw), then the final error
    EXPECT_EQ(seen[1].finish_reason, FinishReason::kError);
    EXPECT_EQ(seen[1].status.code(), StatusCode::kInternal);
    EXPECT_NE(seen[1].status.message().find("application bug"), std::string::npos) << seen[1].status.ToString();
  }
  decodes_[0]->hold = false;
  EventSink& other = Sink();
  ASSERT_TRUE(client_->Submit(Req(101, {3, 4}, 5), other.Callback()).ok());
  auto fin = other.WaitFinal();
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->finish_reason, FinishReason::kLength);  // the router lives on, and serves others
  EXPECT_TRUE(decodes_[0]->inbox.WaitFor(proto::Envelope::kAbort, ClusterClient::WireId(100), milliseconds(2000)));
}

}  // namespace
}  // namespace tandem
