// End to end over real HTTP on 127.0.0.1: the server in this process, backed by the colocated
// engine on the tiny model, talked to by a Beast client.
#include "frontend/http_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "common/sse.h"
#include "tests/frontend/serving_test_util.h"
#include "worker/local_engine_client.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::HttpReply;
using testing::TestHttpClient;

constexpr int32_t kNumBlocks = 1024;
constexpr size_t kMaxBody = 64 * 1024;

class HttpServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto backend = CreateBackend("cpu");
    ASSERT_TRUE(backend.ok());
    LocalEngineOptions options;
    options.kv_cache.num_blocks = kNumBlocks;
    auto client = LocalEngineClient::Create(std::move(backend).value(), testing::TinyModelDir(), options);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value().release();
    auto model = LoadServedModel(testing::TinyModelDir(), "", client_->config());
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = new std::shared_ptr<const ServedModel>(std::move(model).value());
    HttpServerOptions http_options;
    http_options.port = 0;
    http_options.max_body_bytes = kMaxBody;
    server_ = new HttpServer(http_options, *model_, *client_);
    const Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  static void TearDownTestSuite() {
    delete server_;  // before the client it talks to
    delete client_;
    delete model_;
  }

  uint16_t port() const { return server_->port(); }
  const ServedModel& model() const { return **model_; }

  // Parses an SSE body into its JSON events; checks it ends with exactly one [DONE].
  static std::vector<json> SseEvents(const std::string& body) {
    SseParser parser;
    parser.Feed(body);
    std::vector<std::string> raw = parser.TakeEvents();
    EXPECT_FALSE(raw.empty());
    EXPECT_EQ(raw.empty() ? "" : raw.back(), "[DONE]");
    std::vector<json> events;
    for (size_t i = 0; i + 1 < raw.size(); ++i) {
      events.push_back(json::parse(raw[i], nullptr, false));
      EXPECT_FALSE(events.back().is_discarded()) << raw[i];
    }
    return events;
  }

  static bool WaitForIdleEngine(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const LoadInfo load = client_->Load();
      if (load.num_free_kv_blocks == kNumBlocks && load.num_requests == 0) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  static LocalEngineClient* client_;
  static std::shared_ptr<const ServedModel>* model_;
  static HttpServer* server_;
};

LocalEngineClient* HttpServerTest::client_ = nullptr;
std::shared_ptr<const ServedModel>* HttpServerTest::model_ = nullptr;
HttpServer* HttpServerTest::server_ = nullptr;

SamplingParams GreedyParams(int32_t max_tokens) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  return p;
}

TEST_F(HttpServerTest, HealthAndModels) {
  TestHttpClient c(port());
  HttpReply r = c.Get("/health");
  EXPECT_EQ(r.status, 200);
  r = c.Get("/v1/models");
  ASSERT_EQ(r.status, 200) << r.error;
  const json j = r.json();
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "tiny-chat");  // the model dir's base name
  EXPECT_EQ(j["data"][0]["object"], "model");
  EXPECT_EQ(j["data"][0]["max_model_len"], 2048);
}

