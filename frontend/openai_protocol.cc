// Request parsing and validation. The response builders are in openai_response.cc.
#include "frontend/openai_protocol.h"

#include <cmath>
#include <limits>

namespace tandem {

using nlohmann::ordered_json;

ApiError InvalidRequest(std::string param, std::string message, std::string code) {
  ApiError e;
  e.http_status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

namespace {

using MaybeError = std::optional<ApiError>;

ApiError WrongType(const std::string& param, const char* expected, const ordered_json& got) {
  return InvalidRequest(param, "'" + param + "' must be " + expected + ", got " + got.type_name(), "invalid_type");
}

ApiError Unsupported(const std::string& param, const std::string& what) {
  return InvalidRequest(param, what + " is not supported by this server", "unsupported_parameter");
}

// A field that is absent or null counts as not given (OpenAI's SDKs send null for "unset").
const ordered_json* Field(const ordered_json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

// Integers may arrive as 5 or 5.0 (pydantic accepts both); 5.5 is not an integer.
MaybeError ReadInt(const ordered_json& body, const char* name, int64_t lo, int64_t hi, std::optional<int64_t>* out) {
  const ordered_json* v = Field(body, name);
  if (!v) return std::nullopt;
  int64_t x = 0;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidRequest(name, "'" + std::string(name) + "' is out of range");
    }
    x = static_cast<int64_t>(u);
  } else if (v->is_number_integer()) {
    x = v->get<int64_t>();
  } else if (v->is_number_float()) {
    const double d = v->get<double>();
    if (!(std::floor(d) == d) || std::fabs(d) > 9.0e15) return WrongType(name, "an integer", *v);
    x = static_cast<int64_t>(d);
  } else {
    return WrongType(name, "an integer", *v);
  }
  if (x < lo || x > hi) {
    return InvalidRequest(name, "'" + std::string(name) + "' must be in [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "], got " + std::to_string(x));
  }
  *out = x;
  return std::nullopt;
}

struct Range {
  double lo, hi;
  bool lo_open = false;
  const char* text;  // e.g. "in [0, 2]"
};

MaybeError ReadFloat(const ordered_json& body, const char* name, const Range& r, float* out) {
  const ordered_json* v = Field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) return WrongType(name, "a number", *v);
  const double d = v->get<double>();
  // The engine sees the float: a positive double below float's range (1e-50) rounds to 0, which
  // an open lower bound must refuse as well.
  const float f = static_cast<float>(d);
  if (!std::isfinite(d) || d < r.lo || d > r.hi || (r.lo_open && (d == r.lo || f == r.lo))) {
    return InvalidRequest(name, "'" + std::string(name) + "' must be " + r.text + ", got " + v->dump());
  }
  *out = f;
  return std::nullopt;
}

MaybeError ReadBool(const ordered_json& body, const char* name, bool* out) {
  const ordered_json* v = Field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) return WrongType(name, "a boolean", *v);
  *out = v->get<bool>();
  return std::nullopt;
}

