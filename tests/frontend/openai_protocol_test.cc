#include "frontend/openai_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "frontend/api_handlers.h"

namespace tandem {
namespace {

using nlohmann::ordered_json;

const ProtocolLimits kLimits{/*vocab_size=*/1000, /*max_model_len=*/128};

std::optional<ApiError> Parse(const std::string& body, ApiKind kind, GenerationRequest* out) {
  return ParseGenerationRequest(ordered_json::parse(body), kind, kLimits, out);
}

TEST(OpenAiProtocolTest, ParsesEveryCompletionField) {
  GenerationRequest r;
  auto e = Parse(R"({"model":"m","prompt":"hi","max_tokens":7,"temperature":0.5,"top_p":0.9,"top_k":40,
                     "min_p":0.1,"presence_penalty":0.5,"frequency_penalty":-0.5,"repetition_penalty":1.1,
                     "seed":-3,"stop":["a","b"],"stop_token_ids":[5,6],"ignore_eos":true,"n":1,
                     "stream":true,"stream_options":{"include_usage":true},"user":"u","logprobs":null})",
                 ApiKind::kCompletion, &r);
  ASSERT_FALSE(e) << e->message;
  EXPECT_EQ(r.model, "m");
  EXPECT_TRUE(r.has_prompt_text);
  EXPECT_EQ(r.prompt_text, "hi");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.params.top_p, 0.9f);
  EXPECT_EQ(r.params.top_k, 40);
  EXPECT_FLOAT_EQ(r.params.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r.params.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.params.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(r.params.repetition_penalty, 1.1f);
  EXPECT_EQ(r.params.seed, static_cast<uint64_t>(int64_t{-3}));
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.params.stop_token_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_TRUE(r.params.ignore_eos);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST(OpenAiProtocolTest, SloExtension) {
  GenerationRequest r;
  ASSERT_FALSE(Parse(R"({"prompt":"x","slo_class":"interactive","slo":{"ttft_ms":250,"tpot_ms":50.5}})",
                     ApiKind::kCompletion, &r));
  EXPECT_EQ(r.slo_class, "interactive");
  EXPECT_EQ(r.slo_ttft_ms, 250);
  EXPECT_EQ(r.slo_tpot_ms, 50.5);
  ASSERT_FALSE(Parse(R"({"prompt":"x","slo":{"tpot_ms":20}})", ApiKind::kCompletion, &r));
  EXPECT_TRUE(r.slo_class.empty());
  EXPECT_EQ(r.slo_ttft_ms, 0);
  EXPECT_EQ(r.slo_tpot_ms, 20);
}

TEST(OpenAiProtocolTest, PromptForms) {
  GenerationRequest r;
  ASSERT_FALSE(Parse(R"({"prompt":[1,2,3]})", ApiKind::kCompletion, &r));
  EXPECT_FALSE(r.has_prompt_text);
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  ASSERT_FALSE(Parse(R"({"prompt":["one"]})", ApiKind::kCompletion, &r));
  EXPECT_EQ(r.prompt_text, "one");
  ASSERT_FALSE(Parse(R"({"prompt":[[4,5]]})", ApiKind::kCompletion, &r));
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{4, 5}));
  ASSERT_FALSE(Parse(R"({"prompt":"x","stop":"s","max_tokens":3.0})", ApiKind::kCompletion, &r));
  EXPECT_EQ(r.stop, (std::vector<std::string>{"s"}));
  EXPECT_EQ(r.max_tokens, 3);
}

TEST(OpenAiProtocolTest, ChatMessagesAndMaxCompletionTokens) {
  GenerationRequest r;
  ASSERT_FALSE(Parse(R"({"messages":[{"role":"system","content":"s"},
                                     {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
                         "max_tokens":5,"max_completion_tokens":9,"logprobs":false})",
                     ApiKind::kChat, &r));
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1]["content"], "a\nb");
  EXPECT_EQ(r.max_tokens, 9);  // the newer name wins
}