TEST_F(HttpServerTest, CompletionEqualsEngineGreedyOutput) {
  const std::vector<int32_t> prompt = {0, 11, 222, 3333, 4444, 55};
  const std::vector<int32_t> want = testing::ReferenceGenerate(prompt, GreedyParams(24));
  ASSERT_EQ(want.size(), 24u);
  TestHttpClient c(port());
  HttpReply r = c.Post(
      "/v1/completions",
      {{"model", "tiny-chat"}, {"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}, {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  const json j = r.json();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_GT(j["created"].get<int64_t>(), 1600000000);
  EXPECT_EQ(j["model"], "tiny-chat");
  EXPECT_EQ(j["choices"][0]["text"], model().tokenizer->Decode(want, /*skip_special_tokens=*/true));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(j["usage"]["completion_tokens"], 24);
  EXPECT_EQ(j["usage"]["total_tokens"], prompt.size() + 24);

  // A text prompt is encoded with special tokens (BOS), as vLLM does.
  auto ids = model().tokenizer->Encode("Hello world, this is Tandem.", true);
  ASSERT_TRUE(ids.ok());
  const std::vector<int32_t> want_text = testing::ReferenceGenerate(*ids, GreedyParams(10));
  r = c.Post(
      "/v1/completions",
      {{"prompt", "Hello world, this is Tandem."}, {"max_tokens", 10}, {"temperature", 0}, {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["choices"][0]["text"], model().tokenizer->Decode(want_text, true));
  EXPECT_EQ(r.json()["usage"]["prompt_tokens"], ids->size());
}

TEST_F(HttpServerTest, CompletionStreamConcatenatesToTheSameText) {
  const json body = {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}, {"ignore_eos", true}};
  TestHttpClient c(port());
  HttpReply full = c.Post("/v1/completions", body);
  ASSERT_EQ(full.status, 200);
  json stream_body = body;
  stream_body["stream"] = true;
  stream_body["stream_options"] = {{"include_usage", true}};
  HttpReply r = c.Post("/v1/completions", stream_body);  // same keep-alive connection
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.headers["content-type"], "text/event-stream");
  const std::vector<json> events = SseEvents(r.body);
  ASSERT_GE(events.size(), 3u);
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json& e = events[i];
    EXPECT_EQ(e["object"], "text_completion");
    EXPECT_EQ(e["id"], events[0]["id"]);
    EXPECT_TRUE(e.contains("usage") && e["usage"].is_null());
    ASSERT_EQ(e["choices"].size(), 1u);
    text += e["choices"][0]["text"].get<std::string>();
    const bool last_choice = i + 2 == events.size();
    EXPECT_EQ(e["choices"][0]["finish_reason"].is_null(), !last_choice);
  }
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(text, full.json()["choices"][0]["text"]);
  const json& usage_chunk = events.back();
  EXPECT_TRUE(usage_chunk["choices"].empty());
  EXPECT_EQ(usage_chunk["usage"], full.json()["usage"]);
}

TEST_F(HttpServerTest, ChatNonStreamingAndStreaming) {
  const json messages = json::array(
      {{{"role", "system"}, {"content", "You are terse."}}, {{"role", "user"}, {"content", "Say something."}}});
  TestHttpClient c(port());
  HttpReply full =
      c.Post("/v1/chat/completions",
             {{"messages", messages}, {"max_completion_tokens", 16}, {"temperature", 0}, {"ignore_eos", true}});
  ASSERT_EQ(full.status, 200) << full.body;
  const json j = full.json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["usage"]["completion_tokens"], 16);
  // The prompt is the template's rendering, encoded without special tokens.
  auto rendered =
      model().chat_template->Render(nlohmann::ordered_json(messages), nullptr, true, model().template_extra);
  ASSERT_TRUE(rendered.ok());
  auto ids = model().tokenizer->Encode(*rendered, false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(j["usage"]["prompt_tokens"], ids->size());
  EXPECT_EQ(j["choices"][0]["message"]["content"],
            model().tokenizer->Decode(testing::ReferenceGenerate(*ids, GreedyParams(16)), true));

  HttpReply r =
      c.Post("/v1/chat/completions",
             {{"messages", messages}, {"max_tokens", 16}, {"temperature", 0}, {"ignore_eos", true}, {"stream", true}});
  ASSERT_EQ(r.status, 200);
  const std::vector<json> events = SseEvents(r.body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.front()["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  std::string text;
  for (size_t i = 1; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i]["object"], "chat.completion.chunk");
    EXPECT_TRUE(events[i]["choices"][0]["finish_reason"].is_null());
    EXPECT_FALSE(events[i].contains("usage"));
    text += events[i]["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(events.back()["choices"][0]["delta"], json::object());
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(text, j["choices"][0]["message"]["content"]);
}

TEST_F(HttpServerTest, StopStringEndsTheOutputBeforeIt) {
  const json body = {{"prompt", "The weather today"}, {"max_tokens", 40}, {"temperature", 0}, {"ignore_eos", true}};
  TestHttpClient c(port());
  const std::string text = c.Post("/v1/completions", body).json()["choices"][0]["text"];
  ASSERT_GT(text.size(), 24u);
  // A stop string from the middle of the output: it spans tokens or not, the cut is the same.
  const std::string stop = text.substr(text.size() / 2, 5);
  const std::string want = text.substr(0, text.find(stop));
  json stop_body = body;
  stop_body["stop"] = {"never-in-output", stop};
  HttpReply r = c.Post("/v1/completions", stop_body);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["choices"][0]["text"], want);
  EXPECT_EQ(r.json()["choices"][0]["finish_reason"], "stop");
  EXPECT_LT(r.json()["usage"]["completion_tokens"].get<int>(), 40);

  stop_body["stream"] = true;
  r = c.Post("/v1/completions", stop_body);
  ASSERT_EQ(r.status, 200);
  std::string streamed;
  const std::vector<json> events = SseEvents(r.body);
  for (const json& e : events) streamed += e["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(streamed, want);
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(WaitForIdleEngine(1s));  // the stop string aborted the engine's request
}

TEST_F(HttpServerTest, SixteenConcurrentStreamsAllComplete) {
  constexpr int kClients = 16;
  std::vector<std::thread> threads;
  std::vector<HttpReply> replies(kClients);
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      TestHttpClient c(port());
      json body = {{"prompt", "Request number " + std::to_string(i)},
                   {"max_tokens", 12 + i},
                   {"temperature", 0.8},
                   {"seed", i},
                   {"ignore_eos", true},
                   {"stream", true},
                   {"stream_options", {{"include_usage", true}}}};
      replies[i] = c.Post("/v1/completions", body);
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> ids;
  for (int i = 0; i < kClients; ++i) {
    ASSERT_EQ(replies[i].status, 200) << i << " " << replies[i].error;
    const std::vector<json> events = SseEvents(replies[i].body);
    ASSERT_GE(events.size(), 2u);
    EXPECT_EQ(events.back()["usage"]["completion_tokens"], 12 + i);
    EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
    ids.insert(events.back()["id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kClients));
  EXPECT_TRUE(WaitForIdleEngine(1s));
}

TEST_F(HttpServerTest, ClientDisconnectAbortsAndFreesBlocks) {
  ASSERT_TRUE(WaitForIdleEngine(2s));
  for (bool stream : {true, false}) {
    TestHttpClient c(port());
    const std::string body = json({{"prompt", "Tell me a long story"},
                                   {"max_tokens", 1900},
                                   {"ignore_eos", true},
                                   {"temperature", 0},
                                   {"stream", stream}})
                                 .dump();
    const std::string request =
        "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    if (stream) {
      const std::string got = c.SendAndReadUntil(request, "\"text\"");
      ASSERT_NE(got.find("data: "), std::string::npos) << got;
    } else {
      c.SendAndReadUntil(request, "");  // sent; nothing to wait for
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (client_->Load().num_free_kv_blocks == kNumBlocks && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
      }
    }
    EXPECT_LT(client_->Load().num_free_kv_blocks, kNumBlocks);  // 1900 tokens are reserved
    c.Close();
    EXPECT_TRUE(WaitForIdleEngine(1s)) << "stream=" << stream << " free=" << client_->Load().num_free_kv_blocks;
  }
  TestHttpClient c(port());
  EXPECT_EQ(c.Post("/v1/completions", {{"prompt", "still serving"}, {"max_tokens", 2}}).status, 200);
}

struct BadRequest {
  const char* name;
  const char* target;
  const char* body;  // raw JSON text
  int status;
  const char* code;
  const char* param;  // "" for null
};

// One object with more keys than any request needs is refused before it is parsed into an
// ordered_json (whose key scans make such a body cost seconds of the io thread).
std::string ManyKeys(int n) {
  std::string body = R"({"prompt":"x","extra":{)";
  for (int i = 0; i < n; ++i) body += (i ? ",\"" : "\"") + std::to_string(i) + "\":0";
  return body + "}}";
}

TEST_F(HttpServerTest, BadInputsGetPreciseErrorsAndServingContinues) {
  const std::string many_keys = ManyKeys(1025);
  const BadRequest cases[] = {
      {"too_many_keys", "/v1/completions", many_keys.c_str(), 400, "invalid_json", ""},
      {"malformed_json", "/v1/completions", R"({"prompt": "x",)", 400, "invalid_json", ""},
      {"not_an_object", "/v1/completions", R"([1,2])", 400, "invalid_json", ""},
      {"wrong_model", "/v1/completions", R"({"model":"gpt-4","prompt":"x"})", 404, "model_not_found", "model"},
      {"wrong_model_chat", "/v1/chat/completions", R"({"model":"x","messages":[{"role":"user","content":"x"}]})", 404,
       "model_not_found", "model"},
      {"temperature", "/v1/completions", R"({"prompt":"x","temperature":"hot"})", 400, "invalid_type", "temperature"},
      {"top_p", "/v1/completions", R"({"prompt":"x","top_p":5})", 400, "invalid_value", "top_p"},
      {"n", "/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"n":3})", 400,
       "unsupported_parameter", "n"},
      {"logprobs", "/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"logprobs":true})", 400,
       "unsupported_parameter", "logprobs"},
      {"prompt_id_out_of_vocab", "/v1/completions", R"({"prompt":[1,99999]})", 400, "invalid_value", "prompt"},
      {"context_overflow", "/v1/completions", R"({"prompt":"x","max_tokens":5000})", 400, "context_length_exceeded",
       "max_tokens"},
      {"tokenize_no_prompt", "/tokenize", R"({})", 400, "missing_required_parameter", "prompt"},
      {"detokenize_bad_ids", "/detokenize", R"({"tokens":[-5]})", 400, "invalid_value", "tokens"},
  };
  TestHttpClient c(port());
  for (const BadRequest& bad : cases) {
    HttpReply r = c.Request("POST", bad.target, bad.body);
    EXPECT_EQ(r.status, bad.status) << bad.name << ": " << r.body;
    const json j = r.json();
    ASSERT_TRUE(j.contains("error")) << bad.name << ": " << r.body;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error") << bad.name;
    EXPECT_EQ(j["error"]["code"], bad.code) << bad.name << ": " << r.body;
    if (*bad.param) {
      EXPECT_EQ(j["error"]["param"], bad.param) << bad.name;
    } else {
      EXPECT_TRUE(j["error"]["param"].is_null()) << bad.name;
    }
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
  }
  HttpReply overflow = c.Post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 5000}});
  const std::string message = overflow.json()["error"]["message"];
  EXPECT_NE(message.find("2048"), std::string::npos) << message;
  EXPECT_NE(message.find("5000"), std::string::npos) << message;

  HttpReply r = c.Get("/v1/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json()["error"]["code"], "not_found");
  r = c.Get("/v1/completions");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "POST");
  r = c.Post("/health", json::object());
  EXPECT_EQ(r.status, 405);

  // Over the body limit: 413, and the connection is closed (the client reconnects).
  r = c.Request("POST", "/v1/completions", std::string(kMaxBody + 1, ' '));
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_EQ(r.json()["error"]["code"], "request_too_large");

  // Garbage instead of HTTP.
  TestHttpClient raw(port());
  r = raw.Raw("NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(r.status, 400) << r.error;

  r = c.Post("/v1/completions", {{"prompt", "after the errors"}, {"max_tokens", 3}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(WaitForIdleEngine(1s));
}

TEST_F(HttpServerTest, TokenizeAndDetokenize) {
  TestHttpClient c(port());
  HttpReply r = c.Post("/tokenize", {{"model", "tiny-chat"}, {"prompt", "Hello world"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  auto ids = model().tokenizer->Encode("Hello world", true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(j["tokens"].get<std::vector<int32_t>>(), *ids);
  EXPECT_EQ(j["count"], ids->size());
  EXPECT_EQ(j["max_model_len"], 2048);
  r = c.Post("/detokenize", {{"tokens", j["tokens"]}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["prompt"], model().tokenizer->Decode(*ids, false));
  r = c.Post("/tokenize", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_GT(r.json()["count"].get<int>(), 3);
}

TEST_F(HttpServerTest, ApiKeyIsRequiredWhenConfigured) {
  HttpServerOptions o;
  o.port = 0;
  o.api_key = "sekrit";
  HttpServer secured(o, *model_, *client_);
  ASSERT_TRUE(secured.Start().ok());
  TestHttpClient c(secured.port());
  const json body = {{"prompt", "x"}, {"max_tokens", 2}};
  HttpReply r = c.Post("/v1/completions", body);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.json()["error"]["code"], "invalid_api_key");
  EXPECT_EQ(c.Post("/v1/completions", body, {{"Authorization", "Bearer wrong!"}}).status, 401);
  EXPECT_EQ(c.Get("/v1/models").status, 401);
  EXPECT_EQ(c.Get("/health").status, 200);  // probes need no key
  EXPECT_EQ(c.Post("/v1/completions", body, {{"Authorization", "Bearer sekrit"}}).status, 200);
}

// Connections beyond --max-connections are answered 503 (Retry-After) at once and closed; the
// connections already open are served on, and a slot frees when one of them closes.
TEST_F(HttpServerTest, ConnectionsBeyondTheCapAre503AndClosed) {
  HttpServerOptions o;
  o.port = 0;
  o.max_connections = 2;
  HttpServer capped(o, *model_, *client_);
  ASSERT_TRUE(capped.Start().ok());
  TestHttpClient a(capped.port()), b(capped.port());
  ASSERT_EQ(a.Get("/health").status, 200);
  ASSERT_EQ(b.Get("/health").status, 200);
  {
    TestHttpClient c(capped.port());
    const HttpReply r = c.Get("/health");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.json()["error"]["code"], "server_overloaded");
    EXPECT_EQ(r.headers.count("retry-after") ? r.headers.at("retry-after") : "", "1");
  }
  EXPECT_EQ(b.Get("/health").status, 200);  // the open ones go on
  a.Close();
  bool served = false;  // the server sees a's close on its next read: within moments
  for (int i = 0; i < 200 && !served; ++i) {
    TestHttpClient d(capped.port());
    served = d.Get("/health").status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(served);
}

}  // namespace
}  // namespace tandem
