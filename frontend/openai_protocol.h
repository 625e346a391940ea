// The OpenAI wire format: request parsing and validation for /v1/completions and
// /v1/chat/completions, and the response, stream chunk and error bodies, field for field as
// OpenAI (and vLLM, for its extensions: top_k, min_p, repetition_penalty, stop_token_ids,
// ignore_eos) write them. Pure functions of JSON: no I/O, no tokenizer, no threads.
//
// Validation: every known field is checked for type and range; an error names the field in
// `param` and says what was expected. Unknown fields are ignored, as vLLM does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "slo/request_record.h"
#include "model/sampling_params.h"

namespace tandem {

enum class ApiKind { kCompletion, kChat };

// An error answered to the client as {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" is written as null
  std::string code;   // "" is written as null
  int retry_after_s = 0;  // > 0: a Retry-After header (429: when to try again)

  nlohmann::ordered_json ToJson() const;
};

ApiError InvalidRequest(std::string param, std::string message, std::string code = "invalid_value");

struct ProtocolLimits {
  int64_t vocab_size = 0;     // token ids (prompt, stop_token_ids) must be below this
  int64_t max_model_len = 0;  // the context window: prompt + max_tokens
};

inline constexpr size_t kMaxStopStrings = 4;
inline constexpr int32_t kDefaultCompletionMaxTokens = 16;  // OpenAI's and vLLM's default

struct GenerationRequest {
  ApiKind kind = ApiKind::kCompletion;
  std::string model;  // "" when the client sent none
  // Completions: exactly one of prompt_text (has_prompt_text) or prompt_ids.
  bool has_prompt_text = false;
  std::string prompt_text;
  std::vector<int32_t> prompt_ids;
  // Chat: the messages, with array-of-text-parts content joined into one string.
  nlohmann::ordered_json messages;
  std::optional<int32_t> max_tokens;  // max_tokens, or max_completion_tokens for chat
  SamplingParams params;              // params.max_tokens is set by ResolveMaxTokens
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;
  // Tandem's SLO extension: "slo_class" and/or "slo": {"ttft_ms", "tpot_ms"} (0: not given).
  std::string slo_class;
  double slo_ttft_ms = 0;
  double slo_tpot_ms = 0;
  std::string cache_salt;  // vLLM's "cache_salt": prefix-cache isolation between tenants
};

// Parses a request body (already known to be a JSON object). nullopt on success.
std::optional<ApiError> ParseGenerationRequest(const nlohmann::ordered_json& body, ApiKind kind,
                                               const ProtocolLimits& limits, GenerationRequest* out);

// The max_tokens to run with: the request's, else the default (completions: 16; chat: the rest
// of the context window, as vLLM). An error (400, naming both numbers) when the prompt leaves no
// room or prompt + max_tokens exceeds the window.
std::optional<ApiError> ResolveMaxTokens(const GenerationRequest& request, size_t prompt_tokens,
                                         int64_t max_model_len, int32_t* max_tokens);

// --- responses ---

struct ResponseMeta {
  ApiKind kind = ApiKind::kCompletion;
  std::string id;     // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// Measured against the request's SLO, reported in usage when it had one (Tandem's extension).
struct SloReport {
  std::string slo_class;  // "" when the targets came from the request alone
  double ttft_ms = -1;
  double tpot_ms = 0;
  bool slo_met = false;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::optional<SloReport> slo;
  int64_t cached_tokens = 0;  // > 0: usage.prompt_tokens_details.cached_tokens, as OpenAI's
};

nlohmann::ordered_json UsageJson(const Usage& usage);

// The non-streaming body.
nlohmann::ordered_json BuildResponse(const ResponseMeta& meta, const std::string& text,
                                     std::string_view finish_reason, const Usage& usage);
// The chat stream's first chunk: delta {"role": "assistant", "content": ""}.
nlohmann::ordered_json BuildRoleChunk(const ResponseMeta& meta, bool include_usage);
// A text delta (finish_reason null).
nlohmann::ordered_json BuildTextChunk(const ResponseMeta& meta, const std::string& text, bool include_usage);
// The last choice chunk: empty delta (chat) or empty text (completions) with the finish reason.
nlohmann::ordered_json BuildFinishChunk(const ResponseMeta& meta, std::string_view finish_reason,
                                        bool include_usage);
// stream_options.include_usage: the final chunk, with empty choices.
nlohmann::ordered_json BuildUsageChunk(const ResponseMeta& meta, const Usage& usage);

// Compact JSON that never throws: invalid UTF-8 (there should be none) becomes U+FFFD.
std::string DumpJson(const nlohmann::ordered_json& j);

}  // namespace tandem
