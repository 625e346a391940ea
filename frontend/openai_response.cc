// Response, stream chunk and error bodies (declared in openai_protocol.h). Key order follows
// OpenAI's own responses, which is why these are ordered_json.
#include "frontend/openai_protocol.h"

namespace tandem {

using nlohmann::ordered_json;

namespace {

ordered_json NullIfEmpty(const std::string& s) { return s.empty() ? ordered_json(nullptr) : ordered_json(s); }

ordered_json Envelope(const ResponseMeta& meta, bool chunk) {
  ordered_json j;
  j["id"] = meta.id;
  if (meta.kind == ApiKind::kChat) {
    j["object"] = chunk ? "chat.completion.chunk" : "chat.completion";
  } else {
    j["object"] = "text_completion";
  }
  j["created"] = meta.created;
  j["model"] = meta.model;
  return j;
}

ordered_json Choice(const ResponseMeta& meta, bool chunk, ordered_json delta_or_text, ordered_json finish_reason) {
  ordered_json c;
  c["index"] = 0;
  if (meta.kind == ApiKind::kChat) {
    c[chunk ? "delta" : "message"] = std::move(delta_or_text);
  } else {
    c["text"] = std::move(delta_or_text);
  }
  c["logprobs"] = nullptr;
  c["finish_reason"] = std::move(finish_reason);
  return c;
}

ordered_json Chunk(const ResponseMeta& meta, ordered_json delta_or_text, ordered_json finish_reason, bool include_usage) {
  ordered_json j = Envelope(meta, true);
  j["choices"] = ordered_json::array({Choice(meta, true, std::move(delta_or_text), std::move(finish_reason))});
  if (include_usage) j["usage"] = nullptr;
  return j;
}

}  // namespace

ordered_json ApiError::ToJson() const {
  ordered_json e;
  e["message"] = message;
  e["type"] = type;
  e["param"] = NullIfEmpty(param);
  e["code"] = NullIfEmpty(code);
  return ordered_json{{"error", std::move(e)}};
}

ordered_json UsageJson(const Usage& usage) {
  ordered_json u;
  u["prompt_tokens"] = usage.prompt_tokens;
  u["completion_tokens"] = usage.completion_tokens;
  u["total_tokens"] = usage.prompt_tokens + usage.completion_tokens;
  if (usage.cached_tokens > 0) u["prompt_tokens_details"] = ordered_json{{"cached_tokens", usage.cached_tokens}};
  if (usage.slo) {
    if (!usage.slo->slo_class.empty()) u["slo_class"] = usage.slo->slo_class;
    u["ttft_ms"] = usage.slo->ttft_ms >= 0 ? ordered_json(usage.slo->ttft_ms) : ordered_json(nullptr);
    u["tpot_ms"] = usage.slo->tpot_ms;
    u["slo_met"] = usage.slo->slo_met;
  }
  return u;
}

ordered_json BuildResponse(const ResponseMeta& meta, const std::string& text, std::string_view finish_reason,
                           const Usage& usage) {
  ordered_json j = Envelope(meta, false);
  ordered_json body;
  if (meta.kind == ApiKind::kChat) {
    body["role"] = "assistant";
    body["content"] = text;
  } else {
    body = text;
  }
  j["choices"] = ordered_json::array({Choice(meta, false, std::move(body), std::string(finish_reason))});
  j["usage"] = UsageJson(usage);
  return j;
}

ordered_json BuildRoleChunk(const ResponseMeta& meta, bool include_usage) {
  ordered_json delta;
  delta["role"] = "assistant";
  delta["content"] = "";
  return Chunk(meta, std::move(delta), nullptr, include_usage);
}

ordered_json BuildTextChunk(const ResponseMeta& meta, const std::string& text, bool include_usage) {
  if (meta.kind == ApiKind::kChat) return Chunk(meta, ordered_json{{"content", text}}, nullptr, include_usage);
  return Chunk(meta, text, nullptr, include_usage);
}

ordered_json BuildFinishChunk(const ResponseMeta& meta, std::string_view finish_reason, bool include_usage) {
  ordered_json empty = meta.kind == ApiKind::kChat ? ordered_json::object() : ordered_json("");
  return Chunk(meta, std::move(empty), std::string(finish_reason), include_usage);
}

ordered_json BuildUsageChunk(const ResponseMeta& meta, const Usage& usage) {
  ordered_json j = Envelope(meta, true);
  j["choices"] = ordered_json::array();
  j["usage"] = UsageJson(usage);
  return j;
}

std::string DumpJson(const ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace tandem