struct BadCase {
  const char* name;
  ApiKind kind;
  const char* body;
  const char* param;
  const char* code;
};

class OpenAiBadFieldTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(OpenAiBadFieldTest, IsRejectedNamingTheField) {
  const BadCase& c = GetParam();
  GenerationRequest r;
  auto e = Parse(c.body, c.kind, &r);
  ASSERT_TRUE(e) << c.body;
  EXPECT_EQ(e->http_status, 400);
  EXPECT_EQ(e->type, "invalid_request_error");
  EXPECT_EQ(e->param, c.param) << e->message;
  EXPECT_EQ(e->code, c.code) << e->message;
  EXPECT_FALSE(e->message.empty());
}

constexpr ApiKind kC = ApiKind::kCompletion;
constexpr ApiKind kChat = ApiKind::kChat;

INSTANTIATE_TEST_SUITE_P(
    Fields, OpenAiBadFieldTest,
    ::testing::Values(
        BadCase{"model_type", kC, R"({"prompt":"x","model":5})", "model", "invalid_type"},
        BadCase{"prompt_missing", kC, R"({"max_tokens":3})", "prompt", "missing_required_parameter"},
        BadCase{"prompt_type", kC, R"({"prompt":{"a":1}})", "prompt", "invalid_type"},
        BadCase{"prompt_empty_ids", kC, R"({"prompt":[]})", "prompt", "invalid_value"},
        BadCase{"prompt_bad_id", kC, R"({"prompt":[1,1000]})", "prompt", "invalid_value"},
        BadCase{"prompt_negative_id", kC, R"({"prompt":[-1]})", "prompt", "invalid_value"},
        BadCase{"prompt_float_id", kC, R"({"prompt":[1,2.5]})", "prompt[1]", "invalid_type"},
        BadCase{"prompt_batch", kC, R"({"prompt":["a","b"]})", "prompt", "unsupported_parameter"},
        BadCase{"messages_missing", kChat, R"({"model":"m"})", "messages", "missing_required_parameter"},
        BadCase{"messages_type", kChat, R"({"messages":"hi"})", "messages", "invalid_type"},
        BadCase{"messages_empty", kChat, R"({"messages":[]})", "messages", "invalid_value"},
        BadCase{"message_not_object", kChat, R"({"messages":[1]})", "messages[0]", "invalid_type"},
        BadCase{"message_no_role", kChat, R"({"messages":[{"content":"x"}]})", "messages[0].role",
                "missing_required_parameter"},
        BadCase{"message_content_type", kChat, R"({"messages":[{"role":"user","content":5}]})", "messages[0].content",
                "invalid_type"},
        BadCase{"message_image_part", kChat,
                R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})",
                "messages[0].content[0].type", "unsupported_parameter"},
        BadCase{"max_tokens_zero", kC, R"({"prompt":"x","max_tokens":0})", "max_tokens", "invalid_value"},
        BadCase{"max_tokens_fraction", kC, R"({"prompt":"x","max_tokens":1.5})", "max_tokens", "invalid_type"},
        BadCase{"max_tokens_string", kC, R"({"prompt":"x","max_tokens":"5"})", "max_tokens", "invalid_type"},
        BadCase{"max_completion_tokens", kChat,
                R"({"messages":[{"role":"user","content":"x"}],"max_completion_tokens":-1})", "max_completion_tokens",
                "invalid_value"},
        BadCase{"temperature_type", kC, R"({"prompt":"x","temperature":"hot"})", "temperature", "invalid_type"},
        BadCase{"temperature_bool", kC, R"({"prompt":"x","temperature":true})", "temperature", "invalid_type"},
        BadCase{"temperature_range", kC, R"({"prompt":"x","temperature":2.5})", "temperature", "invalid_value"},
        BadCase{"temperature_negative", kC, R"({"prompt":"x","temperature":-0.1})", "temperature", "invalid_value"},
        BadCase{"top_p_zero", kC, R"({"prompt":"x","top_p":0})", "top_p", "invalid_value"},
        BadCase{"top_p_big", kC, R"({"prompt":"x","top_p":1.01})", "top_p", "invalid_value"},
        // Positive as a double, 0 as the float the engine gets (found by openai_request_fuzzer).
        BadCase{"top_p_underflows_float", kC, R"({"prompt":"x","top_p":1e-50})", "top_p", "invalid_value"},
        BadCase{"repetition_penalty_underflows_float", kC, R"({"prompt":"x","repetition_penalty":1e-46})",
                "repetition_penalty", "invalid_value"},
        BadCase{"top_k", kC, R"({"prompt":"x","top_k":-2})", "top_k", "invalid_value"},
        BadCase{"top_k_type", kC, R"({"prompt":"x","top_k":"5"})", "top_k", "invalid_type"},
        BadCase{"min_p", kC, R"({"prompt":"x","min_p":1.5})", "min_p", "invalid_value"},
        BadCase{"presence_penalty", kC, R"({"prompt":"x","presence_penalty":2.5})", "presence_penalty",
                "invalid_value"},
        BadCase{"frequency_penalty", kC, R"({"prompt":"x","frequency_penalty":-3})", "frequency_penalty",
                "invalid_value"},
        BadCase{"repetition_penalty", kC, R"({"prompt":"x","repetition_penalty":0})", "repetition_penalty",
                "invalid_value"},
        BadCase{"seed_type", kC, R"({"prompt":"x","seed":"x"})", "seed", "invalid_type"},
        BadCase{"stop_type", kC, R"({"prompt":"x","stop":5})", "stop", "invalid_type"},
        BadCase{"stop_item_type", kC, R"({"prompt":"x","stop":["a",1]})", "stop", "invalid_type"},
        BadCase{"stop_too_many", kC, R"({"prompt":"x","stop":["a","b","c","d","e"]})", "stop", "invalid_value"},
        BadCase{"stop_empty", kC, R"({"prompt":"x","stop":[""]})", "stop", "invalid_value"},
        BadCase{"stop_token_ids_type", kC, R"({"prompt":"x","stop_token_ids":3})", "stop_token_ids", "invalid_type"},
        BadCase{"stop_token_ids_range", kC, R"({"prompt":"x","stop_token_ids":[-1]})", "stop_token_ids",
                "invalid_value"},
        BadCase{"ignore_eos", kC, R"({"prompt":"x","ignore_eos":"yes"})", "ignore_eos", "invalid_type"},
        BadCase{"n_two", kC, R"({"prompt":"x","n":2})", "n", "unsupported_parameter"},
        BadCase{"n_zero", kC, R"({"prompt":"x","n":0})", "n", "invalid_value"},
        BadCase{"stream_type", kC, R"({"prompt":"x","stream":"yes"})", "stream", "invalid_type"},
        BadCase{"stream_options_without_stream", kC, R"({"prompt":"x","stream_options":{"include_usage":true}})",
                "stream_options", "invalid_value"},
        BadCase{"stream_options_type", kC, R"({"prompt":"x","stream":true,"stream_options":true})", "stream_options",
                "invalid_type"},
        BadCase{"include_usage_type", kC, R"({"prompt":"x","stream":true,"stream_options":{"include_usage":1}})",
                "stream_options.include_usage", "invalid_type"},
        BadCase{"logprobs_completion", kC, R"({"prompt":"x","logprobs":1})", "logprobs", "unsupported_parameter"},
        BadCase{"logprobs_chat", kChat, R"({"messages":[{"role":"user","content":"x"}],"logprobs":true})", "logprobs",
                "unsupported_parameter"},
        BadCase{"top_logprobs", kChat, R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})",
                "top_logprobs", "unsupported_parameter"},
        BadCase{"echo", kC, R"({"prompt":"x","echo":true})", "echo", "unsupported_parameter"},
        BadCase{"user", kC, R"({"prompt":"x","user":5})", "user", "invalid_type"},
        BadCase{"slo_class_type", kC, R"({"prompt":"x","slo_class":3})", "slo_class", "invalid_type"},
        BadCase{"slo_class_empty", kC, R"({"prompt":"x","slo_class":""})", "slo_class", "invalid_type"},
        BadCase{"slo_type", kC, R"({"prompt":"x","slo":250})", "slo", "invalid_type"},
        BadCase{"slo_empty", kChat, R"({"messages":[{"role":"user","content":"x"}],"slo":{}})", "slo", "invalid_value"},
        BadCase{"slo_negative", kC, R"({"prompt":"x","slo":{"ttft_ms":-5}})", "slo.ttft_ms", "invalid_value"},
        BadCase{"slo_zero", kC, R"({"prompt":"x","slo":{"tpot_ms":0}})", "slo.tpot_ms", "invalid_value"},
        BadCase{"slo_not_number", kC, R"({"prompt":"x","slo":{"tpot_ms":"fast"}})", "slo.tpot_ms", "invalid_type"},
        BadCase{"slo_unknown_target", kC, R"({"prompt":"x","slo":{"ttft":5}})", "slo.ttft", "invalid_value"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

TEST(OpenAiProtocolTest, ResolveMaxTokens) {
  GenerationRequest completion;
  completion.kind = ApiKind::kCompletion;
  int32_t n = 0;
  ASSERT_FALSE(ResolveMaxTokens(completion, 10, 128, &n));
  EXPECT_EQ(n, kDefaultCompletionMaxTokens);
  ASSERT_FALSE(ResolveMaxTokens(completion, 120, 128, &n));
  EXPECT_EQ(n, 8);  // the default never overflows the window

  GenerationRequest chat;
  chat.kind = ApiKind::kChat;
  ASSERT_FALSE(ResolveMaxTokens(chat, 28, 128, &n));
  EXPECT_EQ(n, 100);  // the rest of the context

  chat.max_tokens = 101;
  auto e = ResolveMaxTokens(chat, 28, 128, &n);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->http_status, 400);
  EXPECT_EQ(e->code, "context_length_exceeded");
  EXPECT_NE(e->message.find("128"), std::string::npos) << e->message;
  EXPECT_NE(e->message.find("101"), std::string::npos) << e->message;
  EXPECT_NE(e->message.find("28"), std::string::npos) << e->message;

  e = ResolveMaxTokens(completion, 128, 128, &n);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "prompt");
}

