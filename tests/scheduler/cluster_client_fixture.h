// The fixture of the ClusterClient suites: a client against in-test prefill/decode nodes that
// speak the protocol over TCP (cluster_test_nodes.h), and a sink for each request's events.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "scheduler/cluster_client.h"
#include "tests/scheduler/cluster_test_nodes.h"

namespace tandem::testing {

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
  std::optional<InferenceEvent> WaitFinal(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty() && events_.back().final(); })) return std::nullopt;
    return events_.back();
  }
  bool WaitTokens(size_t n, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
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
    o.backoff.initial = std::chrono::milliseconds(10);
    o.backoff.max = std::chrono::milliseconds(100);
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
    ASSERT_TRUE(client_->WaitReady(std::chrono::milliseconds(5000)).ok());
  }

  static ServingRequest Req(int64_t id, std::vector<int32_t> prompt, int max_tokens) {
    ServingRequest r;
    r.id = id;
    r.prompt = std::move(prompt);
    r.params.temperature = 0;
    r.params.max_tokens = max_tokens;
    r.arrival_us = SteadyClock::Read();
    return r;
  }

  std::optional<RequestRecord> Record(int64_t id) {
    for (int i = 0; i < 100; ++i) {  // on_finished runs right after the final callback
      {
        std::lock_guard<std::mutex> lock(records_mu_);
        auto it = records_.find(id);
        if (it != records_.end()) return it->second;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
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

}  // namespace tandem::testing