MaybeError ReadTokenIds(const ordered_json& v, const std::string& param, int64_t vocab, std::vector<int32_t>* out) {
  out->clear();
  for (size_t i = 0; i < v.size(); ++i) {
    const ordered_json& t = v[i];
    if (!t.is_number_integer()) return WrongType(param + "[" + std::to_string(i) + "]", "an integer token id", t);
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id >= vocab) {
      return InvalidRequest(param, "token id " + std::to_string(id) + " in '" + param +
                                       "' is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
    out->push_back(static_cast<int32_t>(id));
  }
  return std::nullopt;
}

MaybeError ReadPrompt(const ordered_json& body, const ProtocolLimits& limits, GenerationRequest* out) {
  const ordered_json* v = Field(body, "prompt");
  if (!v) return InvalidRequest("prompt", "'prompt' is a required property", "missing_required_parameter");
  const ordered_json* p = v;
  // A batch of one is accepted as that one prompt; real batches would need n choices.
  if (v->is_array() && !v->empty() && (v->front().is_string() || v->front().is_array())) {
    if (v->size() != 1) return Unsupported("prompt", "more than one prompt per request");
    p = &v->front();
  }
  if (p->is_string()) {
    out->has_prompt_text = true;
    out->prompt_text = p->get<std::string>();
    return std::nullopt;
  }
  if (!p->is_array()) return WrongType("prompt", "a string or an array of token ids", *p);
  if (p->empty()) return InvalidRequest("prompt", "'prompt' must not be empty");
  return ReadTokenIds(*p, "prompt", limits.vocab_size, &out->prompt_ids);
}

MaybeError ReadMessages(const ordered_json& body, GenerationRequest* out) {
  const ordered_json* v = Field(body, "messages");
  if (!v) return InvalidRequest("messages", "'messages' is a required property", "missing_required_parameter");
  if (!v->is_array()) return WrongType("messages", "an array", *v);
  if (v->empty()) return InvalidRequest("messages", "'messages' must contain at least one message");
  out->messages = ordered_json::array();
  for (size_t i = 0; i < v->size(); ++i) {
    const std::string param = "messages[" + std::to_string(i) + "]";
    ordered_json m = (*v)[i];
    if (!m.is_object()) return WrongType(param, "an object", m);
    auto role = m.find("role");
    if (role == m.end()) return InvalidRequest(param + ".role", "'role' is a required property", "missing_required_parameter");
    if (!role->is_string() || role->get<std::string>().empty()) return WrongType(param + ".role", "a non-empty string", *role);
    auto content = m.find("content");
    if (content != m.end() && content->is_array()) {
      // Text parts joined by newlines, vLLM's "string" content format.
      std::string joined;
      for (size_t k = 0; k < content->size(); ++k) {
        const ordered_json& part = (*content)[k];
        const std::string pp = param + ".content[" + std::to_string(k) + "]";
        if (!part.is_object()) return WrongType(pp, "an object", part);
        auto type = part.find("type");
        if (type == part.end() || !type->is_string()) return InvalidRequest(pp + ".type", "content parts need a string 'type'");
        if (*type != "text") return Unsupported(pp + ".type", "content part type '" + type->get<std::string>() + "'");
        auto text = part.find("text");
        if (text == part.end() || !text->is_string()) return InvalidRequest(pp + ".text", "text parts need a string 'text'");
        if (k > 0) joined += '\n';
        joined += text->get<std::string>();
      }
      *content = joined;
    } else if (content != m.end() && !content->is_string() && !content->is_null()) {
      return WrongType(param + ".content", "a string, an array of text parts or null", *content);
    }
    out->messages.push_back(std::move(m));
  }
  return std::nullopt;
}

MaybeError ReadStop(const ordered_json& body, GenerationRequest* out) {
  const ordered_json* v = Field(body, "stop");
  if (!v) return std::nullopt;
  if (v->is_string()) {
    out->stop.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > kMaxStopStrings) {
      return InvalidRequest("stop", "'stop' may have at most " + std::to_string(kMaxStopStrings) + " strings, got " +
                                        std::to_string(v->size()));
    }
    for (const ordered_json& s : *v) {
      if (!s.is_string()) return WrongType("stop", "a string or an array of strings", s);
      out->stop.push_back(s.get<std::string>());
    }
  } else {
    return WrongType("stop", "a string or an array of strings", *v);
  }
  for (const std::string& s : out->stop) {
    if (s.empty()) return InvalidRequest("stop", "stop strings must not be empty");
  }
  return std::nullopt;
}

MaybeError ReadSampling(const ordered_json& body, const ProtocolLimits& limits, GenerationRequest* out) {
  SamplingParams& p = out->params;
  if (auto e = ReadFloat(body, "temperature", {0.0, 2.0, false, "in [0, 2]"}, &p.temperature)) return e;
  if (auto e = ReadFloat(body, "top_p", {0.0, 1.0, true, "in (0, 1]"}, &p.top_p)) return e;
  if (auto e = ReadFloat(body, "min_p", {0.0, 1.0, false, "in [0, 1]"}, &p.min_p)) return e;
  if (auto e = ReadFloat(body, "presence_penalty", {-2.0, 2.0, false, "in [-2, 2]"}, &p.presence_penalty)) return e;
  if (auto e = ReadFloat(body, "frequency_penalty", {-2.0, 2.0, false, "in [-2, 2]"}, &p.frequency_penalty)) return e;
  if (auto e = ReadFloat(body, "repetition_penalty", {0.0, 1e6, true, "> 0"}, &p.repetition_penalty)) return e;
  std::optional<int64_t> top_k, seed;
  if (auto e = ReadInt(body, "top_k", -1, std::numeric_limits<int32_t>::max(), &top_k)) return e;
  if (top_k) p.top_k = static_cast<int32_t>(*top_k);
  if (auto e = ReadInt(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), &seed)) return e;
  if (seed) p.seed = static_cast<uint64_t>(*seed);
  if (auto e = ReadBool(body, "ignore_eos", &p.ignore_eos)) return e;
  if (const ordered_json* v = Field(body, "stop_token_ids")) {
    if (!v->is_array()) return WrongType("stop_token_ids", "an array of token ids", *v);
    if (auto e = ReadTokenIds(*v, "stop_token_ids", limits.vocab_size, &p.stop_token_ids)) return e;
  }
  return std::nullopt;
}

