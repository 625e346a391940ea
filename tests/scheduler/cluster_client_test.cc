// ClusterClient against in-test prefill/decode nodes that speak the protocol over TCP: readiness,
// the request path through prefill and decode, placement, refusals and the queue.
#include "scheduler/cluster_client.h"

#include <gtest/gtest.h>

#include "tests/scheduler/cluster_client_fixture.h"

namespace tandem {
namespace {

using namespace tandem::testing;
using std::chrono::milliseconds;

TEST_F(ClusterClientTest, ReadyOnlyWhenEveryNodeConnectedAndReported) {
  StartNodes({64});
  decodes_[0]->reporting = false;
  CreateClient(Options());
  EXPECT_FALSE(client_->Ready());
  const Status not_yet = client_->WaitReady(milliseconds(300));
  ASSERT_FALSE(not_yet.ok());
  EXPECT_EQ(not_yet.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(not_yet.message().find("decode-0"), std::string::npos) << not_yet.ToString();
  EXPECT_EQ(not_yet.message().find("prefill-0"), std::string::npos) << not_yet.ToString();
  // Not placeable either: Submit says so at once, with no events.
  EventSink& sink = Sink();
  const Status st = client_->Submit(Req(1, {1, 2, 3}, 4), sink.Callback());
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  decodes_[0]->reporting = true;
  ASSERT_TRUE(client_->WaitReady(milliseconds(3000)).ok());
  EXPECT_TRUE(client_->Ready());
  const LoadInfo load = client_->Load();
  EXPECT_EQ(load.num_total_kv_blocks, 64);
  ASSERT_EQ(load.nodes.size(), 2u);  // per node, prefill first, for GET /v1/load
  EXPECT_EQ(load.nodes[0].id, "prefill-0");
  EXPECT_EQ(load.nodes[0].role, NodeRole::kPrefill);
  EXPECT_EQ(load.nodes[1].id, "decode-0");
  EXPECT_EQ(load.nodes[1].role, NodeRole::kDecode);
  EXPECT_EQ(load.nodes[1].state, NodeState::kReady);
  EXPECT_EQ(load.nodes[1].load.total_blocks, 64u);
  EXPECT_GE(client_->MaxSequenceTokens(), 64);  // 64 blocks of at least one token
  EXPECT_EQ(sink.NumEvents(), 0u);
}

TEST_F(ClusterClientTest, NodeWithWrongIdIsRefusedAndNeverReady) {
  StartNodes({64});
  ClusterClientOptions o = Options();
  o.cluster.decode[0].id = "decode-7";  // the server at that address says decode-0
  CreateClient(std::move(o));
  EXPECT_FALSE(client_->WaitReady(milliseconds(500)).ok());
  bool found = false;
  for (const auto& n : client_->Nodes()) {
    if (n.id == "decode-7") {
      found = true;
      EXPECT_NE(n.state, NodeState::kReady);
      EXPECT_NE(n.last_error.find("expected 'decode-7'"), std::string::npos) << n.last_error;
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(ClusterClientTest, ServesARequestThroughPrefillWhichReservesOnDecode) {
  StartNodes({64});
  CreateReadyClient();
  const std::vector<int32_t> prompt = {5, 6, 7, 8, 9};
  EventSink& sink = Sink();
  ASSERT_TRUE(client_->Submit(Req(42, prompt, 6), sink.Callback()).ok());
  auto fin = sink.WaitFinal();
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->finish_reason, FinishReason::kLength);
  EXPECT_TRUE(fin->status.ok());
  EXPECT_EQ(sink.Tokens(), ExpectedTokens(prompt, 6));
  EXPECT_GE(sink.NumEvents(), 2u);  // the first token arrives on its own event

  // The router asked P only, naming D; P asked D, which reserved blocks for prompt + max_tokens.
  auto p_msgs = prefill_->inbox.All();
  ASSERT_EQ(prefill_->inbox.Count(proto::Envelope::kPrefillRequest), 1);
  proto::PrefillRequest to_p;
  for (const auto& m : p_msgs) {
    if (m.has_prefill_request()) to_p = m.prefill_request();
  }
  EXPECT_EQ(to_p.request_id(), ClusterClient::WireId(42));
  EXPECT_EQ(to_p.decode_node_id(), "decode-0");
  EXPECT_EQ(to_p.prompt_token_ids_size(), 5);
  EXPECT_TRUE(to_p.sampling().has_seed());  // P and D must sample with the same seed
  EXPECT_GT(to_p.deadline_unix_us(), to_p.arrival_unix_us());
  EXPECT_EQ(decodes_[0]->inbox.Count(proto::Envelope::kPrefillRequest), 0);
  auto d_msgs = decodes_[0]->inbox.All();
  ASSERT_FALSE(d_msgs.empty());
  ASSERT_TRUE(d_msgs[0].has_reserve_kv());
  EXPECT_EQ(d_msgs[0].reserve_kv().sampling().seed(), to_p.sampling().seed());
  EXPECT_EQ(prefill_->ReservedBlocks(ClusterClient::WireId(42)), 1);  // ceil((5 + 6) / 16)
  EXPECT_EQ(decodes_[0]->free_blocks(), 64u);                         // released on finish

  auto rec = Record(42);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->prefill_node, "prefill-0");
  EXPECT_EQ(rec->decode_node, "decode-0");
  EXPECT_EQ(rec->output_tokens, 6);
  EXPECT_EQ(rec->decode_attempts, 1);
  EXPECT_LE(rec->arrival_us, rec->placed_us);
  EXPECT_LE(rec->placed_us, rec->first_token_us);
  EXPECT_LE(rec->first_token_us, rec->finish_us);
  EXPECT_EQ(rec->token_us.size(), 6u);
  EXPECT_EQ(fin->record.token_us.size(), 6u);
  EXPECT_EQ(client_->Load().num_requests, 0);
}

TEST_F(ClusterClientTest, ChunksThatOvertakeTheFirstTokenAreHeldInOrder) {
  StartNodes({64});
  prefill_->kv_before_first = true;  // D's tokens reach the router ~100 ms before P's first token
  CreateReadyClient();
  EventSink& sink = Sink();
  const std::vector<int32_t> prompt = {1, 1, 2};
  ASSERT_TRUE(client_->Submit(Req(7, prompt, 5), sink.Callback()).ok());
  auto fin = sink.WaitFinal();
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->finish_reason, FinishReason::kLength);
  EXPECT_EQ(sink.Tokens(), ExpectedTokens(prompt, 5));
}

TEST_F(ClusterClientTest, RefusedReservationMovesToTheNextDecodeNode) {
  StartNodes({64, 32});
  decodes_[0]->refuse_all = true;  // has the most free blocks, so it is asked first
  CreateReadyClient();
  EventSink& sink = Sink();
  ASSERT_TRUE(client_->Submit(Req(3, {4, 4}, 3), sink.Callback()).ok());
  auto fin = sink.WaitFinal();
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->finish_reason, FinishReason::kLength) << fin->status.ToString();
  EXPECT_EQ(sink.Tokens(), ExpectedTokens({4, 4}, 3));
  EXPECT_EQ(decodes_[0]->inbox.Count(proto::Envelope::kReserveKv), 1);  // asked once, refused
  auto rec = Record(3);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->decode_node, "decode-1");
  EXPECT_EQ(rec->decode_attempts, 2);
}

TEST_F(ClusterClientTest, PlacementsAreChargedUntilTheNextLoadReport) {
  StartNodes({64, 64});
  decodes_[1]->reported_free_override = 63;
  CreateReadyClient();
  std::this_thread::sleep_for(milliseconds(60));  // decode-1's reported 63 has arrived
  decodes_[0]->reporting = false;
  decodes_[1]->reporting = false;
  std::this_thread::sleep_for(milliseconds(60));  // reports in flight have landed
  // 20 + 12 tokens = 2 blocks: decode-0 (64 free) takes the first and is charged down to 62,
  // so the second goes to decode-1 (63) although no report arrived in between. The decode nodes
  // hold both requests, so the first cannot finish (and give its charge back) before the second
  // is placed, however slowly this test runs.
  decodes_[0]->hold = true;
  decodes_[1]->hold = true;
  EventSink& a = Sink();
  EventSink& b = Sink();
  ASSERT_TRUE(client_->Submit(Req(61, std::vector<int32_t>(20, 1), 12), a.Callback()).ok());
  ASSERT_TRUE(client_->Submit(Req(62, std::vector<int32_t>(20, 1), 12), b.Callback()).ok());
  ASSERT_TRUE(a.WaitTokens(1));
  ASSERT_TRUE(b.WaitTokens(1));
  client_->Abort(61);
  client_->Abort(62);
  ASSERT_TRUE(a.WaitFinal().has_value());
  ASSERT_TRUE(b.WaitFinal().has_value());
  EXPECT_EQ(Record(61)->decode_node, "decode-0");
  EXPECT_EQ(Record(62)->decode_node, "decode-1");
}

TEST_F(ClusterClientTest, EveryDecodeNodeRefusingIsResourceExhausted) {
  StartNodes({64, 64});
  decodes_[0]->refuse_all = true;
  decodes_[1]->refuse_all = true;
  CreateReadyClient();
  EventSink& sink = Sink();
  ASSERT_TRUE(client_->Submit(Req(9, {1}, 3), sink.Callback()).ok());
  auto fin = sink.WaitFinal();
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->finish_reason, FinishReason::kError);
  EXPECT_EQ(fin->status.code(), StatusCode::kResourceExhausted) << fin->status.ToString();
  EXPECT_NE(fin->status.message().find("not enough free KV blocks"), std::string::npos);
  EXPECT_TRUE(sink.Tokens().empty());
  // P asked each decode node once (the router placed it twice) and sent no first token.
  EXPECT_EQ(decodes_[0]->inbox.Count(proto::Envelope::kReserveKv), 1);
  EXPECT_EQ(decodes_[1]->inbox.Count(proto::Envelope::kReserveKv), 1);
  EXPECT_EQ(prefill_->inbox.Count(proto::Envelope::kPrefillRequest), 2);
}