TEST(OpenAiProtocolTest, ErrorBodyShape) {
  ApiError e = InvalidRequest("temperature", "bad", "invalid_value");
  EXPECT_EQ(
      e.ToJson().dump(),
      R"({"error":{"message":"bad","type":"invalid_request_error","param":"temperature","code":"invalid_value"}})");
  const ApiError bare = InvalidRequest("", "m", "");
  EXPECT_EQ(bare.ToJson().dump(),
            R"({"error":{"message":"m","type":"invalid_request_error","param":null,"code":null}})");
}

TEST(OpenAiProtocolTest, CompletionBodiesMatchOpenAiFormat) {
  const ResponseMeta meta{ApiKind::kCompletion, "cmpl-1", 42, "m"};
  EXPECT_EQ(
      DumpJson(BuildResponse(meta, "hi", "length", {3, 2})),
      R"({"id":"cmpl-1","object":"text_completion","created":42,"model":"m","choices":[{"index":0,"text":"hi",)"
      R"("logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})");
  EXPECT_EQ(DumpJson(BuildTextChunk(meta, "a", false)),
            R"({"id":"cmpl-1","object":"text_completion","created":42,"model":"m","choices":[{"index":0,"text":"a",)"
            R"("logprobs":null,"finish_reason":null}]})");
  EXPECT_EQ(DumpJson(BuildFinishChunk(meta, "stop", true)),
            R"({"id":"cmpl-1","object":"text_completion","created":42,"model":"m","choices":[{"index":0,"text":"",)"
            R"("logprobs":null,"finish_reason":"stop"}],"usage":null})");
  EXPECT_EQ(DumpJson(BuildUsageChunk(meta, {3, 2})),
            R"({"id":"cmpl-1","object":"text_completion","created":42,"model":"m","choices":[],)"
            R"("usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})");
}

