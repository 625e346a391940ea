// PrefillEngine + DecodeEngine over the LoopbackTransport, the paths that do not end in tokens:
// reservations refused when the decode pool is full, aborts, deadlines and timeouts, lost peers
// and failed steps. Every block is freed on every one of them.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/nodes/node_engines_fixture.h"

namespace tandem {
namespace {

using testing::FivePrompts;
using testing::ReferenceOutputs;
using testing::TestPrompt;
using testing::TinyModelDir;

TEST_F(NodeEnginesTest, ReservationRefusedWhenFullAndNothingTaken) {
  decode_kv_ = KvAllocation::kReserve;
  Build(16, 8, 2048);
  TestPrompt p;
  p.prompt.assign(40, 5);
  p.params.temperature = 0;
  p.params.max_tokens = 40;  // 80 tokens = 5 blocks
  auto first = decode_->Reserve({"a", p.prompt, p.params, 0});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->size(), 5u);
  auto second = decode_->Reserve({"b", p.prompt, p.params, 0});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(decode_->free_blocks(), 3);
  EXPECT_EQ(decode_->Reserve({"a", p.prompt, p.params, 0}).status().code(), StatusCode::kAlreadyExists);
  decode_->OnPeerAborted("a");
  EXPECT_EQ(decode_->free_blocks(), 8);
  EXPECT_TRUE(decode_->Reserve({"b", p.prompt, p.params, 0}).ok());
}

TEST_F(NodeEnginesTest, FirstTokenFinishReleasesTheReservation) {
  Build(16, 32, 2048);
  TestPrompt p = FivePrompts(true)[1];
  p.params.max_tokens = 1;
  ASSERT_TRUE(Submit("one", p).ok());
  RunUntilIdle();
  EXPECT_EQ(outputs_["one"].size(), 1u);
  EXPECT_EQ(done_["one"], FinishReason::kLength);
  ExpectAllFree();
}

TEST_F(NodeEnginesTest, AbortWhileQueuedFreesBothSides) {
  // A 24-token budget (the 40-token prompt takes two steps) and a 48-token lookahead: after its
  // first chunk it has asked D, which reserved; then it is aborted before its last chunk.
  Build(16, 32, 24, std::chrono::milliseconds(5000), /*lookahead=*/48);
  ASSERT_TRUE(Submit("q", FivePrompts(true)[2]).ok());
  ASSERT_TRUE(StepOnce());
  EXPECT_EQ(reserves_["q"], 1);
  EXPECT_EQ(decode_->num_awaiting(), 1);
  std::vector<PrefillEvent> pe;
  prefill_->Abort("q", &pe);
  ASSERT_EQ(pe.size(), 1u);
  EXPECT_EQ(pe[0].kind, PrefillEventKind::kAbortDecode);
  decode_->Abort("q");  // the router's Abort: drains until P's Abort
  decode_->OnPeerAborted("q");
  EXPECT_EQ(decode_->num_awaiting(), 0);
  ExpectAllFree();
}

TEST_F(NodeEnginesTest, AQueuedRequestHoldsNoDecodeMemory) {
  // A budget of 24 tokens and a 70-token prompt ahead: neither request's last chunk is in the
  // step about to run, so neither has asked the decode node for anything yet.
  Build(32, 32, 24);
  ASSERT_TRUE(Submit("long", FivePrompts(true)[4]).ok());  // 70 tokens
  ASSERT_TRUE(Submit("next", FivePrompts(true)[1]).ok());  // 17 tokens
  std::vector<PrefillEvent> pe;
  prefill_->Step(&pe);
  Route(pe);
  EXPECT_EQ(reserves_["long"], 0);  // 70 > 24: not yet
  EXPECT_EQ(reserves_["next"], 0);
  EXPECT_EQ(d_cache_->pool().num_free(), d_cache_->num_blocks());
  RunUntilIdle();
  EXPECT_EQ(reserves_["long"], 1);
  EXPECT_EQ(reserves_["next"], 1);
  EXPECT_EQ(outputs_["long"], ReferenceOutputs(TinyModelDir(), {FivePrompts(true)[4]})[0]);
  EXPECT_TRUE(errors_.empty());
  ExpectAllFree();
}

TEST_F(NodeEnginesTest, ARefusedReservationSendsTheRequestBackToTheRouter) {
  Build(16, 4, 2048);  // the decode pool holds 4 blocks: 40 + 40 tokens need 5
  TestPrompt p = FivePrompts(true)[2];
  p.params.max_tokens = 40;
  ASSERT_TRUE(Submit("big", p).ok());
  StepOnce();  // computed while D was asked; D refuses: the first token was never sent
  ASSERT_EQ(refused_.count("big"), 1u);
  EXPECT_NE(refused_["big"].find("KV blocks"), std::string::npos) << refused_["big"];
  EXPECT_FALSE(prefill_->HasWork());  // it left this node: the router places it again
  EXPECT_TRUE(outputs_.empty());
  ExpectAllFree();
}

// The prompt is computed while the decode node is still being asked (the round trip is off the
// TTFT), but its first token goes out only with the reservation: had D refused, nothing would
// have been streamed for a request the router must place again.
TEST_F(NodeEnginesTest, TheFirstTokenIsComputedAtOnceAndSentWithTheReservation) {
  Build(16, 32, 2048);
  ASSERT_TRUE(Submit("r", FivePrompts(true)[1]).ok());
  std::vector<PrefillEvent> pe;
  ASSERT_TRUE(prefill_->Step(&pe));  // asks D and computes the prompt in the same round
  ASSERT_EQ(pe.size(), 1u);
  EXPECT_EQ(pe[0].kind, PrefillEventKind::kReserve);  // no first token yet
  auto blocks = decode_->Reserve(DecodeJob{"r", pe[0].prompt, pe[0].params, 0});
  ASSERT_TRUE(blocks.ok());
  std::vector<PrefillEvent> after;
  prefill_->PostReservation("decode-0", "r", true, *blocks, "");  // as the io thread does
  prefill_->DrainReservations(&after);
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after[0].kind, PrefillEventKind::kFirstToken);
  Route(after);
  RunUntilIdle();
  EXPECT_EQ(outputs_["r"], ReferenceOutputs(TinyModelDir(), {FivePrompts(true)[1]})[0]);
  ExpectAllFree();
}