TEST_F(ClusterClientTest, RequestNoNodeCanHoldFailsSubmit) {
  StartNodes({4});
  CreateReadyClient();
  EventSink& sink = Sink();
  const Status st = client_->Submit(Req(1, std::vector<int32_t>(60, 1), 10), sink.Callback());  // 5 blocks
  EXPECT_EQ(st.code(), StatusCode::kOutOfRange) << st.ToString();  // never fits: 400, not "retry"
  EXPECT_NE(st.message().find("largest decode node holds (4)"), std::string::npos) << st.ToString();
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(sink.NumEvents(), 0u);
  EXPECT_EQ(prefill_->inbox.Count(proto::Envelope::kPrefillRequest), 0);
}

TEST_F(ClusterClientTest, DuplicateIdIsRejected) {
  StartNodes({64});
  decodes_[0]->hold = true;
  CreateReadyClient();
  EventSink& a = Sink();
  EventSink& b = Sink();
  ASSERT_TRUE(client_->Submit(Req(5, {1, 2}, 8), a.Callback()).ok());
  EXPECT_EQ(client_->Submit(Req(5, {1, 2}, 8), b.Callback()).code(), StatusCode::kAlreadyExists);
}

TEST_F(ClusterClientTest, FirstTokenThatFinishesReleasesTheDecodeReservation) {
  StartNodes({64});
  CreateReadyClient();
  EventSink& sink = Sink();
  const std::vector<int32_t> prompt = {9, 9};
  ASSERT_TRUE(client_->Submit(Req(2, prompt, 1), sink.Callback()).ok());
  auto fin = sink.WaitFinal();
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->finish_reason, FinishReason::kLength);
  EXPECT_EQ(fin->tokens, ExpectedTokens(prompt, 1));
  EXPECT_EQ(sink.NumEvents(), 1u);
  EXPECT_TRUE(decodes_[0]->inbox.WaitFor(proto::Envelope::kAbort, ClusterClient::WireId(2), milliseconds(2000)));
  for (int i = 0; i < 100 && decodes_[0]->free_blocks() != 64u; ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(decodes_[0]->free_blocks(), 64u);
}

