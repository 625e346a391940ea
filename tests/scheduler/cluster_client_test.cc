// ClusterClient against in-test prefill/decode nodes that speak the protocol over TCP.
#include "scheduler/cluster_client.h"

#include <gtest/gtest.h>

#include "tests/scheduler/cluster_test_nodes.h"

namespace tandem {
namespace {

using namespace tandem::testing;
using std::chrono::milliseconds;

class EventSink {
 public:
  EventCallback Callback() {
    return [this](InferenceEvent ev) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(std::move(ev));
      cv_.notify_all();
    };
  }
  // The final event, or nullopt after `timeout`.
  std::optional<InferenceEvent> WaitFinal(milliseconds timeout = milliseconds(5000)) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty() && events_.back().final(); })) return std::nullopt;
    return events_.back();
  }
  bool WaitTokens(size_t n, milliseconds timeout = milliseconds(5000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return TokensLocked().size() >= n; });
  }
  std::vector<int32_t> Tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    return TokensLocked();
  }
  size_t NumEvents() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.size();
  }

 private:
  std::vector<int32_t> TokensLocked() {
    std::vector<int32_t> out;
    for (const auto& e : events_) out.insert(out.end(), e.tokens.begin(), e.tokens.end());
    return out;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<InferenceEvent> events_;
};

class ClusterClientTest : public ::testing::Test {
 protected:
  // `num_decode` decode nodes with `blocks[i]` blocks each, one prefill node.
  void StartNodes(std::vector<uint32_t> blocks) {
    for (size_t i = 0; i < blocks.size(); ++i) {
      decodes_.push_back(std::make_unique<FakeDecode>(proto::ROLE_DECODE, "decode-" + std::to_string(i), blocks[i]));
      decodes_.back()->Start();
    }
    std::vector<FakeDecode*> ds;
    for (auto& d : decodes_) ds.push_back(d.get());
    prefill_ = std::make_unique<FakePrefill>("prefill-0", ds);
    prefill_->Start();
  }

  ClusterClientOptions Options() {
    ClusterClientOptions o;
    o.cluster.prefill.push_back(prefill_->address());
    for (auto& d : decodes_) o.cluster.decode.push_back(d->address());
    o.connection = FastConnection();
    o.backoff.initial = milliseconds(10);
    o.backoff.max = milliseconds(100);
    o.on_finished = [this](const RequestRecord& r) {
      std::lock_guard<std::mutex> lock(records_mu_);
      records_[r.id] = r;
    };
    return o;
  }

  void CreateClient(ClusterClientOptions o) {
    auto c = ClusterClient::Create(std::move(o), std::make_unique<LeastLoadedPolicy>());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(*c);
  }

  void CreateReadyClient() {
    CreateClient(Options());
    ASSERT_TRUE(client_->WaitReady(milliseconds(5000)).ok());
  }

  static ServingRequest Req(int64_t id, std::vector<int32_t> prompt, int max_tokens) {
    ServingRequest r;
    r.id = id;
    r.prompt = std::move(prompt);
    r.params.temperature = 0;
    r.params.max_tokens = max_tokens;
    r.arrival_us = NowMicros();
    return r;
  }

