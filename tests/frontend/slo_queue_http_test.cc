// A class's queue bound over real HTTP: with the worker's KV held by one long request, one
// request of class "batch" (max_queued 1) waits, the next gets 503 queue_full with Retry-After,
// a request of another class still waits, and both waiting ones are served once the long one
// ends.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "frontend/http_server.h"
#include "tests/frontend/tiny_worker.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::HttpReply;
using testing::TestHttpClient;

constexpr int32_t kNumBlocks = 128;  // of 16 tokens: 2048, the tiny model's context

class SloQueueHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalEngineOptions engine;
    engine.kv_cache.num_blocks = kNumBlocks;
    engine.engine.kv_allocation = KvAllocation::kReserve;  // a request holds prompt + max_tokens
    worker_ = testing::StartTinyWorker(engine);
    ASSERT_TRUE(worker_.client && worker_.model);
    auto config = SloConfig::FromJson(R"({"classes": [
        {"name": "interactive", "ttft_ms": 60000, "default": true},
        {"name": "batch", "ttft_ms": 60000, "priority": 1, "max_queued": 1}]})",
                                      "test");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    HttpServerOptions options;
    options.port = 0;
    options.slo_config = std::make_shared<const SloConfig>(std::move(*config));
    server_ = std::make_unique<HttpServer>(options, worker_.model, *worker_.client);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    server_.reset();
    worker_ = {};
  }
  bool WaitQueued(int32_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (worker_.client->Load().num_queued != n) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }
  static json Small() { return {{"prompt", "hi"}, {"max_tokens", 2}, {"temperature", 0}, {"ignore_eos", true}}; }

  testing::TinyWorker worker_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(SloQueueHttpTest, AFullClassQueueIs503WithRetryAfterAndOtherClassesStillWait) {
  const uint16_t port = server_->port();
  // A stream reserving the whole pool (its prompt plus max_tokens), held open until the end.
  const std::string prompt = "Tell me a long story";
  TestHttpClient counter(port);
  const HttpReply tokens = counter.Post("/tokenize", {{"prompt", prompt}});
  ASSERT_EQ(tokens.status, 200) << tokens.body;
  const int64_t max_tokens = kNumBlocks * 16 - tokens.json()["count"].get<int64_t>() - 4;
  const std::string body =
      json({{"prompt", prompt}, {"max_tokens", max_tokens}, {"ignore_eos", true}, {"temperature", 0}, {"stream", true}})
          .dump();
  TestHttpClient hog(port);
  const std::string got = hog.SendAndReadUntil(
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body,
      "\"text\"");
  ASSERT_NE(got.find("data: "), std::string::npos) << got;

  std::atomic<int> batch_status{0}, interactive_status{0};
  std::thread batch([&] {
    TestHttpClient c(port, 60s);
    batch_status = c.Post("/v1/completions", Small(), {{"X-SLO-Class", "batch"}}).status;
  });
  EXPECT_TRUE(WaitQueued(1));  // (no ASSERT while threads run)

  TestHttpClient refused(port);
  const HttpReply r = refused.Post("/v1/completions", Small(), {{"X-SLO-Class", "batch"}});
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.headers.count("retry-after") ? r.headers.at("retry-after") : "", "1");
  EXPECT_EQ(r.json()["error"]["code"], "queue_full");
  EXPECT_EQ(r.json()["error"]["type"], "server_error");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("batch"), std::string::npos);

  std::thread interactive([&] {
    TestHttpClient c(port, 60s);
    interactive_status = c.Post("/v1/completions", Small()).status;  // the default class
  });
  EXPECT_TRUE(WaitQueued(2));

  hog.Close();  // aborts the stream: its blocks free and the queue drains
  batch.join();
  interactive.join();
  EXPECT_EQ(batch_status, 200);
  EXPECT_EQ(interactive_status, 200);
  EXPECT_TRUE(WaitQueued(0));
  const HttpReply metrics = counter.Get("/metrics");
  EXPECT_NE(metrics.body.find("reason=\"queue_full\""), std::string::npos);
}

}  // namespace
}  // namespace tandem
