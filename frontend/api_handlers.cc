#include "frontend/api_handlers.h"

#include <chrono>
#include <cstdio>
#include <random>

#include "common/clock.h"
#include "common/logging.h"

namespace tandem {

using nlohmann::ordered_json;

ServerContext::ServerContext(HttpServerOptions o, std::shared_ptr<const ServedModel> m, InferenceClient& c)
    : options(std::move(o)),
      model(std::move(m)),
      client(c),
      log(GetLogger("router")),
      id_salt((static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()),
      keys(options.api_keys          ? options.api_keys
           : options.api_key.empty() ? nullptr
                                     : std::make_shared<const ApiKeys>(ApiKeys::Single(options.api_key))),
      limiter(keys ? std::make_unique<RateLimiter>(*keys) : nullptr),
      metrics(options.metrics ? options.metrics : std::make_shared<RouterMetrics>(model->name, "router")) {}

std::string ServerContext::PublicId(ApiKind kind, int64_t id) const {
  // splitmix64 is a bijection, so distinct ids give distinct strings.
  uint64_t x = static_cast<uint64_t>(id) + 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(id_salt),
                static_cast<unsigned long long>(x));
  return std::string(kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-") + buf;
}

namespace {

int64_t UnixSeconds() { return UnixNowMicros() / 1000000; }

std::optional<ApiError> CheckModel(const ServerContext& ctx, const ordered_json& body) {
  auto it = body.find("model");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string())
    return InvalidRequest("model", std::string("'model' must be a string, got ") + it->type_name(), "invalid_type");
  if (it->get<std::string>() == ctx.model->name) return std::nullopt;
  ApiError e = InvalidRequest(
      "model",
      "The model `" + it->get<std::string>() + "` does not exist. This server serves `" + ctx.model->name + "`.",
      "model_not_found");
  e.http_status = 404;
  return e;
}

// The chat prompt's token ids, as transformers' apply_chat_template(tokenize=True): render with
// the generation prompt, then encode without special tokens (the template placed BOS itself).
std::optional<ApiError> EncodeChat(const ServedModel& model, const ordered_json& messages, bool add_generation_prompt,
                                   std::vector<int32_t>* ids) {
  if (!model.chat_template) {
    return InvalidRequest("messages", "this model has no chat template: " + model.chat_template_error,
                          "chat_template_missing");
  }
  Result<std::string> rendered =
      model.chat_template->Render(messages, nullptr, add_generation_prompt, model.template_extra);
  if (!rendered.ok()) return InvalidRequest("messages", "rendering the chat template: " + rendered.status().message());
  Result<std::vector<TokenId>> encoded = model.tokenizer->Encode(*rendered, /*add_special_tokens=*/false);
  if (!encoded.ok()) return InvalidRequest("messages", "tokenizing the messages: " + encoded.status().message());
  *ids = std::move(encoded).value();
  return std::nullopt;
}

std::optional<ApiError> EncodeText(const ServedModel& model, const std::string& text, bool add_special_tokens,
                                   std::vector<int32_t>* ids) {
  Result<std::vector<TokenId>> encoded = model.tokenizer->Encode(text, add_special_tokens);
  if (!encoded.ok()) return InvalidRequest("prompt", "tokenizing the prompt: " + encoded.status().message());
  *ids = std::move(encoded).value();
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> ResolveSlo(const SloConfig* config, const GenerationRequest& request,
                                   const std::string& header_slo_class, RequestSlo* out,
                                   const std::string& pinned_class) {
  *out = RequestSlo();
  std::string name = request.slo_class.empty() ? header_slo_class : request.slo_class;
  if (!pinned_class.empty()) {
    if (!name.empty() && name != pinned_class) {
      return InvalidRequest("slo_class", "this API key is held to SLO class '" + pinned_class + "', not '" + name + "'",
                            "slo_class_not_allowed");
    }
    name = pinned_class;
  }
  const SloClass* cls = nullptr;
  if (!name.empty()) {
    cls = config ? config->Find(name) : nullptr;
    if (cls == nullptr) {
      const std::string known = config ? "known classes: " + config->Names() : "this server has no --slo-config";
      return InvalidRequest("slo_class", "unknown SLO class '" + name + "' (" + known + ")");
    }
  } else if (config) {
    cls = config->default_class();
  }
  if (cls) *out = RequestSloOf(*cls);
  if (request.slo_ttft_ms > 0) out->ttft_ms = request.slo_ttft_ms;
  if (request.slo_tpot_ms > 0) out->tpot_ms = request.slo_tpot_ms;
  return std::nullopt;
}

std::optional<ApiError> PrepareGeneration(ServerContext& ctx, const ordered_json& body, ApiKind kind,
                                          int64_t arrival_us, PreparedGeneration* out,
                                          const std::string& header_slo_class, const ApiKey* key) {
  const ServedModel& model = *ctx.model;
  if (auto e = ParseGenerationRequest(body, kind, model.limits, &out->request)) return e;
  if (auto e = CheckModel(ctx, body)) return e;
  if (key != nullptr && !key->MayUse(model.name)) {
    ApiError e = InvalidRequest(
        "model", "The model `" + model.name + "` does not exist or you do not have access to it.", "model_not_found");
    e.http_status = 404;
    return e;
  }
  if (auto e = ResolveSlo(ctx.options.slo_config.get(), out->request, header_slo_class, &out->serving.slo,
                          key ? key->slo_class : std::string())) {
    return e;
  }
  const GenerationRequest& req = out->request;
  std::vector<int32_t> ids;
  if (kind == ApiKind::kChat) {
    if (auto e = EncodeChat(model, req.messages, /*add_generation_prompt=*/true, &ids)) return e;
  } else if (req.has_prompt_text) {
    if (auto e = EncodeText(model, req.prompt_text, /*add_special_tokens=*/true, &ids)) return e;
  } else {
    ids = req.prompt_ids;
  }
  if (ids.empty()) {
    return InvalidRequest(kind == ApiKind::kChat ? "messages" : "prompt", "the prompt encodes to no tokens");
  }
  // The context window, or less when no KV pool can hold that much: then a request without
  // max_tokens gets what fits instead of an error, and one that asks too much hears the limit.
  int64_t max_model_len = model.limits.max_model_len;
  const int64_t pool_tokens = ctx.client.MaxSequenceTokens();
  if (pool_tokens > 0) max_model_len = std::min(max_model_len, pool_tokens);
  int32_t max_tokens = 0;
  if (auto e = ResolveMaxTokens(req, ids.size(), max_model_len, &max_tokens)) return e;

  out->serving.id = ctx.NextRequestId();
  out->serving.prompt = std::move(ids);
  out->serving.params = req.params;
  out->serving.params.max_tokens = max_tokens;
  out->serving.arrival_us = arrival_us;
  out->serving.cache_salt = req.cache_salt;
  out->meta.kind = kind;
  out->meta.id = ctx.PublicId(kind, out->serving.id);
  out->meta.created = UnixSeconds();
  out->meta.model = model.name;
  return std::nullopt;
}

JsonReply HandleModels(const ServerContext& ctx, const ApiKey* key) {
  ordered_json card;
  card["id"] = ctx.model->name;
  card["object"] = "model";
  card["created"] = UnixSeconds();
  card["owned_by"] = "tandem";
  card["root"] = ctx.model->model_dir;
  card["parent"] = nullptr;
  card["max_model_len"] = ctx.model->limits.max_model_len;
  ordered_json list;
  list["object"] = "list";
  list["data"] = ordered_json::array();
  if (key == nullptr || key->MayUse(ctx.model->name)) list["data"].push_back(std::move(card));
  return {200, std::move(list)};
}

JsonReply HandleLoad(const ServerContext& ctx) {
  const LoadInfo load = ctx.client.Load();
  ordered_json body{{"num_requests", load.num_requests},
                    {"num_queued", load.num_queued},
                    {"num_free_kv_blocks", load.num_free_kv_blocks},
                    {"num_total_kv_blocks", load.num_total_kv_blocks},
                    {"num_steps", load.num_steps}};
  ordered_json nodes = ordered_json::array();
  for (const NodeView& n : load.nodes) {
    ordered_json node{{"id", n.id},
                      {"role", std::string(NodeRoleName(n.role))},
                      {"state", std::string(NodeStateName(n.state))},
                      {"queued_requests", n.load.queued_requests},
                      {"queued_tokens", n.queued_tokens()},
                      {"running_requests", n.load.running_requests},
                      {"free_kv_blocks", n.free_blocks()},
                      {"total_kv_blocks", n.load.total_blocks},
                      {"busy_fraction", n.load.busy_fraction},
                      // measured / predicted step time (null: the node runs without a profile)
                      {"latency_factor", n.load.latency_factor > 0 ? ordered_json(n.load.latency_factor) : nullptr},
                      // what this router placed there and has not seen leave (the SLO policy's view)
                      {"placed",
                       {{"prefill_requests", n.placed.prefill_requests()},
                        {"prefill_tokens", n.placed.prefill_tokens()},
                        {"decode_requests", n.placed.decode_requests},
                        {"decode_context_tokens", n.placed.decode_context_tokens}}},
                      {"last_error", n.last_error}};
    if (n.role == NodeRole::kPrefill) node["connected_decode_nodes"] = n.load.connected_decode_nodes;
    // Blocks its prefix cache holds as its reports tell (KV-aware routing's view); 0: none.
    node["cached_kv_blocks"] = n.cached_blocks.size();
    nodes.push_back(std::move(node));
  }
  body["nodes"] = std::move(nodes);
  return {200, std::move(body)};
}

namespace {

JsonReply ErrorReply(const ApiError& e) { return {e.http_status, e.ToJson()}; }

std::optional<ApiError> ReadOptionalBool(const ordered_json& body, const char* name, bool* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return InvalidRequest(name, std::string("'") + name + "' must be a boolean", "invalid_type");
  *out = it->get<bool>();
  return std::nullopt;
}

}  // namespace

JsonReply HandleTokenize(const ServerContext& ctx, const ordered_json& body) {
  if (auto e = CheckModel(ctx, body)) return ErrorReply(*e);
  const ServedModel& model = *ctx.model;
  std::vector<int32_t> ids;
  auto prompt = body.find("prompt");
  auto messages = body.find("messages");
  if (prompt != body.end() && !prompt->is_null()) {
    if (!prompt->is_string()) return ErrorReply(InvalidRequest("prompt", "'prompt' must be a string", "invalid_type"));
    bool add_special = true;
    if (auto e = ReadOptionalBool(body, "add_special_tokens", &add_special)) return ErrorReply(*e);
    if (auto e = EncodeText(model, prompt->get<std::string>(), add_special, &ids)) return ErrorReply(*e);
  } else if (messages != body.end() && !messages->is_null()) {
    // The chat form: messages validated exactly as for /v1/chat/completions.
    ordered_json chat_body = ordered_json::object();
    chat_body["messages"] = *messages;
    GenerationRequest parsed;
    if (auto e = ParseGenerationRequest(chat_body, ApiKind::kChat, model.limits, &parsed)) return ErrorReply(*e);
    bool add_generation_prompt = true;
    if (auto e = ReadOptionalBool(body, "add_generation_prompt", &add_generation_prompt)) return ErrorReply(*e);
    if (auto e = EncodeChat(model, parsed.messages, add_generation_prompt, &ids)) return ErrorReply(*e);
  } else {
    return ErrorReply(
        InvalidRequest("prompt", "one of 'prompt' or 'messages' is required", "missing_required_parameter"));
  }
  ordered_json reply;
  reply["count"] = ids.size();
  reply["max_model_len"] = model.limits.max_model_len;
  reply["tokens"] = ids;
  reply["token_strs"] = nullptr;
  return {200, std::move(reply)};
}

JsonReply HandleDetokenize(const ServerContext& ctx, const ordered_json& body) {
  if (auto e = CheckModel(ctx, body)) return ErrorReply(*e);
  auto tokens = body.find("tokens");
  if (tokens == body.end() || tokens->is_null()) {
    return ErrorReply(InvalidRequest("tokens", "'tokens' is a required property", "missing_required_parameter"));
  }
  if (!tokens->is_array())
    return ErrorReply(InvalidRequest("tokens", "'tokens' must be an array of token ids", "invalid_type"));
  std::vector<TokenId> ids;
  for (const ordered_json& t : *tokens) {
    if (!t.is_number_integer())
      return ErrorReply(InvalidRequest("tokens", "'tokens' must be an array of token ids", "invalid_type"));
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id >= ctx.model->limits.vocab_size) {
      return ErrorReply(InvalidRequest("tokens", "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                                     std::to_string(ctx.model->limits.vocab_size) + ")"));
    }
    ids.push_back(static_cast<TokenId>(id));
  }
  ordered_json reply;
  reply["prompt"] = ctx.model->tokenizer->Decode(ids, /*skip_special_tokens=*/false);
  return {200, std::move(reply)};
}

ApiError StatusToApiError(const Status& status) {
  ApiError e;
  e.message = status.message();
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kAlreadyExists:
      e.http_status = 400;
      break;
    case StatusCode::kResourceExhausted:
      // Every node is up but none has room now: the client should retry later (OpenAI's
      // "overloaded" answer), unlike 503 where the service itself is missing.
      e.http_status = 429;
      e.type = "server_error";
      // A refusal with a reason (e.g. slo_unattainable: no node is predicted to meet the
      // request's TTFT target) says so in the error code.
      e.code = status.reason().empty() ? "engine_overloaded" : status.reason();
      e.retry_after_s = 1;
      break;
    case StatusCode::kUnavailable:
      e.http_status = 503;
      e.type = "server_error";
      e.code = "service_unavailable";
      if (!status.reason().empty()) {
        // A refusal with a reason (queue_full: the request's SLO class has its queue full) comes
        // from a server that is up: the client may retry shortly.
        e.code = status.reason();
        e.retry_after_s = 1;
      }
      break;
    case StatusCode::kDeadlineExceeded:
      // Waited past its deadline (queued, or a stuck node): the server timed out, not the client.
      e.http_status = 504;
      e.type = "server_error";
      e.code = "timeout";
      break;
    default:
      e.http_status = 500;
      e.type = "server_error";
      e.code = "internal_error";
      break;
  }
  return e;
}

}  // namespace tandem
