// The fixture of the node-engine suites: PrefillEngine + DecodeEngine in one process over the
// LoopbackTransport, with the router's and the services' parts (submitting, routing events,
// answering reservations) done by hand, one pump at a time.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "decode_node/decode_engine.h"
#include "kv_transfer/loopback_transport.h"
#include "prefill_node/prefill_engine.h"
#include "tests/kernels/fault_injecting_backend.h"
#include "tests/nodes/nodes_test_util.h"

namespace tandem {

// One prefill engine and one decode engine, each with its own pool allocated by its loopback
// transport (as the nodes do with UCX), sharing the model.
class NodeEnginesTest : public ::testing::Test {
 protected:
  static constexpr PeerId kDecodePeer = 1;

  void Build(int32_t prefill_blocks, int32_t decode_blocks, int32_t budget,
             std::chrono::milliseconds transfer_timeout = std::chrono::milliseconds(5000), int32_t lookahead = 0) {
    ASSERT_FALSE(testing::TinyModelDir().empty());
    backend_ = std::make_unique<testing::FaultInjectingBackend>(std::move(CreateBackend("cpu")).value(), fail_);
    auto w = LoadModelWeights(testing::TinyModelDir(), *backend_);
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
  Status Submit(const std::string& id, const testing::TestPrompt& p) {
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
    testing::TestPrompt p = testing::FivePrompts(true)[0];
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
  void ExpectSingleProcessTokens(const std::vector<testing::TestPrompt>& prompts) {
    const auto expected = testing::ReferenceOutputs(testing::TinyModelDir(), prompts);
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
    ExpectSingleProcessTokens(testing::FivePrompts(greedy));
  }

  // Three 20-token prompts take 2 blocks each on the decode node; growing to 80 tokens takes 5
  // each, so an 8-block pool preempts (and recomputes there).
  static std::vector<testing::TestPrompt> ThreeGrowingPrompts(bool greedy) {
    std::vector<testing::TestPrompt> prompts = testing::FivePrompts(greedy);
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

}  // namespace tandem
