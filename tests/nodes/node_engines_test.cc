// PrefillEngine + DecodeEngine in one process over the LoopbackTransport: the disaggregated
// hand-off reproduces single-process output token for token, refuses instead of crashing when
// the decode pool is full, and frees every block on every abort and timeout path.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "decode_node/decode_engine.h"
#include "kv_transfer/loopback_transport.h"
#include "prefill_node/prefill_engine.h"
#include "tests/kernels/fault_injecting_backend.h"
#include "tests/nodes/nodes_test_util.h"

namespace tandem {
namespace {

using testing::FivePrompts;
using testing::ReferenceOutputs;
using testing::TestPrompt;
using testing::TinyModelDir;

constexpr PeerId kDecodePeer = 1;

// One prefill engine and one decode engine, each with its own pool allocated by its loopback
// transport (as the nodes do with UCX), sharing the model.
class NodeEnginesTest : public ::testing::Test {
 protected:
  void Build(int32_t prefill_blocks, int32_t decode_blocks, int32_t budget,
             std::chrono::milliseconds transfer_timeout = std::chrono::milliseconds(5000), int32_t lookahead = 0) {
    ASSERT_FALSE(TinyModelDir().empty());
    backend_ = std::make_unique<testing::FaultInjectingBackend>(std::move(CreateBackend("cpu")).value(), fail_);
    auto w = LoadModelWeights(TinyModelDir(), *backend_);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    weights_ = std::move(w).value();
    transformer_ = std::move(Transformer::Create(*backend_, *weights_)).value();
    fabric_ = std::make_shared<LoopbackFabric>();
    p_transport_ = std::make_unique<LoopbackTransport>(fabric_);
    d_transport_ = std::make_unique<LoopbackTransport>(fabric_);
    p_cache_ = MakeCache(*p_transport_, prefill_blocks);
    d_cache_ = MakeCache(*d_transport_, decode_blocks);
    ASSERT_TRUE(p_cache_ && d_cache_);
    auto ep = d_transport_->LocalEndpoint();
    ASSERT_TRUE(ep.ok());
    ASSERT_TRUE(p_transport_->Connect(kDecodePeer, *ep).ok());
    PrefillEngineOptions po;
    po.max_num_batched_tokens = budget;
    po.reserve_lookahead_tokens = lookahead;
    po.session.transfer_timeout = transfer_timeout;
    po.session.drain_timeout = std::chrono::milliseconds(100);
    po.enable_prefix_caching = caching_;
    prefill_ = std::make_unique<PrefillEngine>(*transformer_, *p_cache_, *p_transport_, po);
    prefill_->SetDecodePeer("decode-0", kDecodePeer, decode_blocks);
    DecodeEngineOptions dopt;
    dopt.max_num_seqs = 4;
    dopt.kv_allocation = decode_kv_;
    dopt.session.transfer_timeout = transfer_timeout;
    dopt.session.drain_timeout = std::chrono::milliseconds(100);
    dopt.enable_prefix_caching = caching_;
    decode_ = std::make_unique<DecodeEngine>(*transformer_, *d_cache_, dopt);
    ASSERT_EQ(prefill_->layout().compatibility_hash(), decode_->layout().compatibility_hash());
  }

  std::unique_ptr<KvCache> MakeCache(Transport& t, int32_t blocks) {
    const ModelConfig& c = weights_->config;
    const DType dtype = backend_->kv_cache_dtype();
    const size_t bytes = 2ull * c.num_layers * c.num_kv_heads * 16 * c.head_dim * DTypeSize(dtype) * blocks;
    auto region = t.AllocateMemory(bytes, MemoryKind::kHost);
    EXPECT_TRUE(region.ok());
    KvCacheOptions kv;
    kv.num_blocks = blocks;
    auto cache = KvCache::CreateOver(region->base, bytes, dtype, c, kv);
    EXPECT_TRUE(cache.ok()) << cache.status().ToString();
    return cache.ok() ? std::move(cache).value() : nullptr;
  }

