#include "common/rpc/frame_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/rpc/wire_status.h"

namespace tandem::rpc {
namespace {

proto::Envelope MakeChunk(const std::string& id, int n_tokens) {
  proto::Envelope env;
  env.set_protocol_version(kProtocolVersion);
  auto* chunk = env.mutable_token_chunk();
  chunk->set_request_id(id);
  for (int i = 0; i < n_tokens; ++i) chunk->add_token_ids(1000 + i);
  chunk->set_finished(n_tokens % 2 == 0);
  chunk->set_finish_reason(proto::FINISH_REASON_LENGTH);
  return env;
}

std::string Frame(const proto::Envelope& env) {
  auto frame = EncodeFrame(env, kDefaultMaxFrameBytes);
  EXPECT_TRUE(frame.ok()) << frame.status().ToString();
  return frame.ok() ? *frame : std::string();
}

// Built with += : GCC 12 raises a false -Wrestrict on "literal" + std::to_string(...).
std::string Id(int i) {
  std::string id = "r";
  id += std::to_string(i);
  return id;
}

std::string BigEndian(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

TEST(FrameCodecTest, HeaderIsBigEndianLengthOfTheBody) {
  const proto::Envelope env = MakeChunk("r1", 300);
  const std::string frame = Frame(env);
  ASSERT_EQ(frame.size(), kFrameHeaderBytes + env.ByteSizeLong());
  EXPECT_EQ(frame.substr(0, 4), BigEndian(static_cast<uint32_t>(env.ByteSizeLong())));
  EXPECT_EQ(DecodeFrameLength(frame), env.ByteSizeLong());
  EXPECT_GT(env.ByteSizeLong(), 255u);  // so the test exercises more than one length byte
}

TEST(FrameCodecTest, RoundTripsEveryFieldOfAPrefillRequest) {
  proto::Envelope env;
  env.set_protocol_version(kProtocolVersion);
  env.set_sent_unix_us(1'700'000'000'000'000);
  auto* req = env.mutable_prefill_request();
  req->set_request_id("req-42");
  for (int t : {1, 15043, 3186, 2}) req->add_prompt_token_ids(t);
  auto* s = req->mutable_sampling();
  s->set_temperature(0.7f);
  s->set_top_p(0.9f);
  s->set_top_k(40);
  s->set_min_p(0.05f);
  s->set_repetition_penalty(1.1f);
  s->set_presence_penalty(0.5f);
  s->set_frequency_penalty(0.25f);
  s->set_seed(1234);
  s->set_max_tokens(128);
  s->add_stop_token_ids(2);
  s->set_ignore_eos(true);
  req->set_decode_node_id("decode-0");
  req->set_arrival_unix_us(10);
  req->set_deadline_unix_us(20);

  FrameDecoder decoder;
  decoder.Append(Frame(env));
  proto::Envelope out;
  auto got = decoder.Next(&out);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(*got);
  EXPECT_EQ(out.SerializeAsString(), env.SerializeAsString());
  EXPECT_TRUE(out.prefill_request().sampling().has_seed());
  EXPECT_EQ(out.prefill_request().sampling().seed(), 1234u);
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

TEST(FrameCodecTest, PartialReadsOneByteAtATime) {
  const std::string a = Frame(MakeChunk("a", 5));
  const std::string b = Frame(MakeChunk("b", 9));
  const std::string stream = a + b;
  FrameDecoder decoder;
  std::vector<std::string> ids;
  proto::Envelope out;
  for (size_t i = 0; i < stream.size(); ++i) {
    decoder.Append(stream.data() + i, 1);
    auto got = decoder.Next(&out);
    ASSERT_TRUE(got.ok());
    if (*got) {
      ids.push_back(out.token_chunk().request_id());
      // A frame completes exactly at its last byte, never earlier.
      EXPECT_TRUE(i + 1 == a.size() || i + 1 == stream.size()) << "completed at byte " << i;
    }
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b"}));
}

TEST(FrameCodecTest, HeaderSplitAcrossReads) {
  const std::string frame = Frame(MakeChunk("split", 3));
  FrameDecoder decoder;
  proto::Envelope out;
  decoder.Append(frame.substr(0, 2));
  EXPECT_FALSE(*decoder.Next(&out));
  decoder.Append(frame.substr(2, 3));  // rest of header + one body byte
  EXPECT_FALSE(*decoder.Next(&out));
  decoder.Append(frame.substr(5));
  ASSERT_TRUE(*decoder.Next(&out));
  EXPECT_EQ(out.token_chunk().request_id(), "split");
}

TEST(FrameCodecTest, ManyFramesInOneRead) {
  std::string stream;
  for (int i = 0; i < 100; ++i) stream += Frame(MakeChunk(Id(i), i % 7));
  const std::string tail = Frame(MakeChunk("tail", 4));
  stream += tail.substr(0, 6);  // and a partial one at the end
  FrameDecoder decoder;
  decoder.Append(stream);
  proto::Envelope out;
  int n = 0;
  while (true) {
    auto got = decoder.Next(&out);
    ASSERT_TRUE(got.ok());
    if (!*got) break;
    EXPECT_EQ(out.token_chunk().request_id(), Id(n));
    EXPECT_EQ(out.token_chunk().token_ids_size(), n % 7);
    ++n;
  }
  EXPECT_EQ(n, 100);
  EXPECT_EQ(decoder.buffered_bytes(), 6u);
  decoder.Append(tail.substr(6));
  ASSERT_TRUE(*decoder.Next(&out));
  EXPECT_EQ(out.token_chunk().request_id(), "tail");
}

TEST(FrameCodecTest, EncodeRefusesOversizeFrame) {
  const proto::Envelope env = MakeChunk("big", 1000);  // > 1000 bytes of varints
  std::string out = "prefix";
  Status s = AppendFrame(env, /*max_frame_bytes=*/512, &out);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("exceeds the limit of 512"), std::string::npos) << s.message();
  EXPECT_EQ(out, "prefix");                                      // nothing appended
  EXPECT_TRUE(AppendFrame(env, env.ByteSizeLong(), &out).ok());  // exactly at the limit is fine
}

TEST(FrameCodecTest, DecoderRefusesOversizeLengthBeforeTheBodyArrives) {
  const std::string frame = Frame(MakeChunk("big", 1000));
  FrameDecoder decoder(/*max_frame_bytes=*/512);
  decoder.Append(frame.substr(0, kFrameHeaderBytes));  // header only
  proto::Envelope out;
  auto got = decoder.Next(&out);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(got.status().message().find("limit of 512"), std::string::npos);
  // Sticky: more bytes do not revive the stream.
  decoder.Append(frame.substr(kFrameHeaderBytes));
  EXPECT_EQ(decoder.Next(&out).status().code(), StatusCode::kResourceExhausted);
}

TEST(FrameCodecTest, GarbageLengthIsRefusedNotBuffered) {
  FrameDecoder decoder;  // default 64 MiB limit
  decoder.Append(std::string("\xFF\xFF\xFF\xFF", 4) + "junk");
  proto::Envelope out;
  auto got = decoder.Next(&out);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(got.status().message().find("4294967295"), std::string::npos);
}

TEST(FrameCodecTest, GarbageBodyIsDataLoss) {
  // A valid length followed by bytes that are not a protobuf (field 0 / bad wire type).
  const std::string body = "\x07\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF";
  FrameDecoder decoder;
  decoder.Append(BigEndian(static_cast<uint32_t>(body.size())) + body);
  proto::Envelope out;
  auto got = decoder.Next(&out);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
}

TEST(FrameCodecTest, EmptyFrameDecodesToEnvelopeWithoutPayload) {
  // Legal at the codec level; the connection refuses it (no version, no payload).
  FrameDecoder decoder;
  decoder.Append(BigEndian(0));
  proto::Envelope out;
  out.mutable_abort()->set_request_id("stale");
  auto got = decoder.Next(&out);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(*got);
  EXPECT_EQ(out.payload_case(), proto::Envelope::PAYLOAD_NOT_SET);
  EXPECT_EQ(out.protocol_version(), 0u);
}

TEST(FrameCodecTest, ResetClearsErrorAndBuffer) {
  FrameDecoder decoder(16);
  decoder.Append(BigEndian(1000));
  proto::Envelope out;
  EXPECT_FALSE(decoder.Next(&out).ok());
  decoder.Reset();
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
  proto::Envelope small;
  small.mutable_abort()->set_request_id("x");
  decoder.Append(Frame(small));
  auto got = decoder.Next(&out);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got);
}

TEST(WireStatusTest, EveryStatusCodeRoundTrips) {
  for (int c = 0; c <= static_cast<int>(StatusCode::kInternal); ++c) {
    const auto code = static_cast<StatusCode>(c);
    EXPECT_EQ(FromProtoErrorCode(ToProtoErrorCode(code)), code) << c;
    EXPECT_EQ(static_cast<int>(ToProtoErrorCode(code)), c) << "enums must share numbers";
  }
  EXPECT_EQ(FromProtoErrorCode(static_cast<proto::ErrorCode>(999)), StatusCode::kInternal);
  const Status s = StatusFromError(MakeErrorEnvelope(NotFoundError("no such"), "r7").error());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "request r7: no such");
}

}  // namespace
}  // namespace tandem::rpc