  std::optional<RequestRecord> Record(int64_t id) {
    for (int i = 0; i < 100; ++i) {  // on_finished runs right after the final callback
      {
        std::lock_guard<std::mutex> lock(records_mu_);
        auto it = records_.find(id);
        if (it != records_.end()) return it->second;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    return std::nullopt;
  }

  // Sinks live in the fixture: the client's destructor delivers final events to them.
  EventSink& Sink() {
    sinks_.push_back(std::make_unique<EventSink>());
    return *sinks_.back();
  }

  // Declared in this order so the client (which talks to the nodes and the sinks) goes first.
  std::vector<std::unique_ptr<EventSink>> sinks_;
  std::vector<std::unique_ptr<FakeDecode>> decodes_;
  std::unique_ptr<FakePrefill> prefill_;
  std::mutex records_mu_;
  std::map<int64_t, RequestRecord> records_;
  std::unique_ptr<ClusterClient> client_;
};

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
  EXPECT_EQ(load.nodes[0].role, "prefill");
  EXPECT_EQ(load.nodes[1].id, "decode-0");
  EXPECT_EQ(load.nodes[1].role, "decode");
  EXPECT_EQ(load.nodes[1].state, "ready");
  EXPECT_EQ(load.nodes[1].total_kv_blocks, 64u);
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
  for (const auto& n : client_->Snapshot()) {
    if (n.id == "decode-7") {
      found = true;
      EXPECT_NE(n.state, ClusterClient::NodeState::kReady);
      EXPECT_NE(n.last_error.find("expected 'decode-7'"), std::string::npos) << n.last_error;
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(ClusterClientTest, ServesARequestThroughDecodeThenPrefill) {
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

  // D was asked first, then P with exactly the blocks D reserved.
  auto d_msgs = decodes_[0]->inbox.All();
  ASSERT_FALSE(d_msgs.empty());
  const proto::PrefillRequest& to_d = d_msgs[0].prefill_request();
  EXPECT_EQ(to_d.request_id(), ClusterClient::WireId(42));
  EXPECT_EQ(to_d.decode_node_id(), "decode-0");
  EXPECT_EQ(to_d.prompt_token_ids_size(), 5);
  EXPECT_TRUE(to_d.sampling().has_seed());  // P and D must sample with the same seed
  auto p_msgs = prefill_->inbox.All();
  ASSERT_EQ(p_msgs.size(), 1u);
  const proto::PrefillRequest& to_p = p_msgs[0].prefill_request();
  EXPECT_EQ(to_p.decode_node_id(), "decode-0");
  EXPECT_EQ(to_p.decode_block_ids_size(), 1);  // ceil((5 + 6) / 16)
  EXPECT_EQ(to_p.sampling().seed(), to_d.sampling().seed());
  EXPECT_EQ(decodes_[0]->free_blocks(), 64u);  // released on finish

  auto rec = Record(42);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->prefill_node_id, "prefill-0");
  EXPECT_EQ(rec->decode_node_id, "decode-0");
  EXPECT_EQ(rec->output_tokens, 6);
  EXPECT_EQ(rec->decode_attempts, 1);
  const RequestTimeline& t = rec->timeline;
  EXPECT_LE(t.arrival_us, t.scheduled_us);
  EXPECT_LE(t.scheduled_us, t.first_token_us);
  EXPECT_LE(t.first_token_us, t.finish_us);
  EXPECT_EQ(t.token_us.size(), 6u);
  EXPECT_EQ(fin->timeline.token_us.size(), 6u);
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
  EXPECT_EQ(decodes_[0]->inbox.Count(proto::Envelope::kPrefillRequest), 1);
  auto rec = Record(3);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->decode_node_id, "decode-1");
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
  // so the second goes to decode-1 (63) although no report arrived in between.
  EventSink& a = Sink();
  EventSink& b = Sink();
  ASSERT_TRUE(client_->Submit(Req(61, std::vector<int32_t>(20, 1), 12), a.Callback()).ok());
  ASSERT_TRUE(client_->Submit(Req(62, std::vector<int32_t>(20, 1), 12), b.Callback()).ok());
  ASSERT_TRUE(a.WaitFinal().has_value());
  ASSERT_TRUE(b.WaitFinal().has_value());
  EXPECT_EQ(Record(61)->decode_node_id, "decode-0");
  EXPECT_EQ(Record(62)->decode_node_id, "decode-1");
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
  EXPECT_EQ(prefill_->inbox.Count(proto::Envelope::kPrefillRequest), 0);
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
  EXPECT_EQ(decodes_[0]->inbox.Count(proto::Envelope::kPrefillRequest), 0);
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
  EXPECT_EQ(rec->decode_node_id, "decode-1");
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

}  // namespace
}  // namespace tandem