  // The router's part: queue on P, naming D (P reserves on D itself, shortly before its last chunk).
  Status Submit(const std::string& id, const TestPrompt& p) {
    PrefillJob pj;
    pj.id = id;
    pj.prompt = p.prompt;
    pj.params = p.params;
    if (!pj.params.greedy() && !pj.params.seed) pj.params.seed = 17;  // the router draws one
    pj.decode_node = "decode-0";
    pj.router_id = "router";
    return prefill_->Add(pj);
  }

  // One iteration of both node loops, routing events as the services do.
  void Pump() {
    std::vector<PrefillEvent> pe;
    prefill_->Step(&pe);
    prefill_->Poll(&pe);
    Route(pe);
    decode_->Poll(&de_);
    decode_->Step(&de_);
    CollectDecodeEvents();
  }

  // Delivers P's events as the services would (D's answers to reservations come back at once).
  void Route(std::vector<PrefillEvent>& pe) {
    d_transport_->Progress();
    for (size_t i = 0; i < pe.size(); ++i) {
      PrefillEvent e = pe[i];
      switch (e.kind) {
        case PrefillEventKind::kReserve: {
          ++reserves_[e.request_id];
          int32_t cached = 0;
          auto blocks = decode_->Reserve(DecodeJob{e.request_id, e.prompt, e.params, 0}, &cached);
          cached_blocks_[e.request_id] = cached;
          prefill_->OnReservation("decode-0", e.request_id, blocks.ok(), blocks.ok() ? *blocks : std::vector<int>{},
                                  blocks.ok() ? "" : blocks.status().ToString(), &pe, cached);
          break;
        }
        case PrefillEventKind::kRefused:
          refused_[e.request_id] = e.reason;
          break;
        case PrefillEventKind::kFirstToken:
          outputs_[e.request_id].push_back(e.token);
          if (e.finished) done_[e.request_id] = e.finish_reason;
          break;
        case PrefillEventKind::kKvReady:
          kv_bytes_[e.request_id] = e.bytes;
          ASSERT_TRUE(decode_->OnKvReady(e.request_id, e.token, &de_).ok());
          break;
        case PrefillEventKind::kAbortDecode:
          decode_->OnPeerAborted(e.request_id);
          break;
        case PrefillEventKind::kError:
          errors_[e.request_id] = e.error;
          break;
      }
    }
    pe.clear();
  }

  void CollectDecodeEvents() {
    for (DecodeEvent& e : de_) {
      if (e.kind == DecodeEventKind::kError) {
        errors_[e.request_id] = e.error;
        continue;
      }
      for (int32_t t : e.tokens) outputs_[e.request_id].push_back(t);
      if (e.finished) done_[e.request_id] = e.finish_reason;
      if (e.finished) preemptions_ += e.preemptions;
    }
    de_.clear();
  }

  // One prefill round (it asks for the reservations its lookahead covers), with D's answers
  // routed back. Whether a forward pass ran.
  bool StepOnce() {
    std::vector<PrefillEvent> pe;
    const bool ran = prefill_->Step(&pe);
    Route(pe);
    return ran;
  }

  // A 50-token request, pumped until `tokens` of its tokens came out (it is decoding on D).
  void StartDecoding(const std::string& id, size_t tokens) {
    TestPrompt p = FivePrompts(true)[0];
    p.params.max_tokens = 50;
    p.params.ignore_eos = true;
    ASSERT_TRUE(Submit(id, p).ok());
    for (int i = 0; i < 200 && outputs_[id].size() < tokens; ++i) Pump();
    ASSERT_GE(outputs_[id].size(), tokens);
  }

  void RunUntilIdle(int max_iterations = 2000) {
    for (int i = 0; i < max_iterations && (prefill_->HasWork() || decode_->HasWork() || decode_->num_awaiting() > 0);
         ++i) {
      Pump();
      if (::testing::Test::HasFatalFailure()) return;
    }
  }