MaybeError ReadMaxTokens(const ordered_json& body, GenerationRequest* out) {
  std::optional<int64_t> max_tokens, max_completion_tokens;
  const int64_t hi = std::numeric_limits<int32_t>::max();
  if (auto e = ReadInt(body, "max_tokens", 1, hi, &max_tokens)) return e;
  if (out->kind == ApiKind::kChat) {
    if (auto e = ReadInt(body, "max_completion_tokens", 1, hi, &max_completion_tokens)) return e;
  }
  // max_completion_tokens is the newer name; it wins when both are given, as in vLLM.
  if (max_completion_tokens) {
    out->max_tokens = static_cast<int32_t>(*max_completion_tokens);
  } else if (max_tokens) {
    out->max_tokens = static_cast<int32_t>(*max_tokens);
  }
  return std::nullopt;
}

MaybeError ReadStreaming(const ordered_json& body, GenerationRequest* out) {
  if (auto e = ReadBool(body, "stream", &out->stream)) return e;
  if (const ordered_json* v = Field(body, "stream_options")) {
    if (!v->is_object()) return WrongType("stream_options", "an object", *v);
    if (!out->stream) return InvalidRequest("stream_options", "'stream_options' is only allowed when 'stream' is true");
    if (auto e = ReadBool(*v, "include_usage", &out->include_usage)) {
      e->param = "stream_options.include_usage";
      return e;
    }
  }
  return std::nullopt;
}

MaybeError ReadUnsupported(const ordered_json& body, ApiKind kind) {
  std::optional<int64_t> n;
  if (auto e = ReadInt(body, "n", 1, std::numeric_limits<int32_t>::max(), &n)) return e;
  if (n && *n != 1) return Unsupported("n", "n > 1");
  if (kind == ApiKind::kCompletion) {
    bool echo = false;
    if (auto e = ReadBool(body, "echo", &echo)) return e;
    if (echo) return Unsupported("echo", "echo");
    if (const ordered_json* v = Field(body, "logprobs")) {
      if (!v->is_number_integer()) return WrongType("logprobs", "an integer or null", *v);
      return Unsupported("logprobs", "logprobs");
    }
  } else {
    bool logprobs = false;
    if (auto e = ReadBool(body, "logprobs", &logprobs)) return e;
    if (logprobs) return Unsupported("logprobs", "logprobs");
    if (const ordered_json* v = Field(body, "top_logprobs")) {
      if (!v->is_number_integer()) return WrongType("top_logprobs", "an integer or null", *v);
      if (v->get<int64_t>() != 0) return Unsupported("top_logprobs", "top_logprobs");
    }
  }
  if (const ordered_json* v = Field(body, "user")) {
    if (!v->is_string()) return WrongType("user", "a string", *v);
  }
  return std::nullopt;
}

// vLLM's "cache_salt": requests share cached prefixes only with requests of the same salt.
MaybeError ReadCacheSalt(const ordered_json& body, GenerationRequest* out) {
  if (const ordered_json* v = Field(body, "cache_salt")) {
    if (!v->is_string() || v->get<std::string>().empty()) return WrongType("cache_salt", "a non-empty string", *v);
    out->cache_salt = v->get<std::string>();
  }
  return std::nullopt;
}

