#include "loadgen/response_stream.h"

#include <gtest/gtest.h>

namespace tandem::loadgen {
namespace {

std::string Chunk(const std::string& text) {
  return "data: {\"id\":\"x\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"" + text +
         "\",\"finish_reason\":null}]}\n\n";
}

TEST(ResponseStreamTest, CompletionsChunksUsageAndDone) {
  ResponseStream s(/*chat=*/false);
  s.Feed(Chunk("Hel"), 0.10);
  const std::string second = Chunk("lo");
  s.Feed(second.substr(0, 10), 0.15);  // split mid-event: counted when it completes
  s.Feed(second.substr(10), 0.20);
  s.Feed(Chunk(""), 0.30);  // empty text (e.g. a special token) is still a chunk, as in vLLM
  // A chunk with only the finish reason is not a token, but the completions E2EL ends there.
  s.Feed("data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"length\"}]}\n\n", 0.305);
  s.Feed("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n", 0.31);
  EXPECT_FALSE(s.done());
  s.Feed("data: [DONE]\n\n", 0.32);
  EXPECT_TRUE(s.done());
  RequestResult r;
  s.Finish(&r);
  EXPECT_TRUE(r.success) << r.error;
  EXPECT_DOUBLE_EQ(r.ttft_s, 0.10);
  EXPECT_EQ(r.chunk_s, (std::vector<double>{0.10, 0.20, 0.30}));
  EXPECT_DOUBLE_EQ(r.latency_s, 0.305);  // completions: the last event with choices
  EXPECT_EQ(r.output_tokens, 3);
  EXPECT_EQ(r.prompt_len, 7);
  EXPECT_EQ(r.generated_text, "Hello");
}

TEST(ResponseStreamTest, AnySplitOfTheBytesGivesTheSameResult) {
  const std::string stream = Chunk("a") + ": keep-alive\r\n\r\n" + Chunk("b") +
                             "data: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\r\n\r\ndata: [DONE]\n\n";
  for (size_t piece = 1; piece <= stream.size(); ++piece) {
    ResponseStream s(false);
    for (size_t i = 0; i < stream.size(); i += piece) s.Feed(std::string_view(stream).substr(i, piece), 0.1);
    RequestResult r;
    s.Finish(&r);
    EXPECT_TRUE(r.success) << piece << " " << r.error;
    EXPECT_EQ(r.generated_text, "ab") << piece;
    EXPECT_EQ(r.chunk_s.size(), 2u) << piece;
    EXPECT_EQ(r.output_tokens, 2) << piece;
  }
}

TEST(ResponseStreamTest, ChatDeltasAndLatencyToTheLastEvent) {
  ResponseStream s(/*chat=*/true);
  s.Feed("data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"}}]}\n\n", 0.05);
  s.Feed("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"},\"finish_reason\":\"stop\"}]}\n\n", 0.09);
  s.Feed("data: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\ndata: [DONE]\n\n", 0.12);
  RequestResult r;
  s.Finish(&r);
  EXPECT_TRUE(r.success);
  EXPECT_EQ(r.generated_text, "Hi there");
  EXPECT_DOUBLE_EQ(r.latency_s, 0.12);  // chat: vLLM's latency ends at the last event
  EXPECT_EQ(r.output_tokens, 2);
}

TEST(ResponseStreamTest, WithoutUsageTheChunksAreCounted) {
  ResponseStream s(false);
  s.Feed(Chunk("a") + Chunk("b") + "data: [DONE]\n\n", 0.1);
  RequestResult r;
  s.Finish(&r);
  EXPECT_TRUE(r.success);
  EXPECT_EQ(r.output_tokens, 2);
}

TEST(ResponseStreamTest, ErrorEventsAndCutStreamsFailWithTheirReason) {
  {
    ResponseStream s(false);
    s.Feed(Chunk("a") + "data: {\"error\":{\"message\":\"decode node lost\",\"type\":\"server_error\"}}\n\n", 0.1);
    EXPECT_TRUE(s.failed());
    RequestResult r;
    s.Finish(&r);
    EXPECT_FALSE(r.success);
    EXPECT_NE(r.error.find("decode node lost"), std::string::npos);
  }
  {
    ResponseStream s(false);
    s.Feed(Chunk("a") + "data: {\"choi", 0.1);  // the connection closed here
    RequestResult r;
    s.Finish(&r);
    EXPECT_FALSE(r.success);
    EXPECT_EQ(r.error, "the stream ended before [DONE]");
    EXPECT_DOUBLE_EQ(r.ttft_s, 0.1);
  }
  {
    ResponseStream s(false);
    s.Feed("data: not json\n\n", 0.1);
    RequestResult r;
    s.Finish(&r);
    EXPECT_FALSE(r.success);
    EXPECT_NE(r.error.find("not a JSON object"), std::string::npos);
  }
  {
    ResponseStream s(false);
    s.Feed("data: [DONE]\n\n", 0.1);
    RequestResult r;
    s.Finish(&r);
    EXPECT_FALSE(r.success);  // nothing to measure a TTFT from
  }
}

}  // namespace
}  // namespace tandem::loadgen
