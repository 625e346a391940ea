// A KV pool smaller than the model's context window (the usual case for a long-context model on
// a small machine): the router caps the window at what the pool holds, so a chat request
// without max_tokens is served (vLLM's default: the rest of the window) instead of refused,
// and a request that asks for more hears the real limit. Real HTTP on 127.0.0.1.
#include <chrono>

#include <gtest/gtest.h>

#include "frontend/http_server.h"
#include "worker/local_engine_client.h"
#include "tests/frontend/serving_test_util.h"

namespace tandem {
namespace {

using nlohmann::json;
using testing::HttpReply;
using testing::TestHttpClient;

constexpr int32_t kBlocks = 8;  // 8 x 16 = 128 tokens, against the tiny model's 2048

TEST(PoolCappedContextTest, DefaultMaxTokensFitsThePoolAndTooMuchIsRefusedWithTheLimit) {
  auto backend = CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  LocalEngineOptions options;
  options.kv_cache.num_blocks = kBlocks;
  auto client = LocalEngineClient::Create(std::move(backend).value(), testing::TinyModelDir(), options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto model = LoadServedModel(testing::TinyModelDir(), "", (*client)->config());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_GT((*model)->limits.max_model_len, kBlocks * 16);
  HttpServerOptions http_options;
  http_options.port = 0;
  HttpServer server(http_options, *model, **client);
  ASSERT_TRUE(server.Start().ok());

  TestHttpClient http(server.port(), std::chrono::seconds(30));
  const json chat = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"ignore_eos", true}, {"temperature", 0}};
  const HttpReply ok = http.Post("/v1/chat/completions", chat);
  ASSERT_EQ(ok.status, 200) << ok.body;
  const json j = ok.json();
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length") << ok.body;
  EXPECT_EQ(j["usage"]["total_tokens"].get<int>(), kBlocks * 16) << ok.body;

  json too_much = chat;
  too_much["max_tokens"] = 500;
  const HttpReply refused = http.Post("/v1/chat/completions", too_much);
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("maximum context length is 128 tokens"), std::string::npos) << refused.body;
  EXPECT_NE(refused.body.find("context_length_exceeded"), std::string::npos) << refused.body;
  server.Stop();
}

}  // namespace
}  // namespace tandem