TEST_F(ClusterClientTest, PrefillNodesAreToldWhereTheDecodeNodesAre) {
  StartNodes({64, 32});
  CreateReadyClient();
  ASSERT_TRUE(prefill_->inbox.WaitFor(proto::Envelope::kClusterView, "", milliseconds(2000)));
  for (const auto& m : prefill_->inbox.All()) {
    if (!m.has_cluster_view()) continue;
    ASSERT_EQ(m.cluster_view().decode_nodes_size(), 2);
    EXPECT_EQ(m.cluster_view().decode_nodes(0).node_id(), "decode-0");
    EXPECT_EQ(m.cluster_view().decode_nodes(0).port(), decodes_[0]->address().port);
    EXPECT_EQ(m.cluster_view().decode_nodes(1).node_id(), "decode-1");
  }
}

TEST_F(ClusterClientTest, OnlyPairsThePrefillNodeReachesArePlaced) {
  StartNodes({64, 32});
  prefill_->SetConnected({"decode-1"});  // decode-0 has more room, but P's KV cannot reach it
  CreateClient(Options());
  EXPECT_FALSE(client_->WaitReady(milliseconds(500)).ok());  // not ready: a pair is missing
  const Status why = client_->WaitReady(milliseconds(1));
  EXPECT_NE(why.message().find("prefill-0 does not reach decode node decode-0"), std::string::npos) << why.ToString();
  for (int64_t id = 70; id < 73; ++id) {
    EventSink& sink = Sink();
    ASSERT_TRUE(client_->Submit(Req(id, {1, 2, 3}, 3), sink.Callback()).ok());
    auto fin = sink.WaitFinal();
    ASSERT_TRUE(fin.has_value());
    EXPECT_EQ(fin->finish_reason, FinishReason::kLength) << fin->status.ToString();
    EXPECT_EQ(Record(id)->decode_node, "decode-1");
  }
  EXPECT_EQ(decodes_[0]->inbox.Count(proto::Envelope::kReserveKv), 0);
  prefill_->SetConnected({});  // reaches nothing: refused at once (503), not queued
  Status refused;
  for (int64_t id = 80; id < 280 && refused.ok(); ++id) {  // until a report says so (every 20 ms)
    EventSink& none = Sink();
    refused = client_->Submit(Req(id, {1}, 3), none.Callback());
    if (refused.ok()) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
}

TEST_F(ClusterClientTest, RequestsQueueWhileNoDecodeNodeHasRoomAndRunWhenItFrees) {
  StartNodes({4});  // 4 blocks of 16 tokens
  decodes_[0]->hold = true;
  CreateReadyClient();
  EventSink& first = Sink();
  ASSERT_TRUE(client_->Submit(Req(110, std::vector<int32_t>(30, 1), 30), first.Callback()).ok());  // 4 blocks
  ASSERT_TRUE(first.WaitTokens(1));
  EventSink& second = Sink();
  ASSERT_TRUE(client_->Submit(Req(111, {2, 2}, 4), second.Callback()).ok());  // no room now: queued
  std::this_thread::sleep_for(milliseconds(150));
  EXPECT_EQ(client_->Load().num_queued, 1);
  EXPECT_EQ(prefill_->inbox.Count(proto::Envelope::kPrefillRequest), 1);  // held back at the router
  decodes_[0]->hold = false;
  client_->Abort(110);  // frees D; its next report lets the queued request through
  auto fin = second.WaitFinal();
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->finish_reason, FinishReason::kLength) << fin->status.ToString();
  EXPECT_EQ(second.Tokens(), ExpectedTokens({2, 2}, 4));
  auto rec = Record(111);
  ASSERT_TRUE(rec.has_value());
  EXPECT_GT(rec->placed_us, rec->queued_us);  // it waited in the router's queue
  EXPECT_EQ(client_->Load().num_queued, 0);
}