// Tandem's extension: "slo_class": NAME and "slo": {"ttft_ms": X, "tpot_ms": Y}. Whether the
// class exists is the caller's question (it has the --slo-config file).
MaybeError ReadSlo(const ordered_json& body, GenerationRequest* out) {
  if (const ordered_json* v = Field(body, "slo_class")) {
    if (!v->is_string() || v->get<std::string>().empty()) return WrongType("slo_class", "a non-empty string", *v);
    out->slo_class = v->get<std::string>();
  }
  const ordered_json* slo = Field(body, "slo");
  if (!slo) return std::nullopt;
  if (!slo->is_object()) return WrongType("slo", "an object with ttft_ms and/or tpot_ms", *slo);
  for (const auto& item : slo->items()) {
    if (item.key() != "ttft_ms" && item.key() != "tpot_ms") {
      return InvalidRequest("slo." + item.key(), "unknown SLO target '" + item.key() + "' (known: ttft_ms, tpot_ms)");
    }
  }
  const Range range{0.0, 86400000.0, true, "a positive number of milliseconds, at most a day"};
  for (const auto& [name, target] : {std::pair{"ttft_ms", &out->slo_ttft_ms}, std::pair{"tpot_ms", &out->slo_tpot_ms}}) {
    float value = 0;
    if (auto e = ReadFloat(*slo, name, range, &value)) {
      e->param = std::string("slo.") + name;
      return e;
    }
    *target = value;
  }
  if (out->slo_ttft_ms <= 0 && out->slo_tpot_ms <= 0) return InvalidRequest("slo", "'slo' needs ttft_ms and/or tpot_ms");
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> ParseGenerationRequest(const ordered_json& body, ApiKind kind, const ProtocolLimits& limits,
                                               GenerationRequest* out) {
  *out = GenerationRequest();
  out->kind = kind;
  if (!body.is_object()) return InvalidRequest("", "the request body must be a JSON object", "invalid_type");
  if (const ordered_json* v = Field(body, "model")) {
    if (!v->is_string()) return WrongType("model", "a string", *v);
    out->model = v->get<std::string>();
  }
  if (kind == ApiKind::kCompletion) {
    if (auto e = ReadPrompt(body, limits, out)) return e;
  } else {
    if (auto e = ReadMessages(body, out)) return e;
  }
  if (auto e = ReadMaxTokens(body, out)) return e;
  if (auto e = ReadSampling(body, limits, out)) return e;
  if (auto e = ReadStop(body, out)) return e;
  if (auto e = ReadStreaming(body, out)) return e;
  if (auto e = ReadUnsupported(body, kind)) return e;
  if (auto e = ReadSlo(body, out)) return e;
  if (auto e = ReadCacheSalt(body, out)) return e;
  return std::nullopt;
}

std::optional<ApiError> ResolveMaxTokens(const GenerationRequest& request, size_t prompt_tokens, int64_t max_model_len,
                                         int32_t* max_tokens) {
  const int64_t prompt = static_cast<int64_t>(prompt_tokens);
  const char* param = request.kind == ApiKind::kChat ? "messages" : "prompt";
  const char* where = request.kind == ApiKind::kChat ? "messages" : "prompt";
  if (prompt >= max_model_len) {
    return InvalidRequest(param,
                          "This model's maximum context length is " + std::to_string(max_model_len) +
                              " tokens. However, your " + where + " has " + std::to_string(prompt) +
                              " tokens, which leaves no room for the completion. Please reduce the length of the " +
                              where + ".",
                          "context_length_exceeded");
  }
  int64_t want = 0;
  if (request.max_tokens) {
    want = *request.max_tokens;
  } else if (request.kind == ApiKind::kCompletion) {
    want = std::min<int64_t>(kDefaultCompletionMaxTokens, max_model_len - prompt);
  } else {
    want = max_model_len - prompt;
  }
  if (prompt + want > max_model_len) {
    return InvalidRequest(request.max_tokens ? (request.kind == ApiKind::kChat ? "max_completion_tokens" : "max_tokens") : param,
                          "This model's maximum context length is " + std::to_string(max_model_len) +
                              " tokens. However, you requested " + std::to_string(prompt + want) + " tokens (" +
                              std::to_string(prompt) + " in the " + where + ", " + std::to_string(want) +
                              " in the completion). Please reduce the length of the " + where + " or completion.",
                          "context_length_exceeded");
  }
  *max_tokens = static_cast<int32_t>(want);
  return std::nullopt;
}

}  // namespace tandem