  void ExpectAllFree() {
    EXPECT_EQ(p_cache_->pool().num_free(), p_cache_->num_blocks());
    EXPECT_EQ(d_cache_->pool().num_free(), d_cache_->num_blocks());
  }

  // Runs `prompts` through both nodes (call Build first): every request ends normally with the
  // single-process engine's tokens, and every block is free again.
  void ExpectSingleProcessTokens(const std::vector<TestPrompt>& prompts) {
    const auto expected = ReferenceOutputs(TinyModelDir(), prompts);
    for (size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(Submit("r" + std::to_string(i), prompts[i]).ok());
    RunUntilIdle();
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::string id = "r" + std::to_string(i);
      EXPECT_EQ(outputs_[id], expected[i]) << id;
      EXPECT_TRUE(done_.count(id)) << id;
    }
    for (const auto& [id, e] : errors_) ADD_FAILURE() << id << ": " << e.ToString();
    for (const auto& [id, why] : refused_) ADD_FAILURE() << id << " refused: " << why;
    ExpectAllFree();
  }

  void CheckMatchesReference(bool greedy, int32_t budget) {
    Build(64, 96, budget);
    ExpectSingleProcessTokens(FivePrompts(greedy));
  }

  // Three 20-token prompts take 2 blocks each on the decode node; growing to 80 tokens takes 5
  // each, so an 8-block pool preempts (and recomputes there).
  static std::vector<TestPrompt> ThreeGrowingPrompts(bool greedy) {
    std::vector<TestPrompt> prompts = FivePrompts(greedy);
    prompts.resize(3);
    for (size_t i = 0; i < prompts.size(); ++i) {
      prompts[i].prompt.resize(20, static_cast<int32_t>(200 + i));
      prompts[i].params.max_tokens = 60;
      prompts[i].params.ignore_eos = true;
    }
    return prompts;
  }

  void CheckSurvivesPreemption(bool greedy) {
    Build(64, 8, 2048);
    ExpectSingleProcessTokens(ThreeGrowingPrompts(greedy));
    EXPECT_GT(preemptions_, 0);
  }

  KvAllocation decode_kv_ = KvAllocation::kGrow;  // set before Build
  bool caching_ = false;                          // prefix caching on both nodes; set before Build
  std::map<std::string, int32_t> cached_blocks_;  // per reservation: blocks D held already
  std::map<std::string, int64_t> kv_bytes_;       // per request: KV bytes P sent
  int64_t preemptions_ = 0;                       // on the decode node, over finished requests