TEST_F(ClusterClientTest, AFullQueueIsResourceExhausted) {
  StartNodes({4});
  decodes_[0]->hold = true;
  ClusterClientOptions o = Options();
  o.max_queued = 0;
  CreateClient(std::move(o));
  ASSERT_TRUE(client_->WaitReady(milliseconds(5000)).ok());
  EventSink& first = Sink();
  ASSERT_TRUE(client_->Submit(Req(120, std::vector<int32_t>(30, 1), 30), first.Callback()).ok());
  ASSERT_TRUE(first.WaitTokens(1));
  EventSink& second = Sink();
  const Status st = client_->Submit(Req(121, {2, 2}, 4), second.Callback());
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();  // 429 at the front end
  EXPECT_NE(st.message().find("queue is full"), std::string::npos) << st.ToString();
}

TEST_F(ClusterClientTest, AQueuedRequestTimesOutWithItsDeadline) {
  StartNodes({4});
  decodes_[0]->hold = true;
  ClusterClientOptions o = Options();
  o.first_token_timeout = milliseconds(300);
  o.inter_token_timeout = milliseconds(0);
  CreateClient(std::move(o));
  ASSERT_TRUE(client_->WaitReady(milliseconds(5000)).ok());
  EventSink& first = Sink();
  ASSERT_TRUE(client_->Submit(Req(130, std::vector<int32_t>(30, 1), 30), first.Callback()).ok());
  ASSERT_TRUE(first.WaitTokens(1));
  EventSink& second = Sink();
  ASSERT_TRUE(client_->Submit(Req(131, {2, 2}, 4), second.Callback()).ok());
  auto fin = second.WaitFinal(milliseconds(3000));
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(fin->status.message().find("waiting for a placement"), std::string::npos) << fin->status.ToString();
  EXPECT_EQ(prefill_->inbox.Count(proto::Envelope::kPrefillRequest), 1);  // never sent anywhere
}

}  // namespace
}  // namespace tandem
