#include "worker/local_engine_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/frontend/serving_test_util.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;

// Collects the events of requests; waits (bounded) for final events.
class EventLog {
 public:
  EventCallback Callback() {
    return [this](InferenceEvent ev) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(std::move(ev));
      cv_.notify_all();
    };
  }
  bool WaitFinal(int64_t id, std::chrono::milliseconds timeout = 30s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return FinalLocked(id) != nullptr; });
  }
  InferenceEvent Final(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    const InferenceEvent* f = FinalLocked(id);
    return f ? *f : InferenceEvent{};
  }
  std::vector<int32_t> Tokens(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int32_t> out;
    for (const auto& e : events_) {
      if (e.request_id == id) out.insert(out.end(), e.tokens.begin(), e.tokens.end());
    }
    return out;
  }
  int CountFinals(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& e : events_) n += e.request_id == id && e.final();
    return n;
  }

 private:
  const InferenceEvent* FinalLocked(int64_t id) const {
    for (const auto& e : events_) {
      if (e.request_id == id && e.final()) return &e;
    }
    return nullptr;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<InferenceEvent> events_;
};

std::unique_ptr<LocalEngineClient> MakeClient(std::unique_ptr<Backend> backend = nullptr, int32_t num_blocks = 256,
                                              KvAllocation allocation = KvAllocation::kGrow) {
  if (!backend) {
    auto b = CreateBackend("cpu");
    EXPECT_TRUE(b.ok());
    backend = std::move(b).value();
  }
  LocalEngineOptions options;
  options.kv_cache.num_blocks = num_blocks;
  options.engine.kv_allocation = allocation;
  auto client = LocalEngineClient::Create(std::move(backend), testing::TinyModelDir(), options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::move(client).value() : nullptr;
}

ServingRequest Greedy(int64_t id, std::vector<int32_t> prompt, int32_t max_tokens) {
  ServingRequest r;
  r.id = id;
  r.prompt = std::move(prompt);
  r.params.temperature = 0.0f;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  r.arrival_us = SteadyClock::Read();
  return r;
}

bool WaitForFreeBlocks(const LocalEngineClient& client, int32_t want, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (client.Load().num_free_kv_blocks == want && client.Load().num_requests == 0) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

TEST(LocalEngineClientTest, StreamsTheSameTokensAsTheEngine) {
  auto client = MakeClient();
  ASSERT_TRUE(client);
  EXPECT_TRUE(client->Ready());
  const std::vector<int32_t> prompt = {0, 17, 300, 4000, 52};
  ServingRequest req = Greedy(7, prompt, 12);
  const std::vector<int32_t> want = testing::ReferenceGenerate(prompt, req.params);
  EventLog log;
  ASSERT_TRUE(client->Submit(req, log.Callback()).ok());
  ASSERT_TRUE(log.WaitFinal(7));
  EXPECT_EQ(log.Tokens(7), want);
  const InferenceEvent fin = log.Final(7);
  EXPECT_EQ(fin.finish_reason, FinishReason::kLength);
  EXPECT_TRUE(fin.status.ok());
  EXPECT_EQ(fin.record.token_us.size(), want.size());
  EXPECT_GE(fin.record.first_token_us, fin.record.arrival_us);
  EXPECT_EQ(log.CountFinals(7), 1);
  EXPECT_TRUE(WaitForFreeBlocks(*client, 256, 1s));
}

TEST(LocalEngineClientTest, SubmitRejectsWhatTheModelCannotServe) {
  auto client = MakeClient(nullptr, /*num_blocks=*/8);
  ASSERT_TRUE(client);
  EventLog log;
  EXPECT_EQ(client->Submit(Greedy(1, {}, 4), log.Callback()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Submit(Greedy(1, {1, 32000}, 4), log.Callback()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Submit(Greedy(1, {1, 2}, 3000), log.Callback()).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(client->Submit(Greedy(1, {1, 2}, 200), log.Callback()).code(), StatusCode::kOutOfRange);  // > 8 blocks
  ServingRequest bad = Greedy(1, {1, 2}, 4);
  bad.params.top_p = 0.0f;
  EXPECT_EQ(client->Submit(bad, log.Callback()).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(client->Submit(Greedy(2, {1, 2}, 100), log.Callback()).ok());
  EXPECT_EQ(client->Submit(Greedy(2, {1, 2}, 4), log.Callback()).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(log.WaitFinal(2));
  EXPECT_EQ(log.CountFinals(1), 0);  // rejected submits get no events
}

TEST(LocalEngineClientTest, AbortEndsTheRequestAndFreesItsBlocks) {
  auto client = MakeClient();
  ASSERT_TRUE(client);
  const int32_t total = client->Load().num_free_kv_blocks;
  EventLog log;
  ASSERT_TRUE(client->Submit(Greedy(3, {5, 6, 7}, 1500), log.Callback()).ok());
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (log.Tokens(3).size() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_LT(client->Load().num_free_kv_blocks, total);
  client->Abort(3);
  ASSERT_TRUE(log.WaitFinal(3, 5s));
  EXPECT_EQ(log.Final(3).finish_reason, FinishReason::kAbort);
  EXPECT_LT(log.Tokens(3).size(), 1500u);
  EXPECT_TRUE(WaitForFreeBlocks(*client, total, 1s));
  client->Abort(3);    // finished: ignored
  client->Abort(999);  // unknown: ignored
  EXPECT_EQ(log.CountFinals(3), 1);
}

TEST(LocalEngineClientTest, FailedStepFailsItsRequestsAndServingGoesOn) {
  auto fail = std::make_shared<std::atomic<bool>>(false);
  auto cpu = CreateBackend("cpu");
  ASSERT_TRUE(cpu.ok());
  auto client = MakeClient(std::make_unique<testing::FaultInjectingBackend>(std::move(cpu).value(), fail));
  ASSERT_TRUE(client);
  const int32_t total = client->Load().num_free_kv_blocks;
  EventLog log;
  fail->store(true);
  ASSERT_TRUE(client->Submit(Greedy(1, {1, 2, 3}, 8), log.Callback()).ok());
  ASSERT_TRUE(client->Submit(Greedy(2, {4, 5}, 8), log.Callback()).ok());
  ASSERT_TRUE(log.WaitFinal(1));
  ASSERT_TRUE(log.WaitFinal(2));
  for (int64_t id : {1, 2}) {
    const InferenceEvent fin = log.Final(id);
    EXPECT_EQ(fin.finish_reason, FinishReason::kError);
    EXPECT_EQ(fin.status.code(), StatusCode::kInternal);
    EXPECT_NE(fin.status.message().find("injected device fault"), std::string::npos) << fin.status.ToString();
  }
  EXPECT_TRUE(WaitForFreeBlocks(*client, total, 1s));
  fail->store(false);
  ASSERT_TRUE(client->Submit(Greedy(3, {1, 2, 3}, 4), log.Callback()).ok());
  ASSERT_TRUE(log.WaitFinal(3));
  EXPECT_EQ(log.Final(3).finish_reason, FinishReason::kLength);
  EXPECT_EQ(log.Tokens(3).size(), 4u);
}

TEST(LocalEngineClientTest, StopFailsEverythingInFlightAndRefusesNewWork) {
  auto client = MakeClient();
  ASSERT_TRUE(client);
  EventLog log;
  for (int64_t id = 1; id <= 4; ++id) ASSERT_TRUE(client->Submit(Greedy(id, {1, 2, 3}, 1500), log.Callback()).ok());
  client->Stop();
  EXPECT_FALSE(client->Ready());
  for (int64_t id = 1; id <= 4; ++id) {
    ASSERT_TRUE(log.WaitFinal(id, 1s));  // delivered before Stop returned
    EXPECT_EQ(log.Final(id).status.code(), StatusCode::kUnavailable);
    EXPECT_EQ(log.CountFinals(id), 1);
  }
  EXPECT_EQ(client->Submit(Greedy(9, {1}, 2), log.Callback()).code(), StatusCode::kUnavailable);
  EXPECT_EQ(client->Load().num_requests, 0);
  client->Stop();  // idempotent
}

TEST(LocalEngineClientTest, ConcurrentSubmittersAllFinish) {
  auto client = MakeClient();
  ASSERT_TRUE(client);
  EventLog log;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 4; ++i) {
        const int64_t id = t * 100 + i;
        EXPECT_TRUE(client->Submit(Greedy(id, {1, 2, 3, 4 + i}, 6), log.Callback()).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(log.WaitFinal(t * 100 + i));
      EXPECT_EQ(log.Tokens(t * 100 + i).size(), 6u);
    }
  }
  EXPECT_TRUE(WaitForFreeBlocks(*client, 256, 1s));
}

// The worker is admitted by the same router core as the cluster: a request that does not fit the
// pool now waits in the router's queue (FCFS) and runs when blocks free; its record says so.
TEST(LocalEngineClientTest, RequestsThatDoNotFitNowQueueAndRunInOrder) {
  auto client = MakeClient(nullptr, /*num_blocks=*/8, KvAllocation::kReserve);
  ASSERT_TRUE(client);
  EventLog log;
  std::vector<RequestRecord> records;
  for (int64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(client->Submit(Greedy(id, {1, 2, 3, 4}, 80), log.Callback()).ok());  // 6 blocks each
  }
  EXPECT_GE(client->Load().num_queued, 1);
  for (int64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(log.WaitFinal(id));
    const InferenceEvent fin = log.Final(id);
    EXPECT_EQ(fin.finish_reason, FinishReason::kLength) << fin.status.ToString();
    EXPECT_EQ(log.Tokens(id).size(), 80u);
    records.push_back(fin.record);
  }
  EXPECT_EQ(records[0].prefill_node, "worker");
  EXPECT_LE(records[0].first_token_us, records[1].first_token_us);  // in order
  EXPECT_LE(records[1].first_token_us, records[2].first_token_us);
  EXPECT_GT(records[2].placed_us, records[2].queued_us);  // it waited in the queue
  EXPECT_TRUE(WaitForFreeBlocks(*client, 8, 1s));
}

// The same three requests in a growing pool: all start at once (a block each), the pool runs out
// as they decode, and preempted requests are recomputed with the tokens of an uninterrupted run.
TEST(LocalEngineClientTest, AGrowingPoolRunsThemTogetherAndPreemptionKeepsTheTokens) {
  auto client = MakeClient(nullptr, /*num_blocks=*/8);
  ASSERT_TRUE(client);
  EventLog log;
  int32_t preemptions = 0;
  for (int64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(client->Submit(Greedy(id, {1, 2, 3, static_cast<int32_t>(4 + id)}, 80), log.Callback()).ok());
  }
  for (int64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(log.WaitFinal(id));
    const InferenceEvent fin = log.Final(id);
    EXPECT_EQ(fin.finish_reason, FinishReason::kLength) << fin.status.ToString();
    const ServingRequest req = Greedy(id, {1, 2, 3, static_cast<int32_t>(4 + id)}, 80);
    EXPECT_EQ(log.Tokens(id), testing::ReferenceGenerate(req.prompt, req.params)) << id;
    preemptions += fin.record.preemptions;
  }
  EXPECT_GT(preemptions, 0);
  EXPECT_TRUE(WaitForFreeBlocks(*client, 8, 1s));
}

}  // namespace
}  // namespace tandem
