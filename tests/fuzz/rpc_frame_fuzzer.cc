// libFuzzer target: arbitrary bytes as what a peer sends on a control-plane connection, fed in
// pieces of a fuzzer-chosen size to rpc::FrameDecoder (4-byte big-endian length + serialized
// proto::Envelope), as Connection::OnRead does. Every decoded Envelope then goes through what the
// receiving side does before any service logic: the transport's checks (version, payload kind,
// its name for logs; Hello's version; Error and Goodbye to a Status) and the nodes' conversions
// at the edge (sampling parameters and their validation, finish reasons, wire timestamps to the
// steady clock). Nothing may crash or trip a sanitizer, and:
//  - the decoder never holds more than one frame's worth of bytes (header + limit) once drained,
//    and an error is sticky;
//  - a decoded Envelope re-encodes to a frame that decodes to the same message.
//
// Input: byte 0 picks the frame limit (bit 0: the default 64 MiB, else 256 bytes) and byte 1
// the read size; the rest is the byte stream.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/rpc/frame_codec.h"
#include "common/rpc/wire_status.h"
#include "engine/request_rules.h"
#include "proto/wire_model.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using tandem::proto::Envelope;

constexpr size_t kSmallFrameLimit = 256;

std::string NameOf(const Envelope& env) {
  if (env.payload_case() == Envelope::PAYLOAD_NOT_SET) return "an empty envelope";
  const auto* field = Envelope::descriptor()->FindFieldByNumber(env.payload_case());
  return field != nullptr ? field->name() : "payload #" + std::to_string(env.payload_case());
}

// A request as a node receives it (prefill_service.cc, decode_service.cc): the parameters are
// converted and the request validated like any other (the router draws seeds, so they are required).
void CheckRequest(const google::protobuf::RepeatedField<int32_t>& prompt, const tandem::proto::SamplingParams& p,
                  int64_t arrival_unix_us) {
  const tandem::SamplingParams params = tandem::SamplingFromProto(p);
  tandem::RequestLimits limits;
  limits.vocab_size = 32000;
  limits.context_window = 4096;
  limits.require_seed = true;
  const std::vector<int32_t> ids(prompt.begin(), prompt.end());
  const tandem::Status st = tandem::ValidateRequest(ids, params, limits);
  if (st.ok()) {
    FUZZ_CHECK(params.max_tokens >= 1 && params.top_p > 0.0f && params.top_p <= 1.0f);
    FUZZ_CHECK(params.repetition_penalty > 0.0f);
  }
  (void)tandem::UnixToSteadyMicros(arrival_unix_us);
}

// What the receiving side does with an Envelope before its services see it.
void Receive(const Envelope& env) {
  (void)NameOf(env);
  (void)(env.protocol_version() == tandem::rpc::kProtocolVersion);
  switch (env.payload_case()) {
    case Envelope::kHello:
      (void)(env.hello().protocol_version() == tandem::rpc::kProtocolVersion);
      break;
    case Envelope::kHelloAck:
      (void)(env.hello_ack().hello().protocol_version() == tandem::rpc::kProtocolVersion);
      break;
    case Envelope::kGoodbye:
      (void)tandem::rpc::FromProtoErrorCode(env.goodbye().code());
      break;
    case Envelope::kError: {
      const tandem::Status st = tandem::rpc::StatusFromError(env.error());
      FUZZ_CHECK(st.ok() == (env.error().code() == tandem::proto::ERROR_CODE_OK));
      break;
    }
    case Envelope::kPrefillRequest: {
      const auto& m = env.prefill_request();
      CheckRequest(m.prompt_token_ids(), m.sampling(), m.arrival_unix_us());
      (void)tandem::UnixToSteadyMicros(m.deadline_unix_us());
      break;
    }
    case Envelope::kReserveKv: {
      const auto& m = env.reserve_kv();
      CheckRequest(m.prompt_token_ids(), m.sampling(), m.arrival_unix_us());
      break;
    }
    case Envelope::kFirstToken: {
      const auto& m = env.first_token();
      (void)tandem::FinishReasonFromProto(m.finish_reason());
      (void)tandem::UnixToSteadyMicros(m.prefill_start_unix_us());
      (void)tandem::UnixToSteadyMicros(m.first_token_unix_us());
      break;
    }
    case Envelope::kTokenChunk: {
      const auto& m = env.token_chunk();
      (void)tandem::FinishReasonFromProto(m.finish_reason());
      (void)tandem::UnixToSteadyMicros(m.decode_admitted_unix_us());
      (void)tandem::UnixToSteadyMicros(m.transfer_start_unix_us());
      (void)tandem::UnixToSteadyMicros(m.transfer_end_unix_us());
      break;
    }
    case Envelope::kKvReady: {
      const auto& m = env.kv_ready();
      (void)tandem::UnixToSteadyMicros(m.transfer_start_unix_us());
      (void)tandem::UnixToSteadyMicros(m.completed_unix_us());
      break;
    }
    default:
      break;
  }
}

// Re-encoding what was decoded gives back the same message (unknown fields included). The
// encoding may be longer than what arrived (a negative int32 sent in 5 bytes is written in 10),
// so the frame limit is left out here.
void CheckRoundTrip(const Envelope& env) {
  tandem::Result<std::string> frame = tandem::rpc::EncodeFrame(env, tandem::rpc::kMaxRepresentableFrameBytes);
  FUZZ_CHECK(frame.ok());
  FUZZ_CHECK(tandem::rpc::DecodeFrameLength(*frame) + tandem::rpc::kFrameHeaderBytes == frame->size());
  tandem::rpc::FrameDecoder again(tandem::rpc::kMaxRepresentableFrameBytes);
  again.Append(*frame);
  Envelope copy;
  tandem::Result<bool> got = again.Next(&copy);
  FUZZ_CHECK(got.ok() && *got && again.buffered_bytes() == 0);
  // Bytes, not MessageDifferencer: a NaN float (any bit pattern) must come back as it went.
  FUZZ_CHECK(copy.SerializeAsString() == env.SerializeAsString());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t max_frame_bytes = (data[0] & 1) ? tandem::rpc::kDefaultMaxFrameBytes : kSmallFrameLimit;
  const size_t read_size = 1 + data[1];
  std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  tandem::rpc::FrameDecoder decoder(max_frame_bytes);
  while (!stream.empty()) {
    const size_t chunk = std::min(read_size, stream.size());
    decoder.Append(stream.substr(0, chunk));
    stream.remove_prefix(chunk);
    Envelope env;
    while (true) {
      tandem::Result<bool> got = decoder.Next(&env);
      if (!got.ok()) {
        const tandem::StatusCode code = got.status().code();
        FUZZ_CHECK(code == tandem::StatusCode::kResourceExhausted || code == tandem::StatusCode::kDataLoss);
        FUZZ_CHECK(!decoder.Next(&env).ok());  // sticky
        return 0;                              // Connection::OnRead fails the connection
      }
      if (!*got) break;
      Receive(env);
      CheckRoundTrip(env);
    }
    FUZZ_CHECK(decoder.buffered_bytes() < tandem::rpc::kFrameHeaderBytes + max_frame_bytes);
  }
  return 0;
}