TEST(OpenAiProtocolTest, ChatBodiesMatchOpenAiFormat) {
  const ResponseMeta meta{ApiKind::kChat, "chatcmpl-1", 42, "m"};
  EXPECT_EQ(DumpJson(BuildResponse(meta, "hi", "stop", {3, 2})),
            R"({"id":"chatcmpl-1","object":"chat.completion","created":42,"model":"m","choices":[{"index":0,)"
            R"("message":{"role":"assistant","content":"hi"},"logprobs":null,"finish_reason":"stop"}],)"
            R"("usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})");
  EXPECT_EQ(DumpJson(BuildRoleChunk(meta, false)),
            R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":42,"model":"m","choices":[{"index":0,)"
            R"("delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})");
  EXPECT_EQ(DumpJson(BuildTextChunk(meta, "x", false)),
            R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":42,"model":"m","choices":[{"index":0,)"
            R"("delta":{"content":"x"},"logprobs":null,"finish_reason":null}]})");
  EXPECT_EQ(DumpJson(BuildFinishChunk(meta, "length", false)),
            R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":42,"model":"m","choices":[{"index":0,)"
            R"("delta":{},"logprobs":null,"finish_reason":"length"}]})");
}

TEST(OpenAiProtocolTest, DumpNeverThrowsOnInvalidUtf8) {
  ordered_json j;
  j["text"] = std::string("a\xff");
  EXPECT_EQ(DumpJson(j), "{\"text\":\"a\xEF\xBF\xBD\"}");
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

TEST(StatusToApiErrorTest, FullIsRetryLaterUnavailableIsServiceMissing) {
  const ApiError full = StatusToApiError(ResourceExhaustedError("no decode node has room"));
  EXPECT_EQ(full.http_status, 429);
  EXPECT_EQ(full.code, "engine_overloaded");
  EXPECT_EQ(full.retry_after_s, 1);
  const ApiError slo = StatusToApiError(ResourceExhaustedError("no node meets 100 ms").WithReason("slo_unattainable"));
  EXPECT_EQ(slo.http_status, 429);
  EXPECT_EQ(slo.code, "slo_unattainable");
  EXPECT_EQ(slo.retry_after_s, 1);
  EXPECT_EQ(full.message, "no decode node has room");
  const ApiError down = StatusToApiError(UnavailableError("no healthy decode node"));
  EXPECT_EQ(down.http_status, 503);
  EXPECT_EQ(down.code, "service_unavailable");
  EXPECT_EQ(down.retry_after_s, 0);  // the backend is missing: no promise
  const ApiError class_full = StatusToApiError(UnavailableError("batch's queue is full").WithReason("queue_full"));
  EXPECT_EQ(class_full.http_status, 503);
  EXPECT_EQ(class_full.code, "queue_full");
  EXPECT_EQ(class_full.type, "server_error");
  EXPECT_EQ(class_full.retry_after_s, 1);
  EXPECT_EQ(StatusToApiError(OutOfRangeError("needs 125 KV blocks")).http_status, 400);
  EXPECT_EQ(StatusToApiError(InternalError("bug")).http_status, 500);
  const ApiError late = StatusToApiError(DeadlineExceededError("no first token after 60000 ms"));
  EXPECT_EQ(late.http_status, 504);
  EXPECT_EQ(late.code, "timeout");
}

}  // namespace
}  // namespace tandem