// A request computed while its reservation was on its way, then the decode node goes away (or
// never answers): the router hears an error; it is not dropped silently with its first token.
TEST_F(NodeEnginesTest, ADecodeNodeLostBeforeItAnsweredFailsTheComputedRequest) {
  Build(16, 32, 2048);
  ASSERT_TRUE(Submit("w", FivePrompts(true)[1]).ok());
  std::vector<PrefillEvent> pe;
  ASSERT_TRUE(prefill_->Step(&pe));  // computed; the kReserve is never delivered
  pe.clear();
  prefill_->RemoveDecodePeer("decode-0", &pe);
  prefill_->Poll(&pe);
  bool error = false, first = false;
  for (const auto& e : pe) {
    error |= e.kind == PrefillEventKind::kError && e.request_id == "w";
    first |= e.kind == PrefillEventKind::kFirstToken;
  }
  EXPECT_TRUE(error);
  EXPECT_FALSE(first);
  EXPECT_FALSE(prefill_->HasWork());
  EXPECT_EQ(p_cache_->pool().num_free(), p_cache_->num_blocks());
}

TEST_F(NodeEnginesTest, AReservationThatNeverComesTimesOutWithAnError) {
  Build(16, 32, 2048, std::chrono::milliseconds(50));
  ASSERT_TRUE(Submit("n", FivePrompts(true)[1]).ok());
  std::vector<PrefillEvent> pe;
  ASSERT_TRUE(prefill_->Step(&pe));  // the kReserve is never delivered
  pe.clear();
  for (int i = 0; i < 100 && prefill_->HasWork(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    prefill_->Poll(&pe);
  }
  ASSERT_EQ(pe.size(), 2u);  // an Abort for the reservation asked for, and the error
  EXPECT_EQ(pe[0].kind, PrefillEventKind::kAbortDecode);
  EXPECT_EQ(pe[1].kind, PrefillEventKind::kError);
  EXPECT_EQ(pe[1].error.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(p_cache_->pool().num_free(), p_cache_->num_blocks());
}

TEST_F(NodeEnginesTest, AnExpiredDeadlineFailsAQueuedRequestWithoutReserving) {
  Build(16, 32, 2048);
  PrefillJob pj;
  pj.id = "late";
  pj.prompt = FivePrompts(true)[1].prompt;
  pj.params = FivePrompts(true)[1].params;
  pj.decode_node = "decode-0";
  pj.deadline_us = SteadyClock::Read() - 1;
  ASSERT_TRUE(prefill_->Add(pj).ok());
  std::vector<PrefillEvent> pe;
  EXPECT_FALSE(prefill_->Step(&pe));
  Route(pe);
  ASSERT_EQ(errors_.count("late"), 1u);
  EXPECT_EQ(errors_["late"].code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(reserves_["late"], 0);
  EXPECT_FALSE(prefill_->HasWork());
  ExpectAllFree();
}

TEST_F(NodeEnginesTest, AbortMidTransferDrainsThenFrees) {
  Build(16, 32, 2048);
  ASSERT_TRUE(Submit("t", FivePrompts(true)[4]).ok());
  p_transport_->HoldCompletions(true);  // PUTs stay in flight
  ASSERT_TRUE(StepOnce());              // computed; D's reservation came; the PUTs are posted
  std::vector<PrefillEvent> pe;
  ASSERT_EQ(prefill_->num_transferring(), 1);
  EXPECT_LT(p_cache_->pool().num_free(), p_cache_->num_blocks());  // held during the transfer
  prefill_->Abort("t", &pe);
  decode_->Abort("t");
  p_transport_->HoldCompletions(false);
  RunUntilIdle();
  for (int i = 0; i < 50 && (prefill_->HasWork() || decode_->num_awaiting() > 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    Pump();
  }
  EXPECT_EQ(prefill_->num_transferring(), 0);
  EXPECT_EQ(decode_->num_awaiting(), 0);
  ExpectAllFree();
}

TEST_F(NodeEnginesTest, AbortWhileDecodingFreesBlocks) {
  Build(16, 32, 2048);
  StartDecoding("d", 4);
  EXPECT_FALSE(done_.count("d"));
  decode_->Abort("d");
  decode_->Abort("d");  // idempotent
  EXPECT_FALSE(decode_->HasWork());
  ExpectAllFree();
}

TEST_F(NodeEnginesTest, KvThatNeverArrivesTimesOutAndFrees) {
  Build(16, 32, 2048, std::chrono::milliseconds(50));
  TestPrompt p = FivePrompts(true)[1];
  ASSERT_TRUE(decode_->Reserve({"late", p.prompt, p.params, 0}).ok());
  EXPECT_LT(decode_->free_blocks(), 32);
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  std::vector<DecodeEvent> events;
  decode_->Poll(&events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, DecodeEventKind::kError);
  EXPECT_EQ(events[0].error.code(), StatusCode::kDeadlineExceeded);
  // The blocks wait out the drain (a late PUT could still land), then return.
  for (int i = 0; i < 100 && decode_->num_awaiting() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    decode_->Poll(&events);
  }
  EXPECT_EQ(events.size(), 1u);
  EXPECT_EQ(decode_->free_blocks(), 32);
  EXPECT_EQ(decode_->OnKvReady("late", 5, &events).code(), StatusCode::kNotFound);
}

TEST_F(NodeEnginesTest, DecodeNodeLostEndsTransfersWithError) {
  Build(16, 32, 2048);
  ASSERT_TRUE(Submit("x", FivePrompts(true)[3]).ok());
  p_transport_->HoldCompletions(true);
  ASSERT_TRUE(StepOnce());
  std::vector<PrefillEvent> pe;
  prefill_->RemoveDecodePeer("decode-0", &pe);
  p_transport_->HoldCompletions(false);
  for (int i = 0; i < 100 && prefill_->HasWork(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    prefill_->Poll(&pe);
  }
  bool error = false;
  for (const auto& e : pe) error |= e.kind == PrefillEventKind::kError && e.request_id == "x";
  EXPECT_TRUE(error);
  EXPECT_FALSE(prefill_->HasWork());
  EXPECT_EQ(p_cache_->pool().num_free(), p_cache_->num_blocks());
  // A new request for the lost node is refused, not queued, as a pair to place elsewhere.
  const Status refused = Submit("y", FivePrompts(true)[3]);
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_EQ(refused.reason(), kDecodeUnreachable);
}

// A prefill step that fails (a device fault mid-forward) fails exactly the requests in it: an
// error for each, the decode node's reservation released, every block back; then the node goes
// on serving. Before the engine core, the step's error was logged and the same step retried
// forever (the node loop never slept while the queue was non-empty).
TEST_F(NodeEnginesTest, AFailedPrefillStepFailsItsRequestsAndTheNodeServesOn) {
  Build(16, 32, 2048);
  ASSERT_TRUE(Submit("a", FivePrompts(true)[1]).ok());
  ASSERT_TRUE(Submit("b", FivePrompts(true)[3]).ok());
  fail_->store(true);
  Pump();  // asks D for both, then the forward pass fails: D's reservations are given back
  fail_->store(false);
  for (const char* id : {"a", "b"}) {
    ASSERT_EQ(errors_.count(id), 1u) << id;
    EXPECT_EQ(errors_[id].code(), StatusCode::kInternal);
    EXPECT_NE(errors_[id].message().find("injected device fault"), std::string::npos) << errors_[id].ToString();
  }
  EXPECT_TRUE(outputs_.empty());
  RunUntilIdle();
  EXPECT_FALSE(prefill_->HasWork());  // nothing left to retry
  EXPECT_EQ(decode_->num_awaiting(), 0);
  ExpectAllFree();
  errors_.clear();
  ASSERT_TRUE(Submit("c", FivePrompts(true)[1]).ok());
  RunUntilIdle();
  EXPECT_EQ(outputs_["c"], ReferenceOutputs(TinyModelDir(), {FivePrompts(true)[1]})[0]);
  EXPECT_TRUE(errors_.empty());
  ExpectAllFree();
}

TEST_F(NodeEnginesTest, AFailedDecodeStepFailsItsRequestsAndTheNodeServesOn) {
  Build(16, 32, 2048);
  StartDecoding("d", 3);
  fail_->store(true);
  std::vector<DecodeEvent> events;
  decode_->Step(&events);
  fail_->store(false);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, DecodeEventKind::kError);
  EXPECT_EQ(events[0].request_id, "d");
  EXPECT_EQ(events[0].error.code(), StatusCode::kInternal);
  EXPECT_FALSE(decode_->HasWork());
  ExpectAllFree();
  ASSERT_TRUE(Submit("e", FivePrompts(true)[3]).ok());
  RunUntilIdle();
  EXPECT_EQ(outputs_["e"], ReferenceOutputs(TinyModelDir(), {FivePrompts(true)[3]})[0]);
  ExpectAllFree();
}

}  // namespace
}  // namespace tandem