  std::shared_ptr<std::atomic<bool>> fail_ = std::make_shared<std::atomic<bool>>(false);  // device faults
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Transformer> transformer_;
  std::shared_ptr<LoopbackFabric> fabric_;
  std::unique_ptr<LoopbackTransport> p_transport_, d_transport_;
  std::unique_ptr<KvCache> p_cache_, d_cache_;
  std::unique_ptr<PrefillEngine> prefill_;
  std::unique_ptr<DecodeEngine> decode_;
  std::vector<DecodeEvent> de_;
  std::map<std::string, std::vector<int32_t>> outputs_;
  std::map<std::string, FinishReason> done_;
  std::map<std::string, Status> errors_;
  std::map<std::string, std::string> refused_;
  std::map<std::string, int> reserves_;
};

// With prefix caching on both nodes, a prompt sent again is not computed again on P (its cache)
// and not sent again to D (D kept what it decoded): D's reservation names its cached blocks and
// P sends only the block of the last prompt token. The tokens stay those of one process.
TEST_F(NodeEnginesTest, APromptSentAgainSendsOnlyTheBlocksTheDecodeNodeLacks) {
  for (const bool greedy : {true, false}) {
    SCOPED_TRACE(greedy ? "greedy" : "seeded");
    caching_ = true;
    Build(64, 96, 2048);
    std::vector<TestPrompt> prompts = ThreeGrowingPrompts(greedy);
    for (auto& p : prompts) p.prompt.resize(40, 300);  // 3 blocks: 2 full before the last token
    const auto expected = ReferenceOutputs(TinyModelDir(), prompts);
    for (const std::string round : {"a", "b"}) {
      for (size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(Submit(round + std::to_string(i), prompts[i]).ok());
      RunUntilIdle();
      for (size_t i = 0; i < prompts.size(); ++i) {
        const std::string id = round + std::to_string(i);
        EXPECT_EQ(outputs_[id], expected[i]) << id;
        EXPECT_EQ(cached_blocks_[id], round == "a" ? 0 : 2) << id;
      }
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::string n = std::to_string(i);
      EXPECT_EQ(kv_bytes_["b" + n] * 3, kv_bytes_["a" + n]) << n;  // one block of three
    }
    for (const auto& [id, e] : errors_) ADD_FAILURE() << id << ": " << e.ToString();
    ExpectAllFree();  // cached blocks count as free
    outputs_.clear();
    cached_blocks_.clear();
    kv_bytes_.clear();
  }
}

TEST_F(NodeEnginesTest, GreedyMatchesSingleProcessEngine) { CheckMatchesReference(true, 2048); }
TEST_F(NodeEnginesTest, SeededSamplingMatchesSingleProcessEngine) { CheckMatchesReference(false, 2048); }
TEST_F(NodeEnginesTest, ChunkedPrefillMatchesSingleProcessEngine) { CheckMatchesReference(true, 24); }

// A decode pool too small for the requests' growth preempts and recomputes; the tokens still
// equal the single-process engine's.
TEST_F(NodeEnginesTest, ADecodePoolThatRunsOutPreemptsAndStillMatchesSingleProcess) {
  CheckSurvivesPreemption(/*greedy=*/true);
}

TEST_F(NodeEnginesTest, SeededSamplingSurvivesPreemptionOnTheDecodeNode) { CheckSurvivesPreemption(/*greedy=*/false); }

// While a preempted request waits for memory, a new reservation that would take the blocks it
// waits for is refused (the router places it elsewhere or later); the preempted one finishes.
TEST_F(NodeEnginesTest, APreemptedRequestKeepsItsMemoryFromNewReservations) {
  Build(64, 8, 2048);
  const auto prompts = ThreeGrowingPrompts(true);
  for (size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(Submit("r" + std::to_string(i), prompts[i]).ok());
  for (int i = 0; i < 2000 && decode_->num_preemptions() == 0; ++i) Pump();
  ASSERT_GT(decode_->num_preemptions(), 0);
  ASSERT_GE(decode_->free_blocks(), 1);  // room for a one-block prompt, but not for the resume
  TestPrompt small;
  small.prompt.assign(10, 5);
  small.params.temperature = 0;
  small.params.max_tokens = 4;
  auto refused = decode_->Reserve({"late", small.prompt, small.params, 0});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("preempted"), std::string::npos) << refused.status().ToString();
  RunUntilIdle();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(done_["r" + std::to_string(i)], FinishReason::kLength);
  ExpectAllFree();
}

TEST_F(NodeEnginesTest, AGrowingDecodePoolReservesThePromptsBlocksOnly) {
  Build(16, 8, 2048);
  TestPrompt p;
  p.prompt.assign(40, 5);
  p.params.temperature = 0;
  p.params.max_tokens = 40;  // 3 prompt blocks; 5 over its life
  auto first = decode_->Reserve({"a", p.prompt, p.params, 0});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->size(), 3u);
  EXPECT_TRUE(decode_->Reserve({"b", p.prompt, p.params, 0}).ok());
  EXPECT_EQ(decode_->Reserve({"c", p.prompt, p.params, 0}).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(decode_->free_blocks(), 2);
}

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
