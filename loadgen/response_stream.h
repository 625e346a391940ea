// One streamed OpenAI-style response as the benchmark reads it: body bytes in (in whatever pieces
// the socket gives), the request's result fields out. Follows vLLM's client
// (vllm/benchmarks/lib/endpoint_request_func.py) so the numbers compare:
//   - every event whose "choices" is non-empty is a chunk: the first sets TTFT, each next one
//     adds an inter-token gap (text may be empty, e.g. a special token), except a last chunk
//     that carries only a finish_reason (OpenAI's and Tandem's servers send one; vLLM's own
//     puts the reason on the last token's chunk): it is not a token, and vLLM's client, which
//     counts it, would add a near-zero gap per request to ITL;
//   - "usage.completion_tokens" (stream_options.include_usage) gives the output token count;
//     without it the chunks are counted;
//   - E2EL ends at the last event with choices (that finish chunk included) on /v1/completions
//     and at the last event (the usage chunk included) on /v1/chat/completions, as vLLM's two
//     request functions do.
// Stricter than vLLM, so that failures are counted with their reason: an {"error": ...} event,
// an event that is not JSON, and a stream that ends before "data: [DONE]" fail the request.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/sse.h"
#include "loadgen/metrics.h"

namespace tandem::loadgen {

class ResponseStream {
 public:
  explicit ResponseStream(bool chat) : chat_(chat) {}

  // Body bytes that arrived `now_s` seconds after the request was sent.
  void Feed(std::string_view bytes, double now_s);
  // The stream is over (the connection closed or [DONE] came); fills `r`'s outcome fields:
  // success, error, ttft_s, latency_s, chunk_s, output_tokens, generated_text, cached_tokens,
  // and prompt_len from usage when `r` has none.
  void Finish(RequestResult* r) const;

  bool done() const { return done_; }  // [DONE] seen
  bool failed() const { return !error_.empty(); }
  int64_t chunks() const { return static_cast<int64_t>(chunk_s_.size()); }

 private:
  void OnEvent(const std::string& data, double now_s);

  bool chat_;
  SseParser sse_;
  std::vector<double> chunk_s_;
  double last_event_s_ = -1;
  double last_choice_s_ = -1;
  int32_t completion_tokens_ = -1;
  int32_t prompt_tokens_ = -1;
  int32_t cached_tokens_ = 0;
  std::string text_;
  std::string error_;
  bool done_ = false;
};

}  // namespace tandem::loadgen
