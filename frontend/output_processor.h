// Turns one request's stream of token ids into OpenAI text: incremental detokenization
// (special tokens skipped, the prompt as context), stop strings on the text, the output token
// count and the client-visible finish reason. The router's per-request state, independent of
// HTTP so that the colocated and the disaggregated paths share it.
//
// Counting follows vLLM: every token the model produced up to and including the one that
// completed a stop string (or was EOS / a stop token) counts as a completion token; tokens after
// a stop-string match are dropped.
// Threading: one per request, used by one thread at a time (the connection's strand).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "slo/request_record.h"
#include "tokenizer/incremental_decoder.h"
#include "tokenizer/tokenizer.h"
#include "frontend/stop_strings.h"

namespace tandem {

class OutputProcessor {
 public:
  // REQUIRES: `tokenizer` outlives this object.
  OutputProcessor(const Tokenizer& tokenizer, std::span<const int32_t> prompt, std::vector<std::string> stop);

  // Adds tokens from one event; `engine_finish` is the event's finish reason (kStop, kLength
  // end the text; kNone means more follow). Returns the text now safe to emit.
  std::string Add(std::span<const int32_t> tokens, FinishReason engine_finish);

  // True once the client-visible output is complete: a stop string matched (the engine may
  // still be running the request and should be aborted), or the engine finished it.
  bool finished() const { return finished_; }
  bool stopped_by_string() const { return matcher_.stopped(); }
  FinishReason finish_reason() const { return finish_reason_; }
  int32_t num_output_tokens() const { return num_output_tokens_; }

 private:
  IncrementalDecoder decoder_;
  StopStringMatcher matcher_;
  bool finished_ = false;
  FinishReason finish_reason_ = FinishReason::kNone;
  int32_t num_output_tokens_ = 0;
};

}  // namespace tandem
