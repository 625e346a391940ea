// The endpoint logic that needs no connection state: turning a generation request body into a
// ServingRequest (validate, check the model, render the chat template, tokenize, resolve
// max_tokens), and the small endpoints (/v1/models, /tokenize, /detokenize). Called on the
// connection's strand; everything they touch in ServerContext is immutable or atomic.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>

#include "frontend/openai_protocol.h"
#include "frontend/server_context.h"
#include "scheduler/inference_client.h"

namespace tandem {

struct PreparedGeneration {
  GenerationRequest request;
  ServingRequest serving;
  ResponseMeta meta;
};

// nullopt on success, with `out` filled (a fresh router id in out->serving.id).
// `header_slo_class` is the X-SLO-Class header ("" when absent); the body's slo_class wins.
// `key`: the caller's API key entry (null without --api-keys): 404 for a model it may not use,
// and its pinned SLO class.
std::optional<ApiError> PrepareGeneration(ServerContext& ctx, const nlohmann::ordered_json& body, ApiKind kind,
                                          int64_t arrival_us, PreparedGeneration* out,
                                          const std::string& header_slo_class = "", const ApiKey* key = nullptr);

// The SLO a request is held to: its class (body, else header, else the config's default), with
// its own "slo" targets over the class's. 400 for a class the config does not define (or any
// class when there is no config). `pinned_class` (an API key's): the class, whatever the
// request says; 400 when it names another.
std::optional<ApiError> ResolveSlo(const SloConfig* config, const GenerationRequest& request,
                                   const std::string& header_slo_class, RequestSlo* out,
                                   const std::string& pinned_class = "");

struct JsonReply {
  int http_status = 200;
  nlohmann::ordered_json body;
};

// The served model, unless `key` may not use it (then an empty list).
JsonReply HandleModels(const ServerContext& ctx, const ApiKey* key = nullptr);
// GET /v1/load: the InferenceClient's LoadInfo (every node's report and what was placed there).
JsonReply HandleLoad(const ServerContext& ctx);
JsonReply HandleTokenize(const ServerContext& ctx, const nlohmann::ordered_json& body);
JsonReply HandleDetokenize(const ServerContext& ctx, const nlohmann::ordered_json& body);

// An InferenceClient error as the client sees it: 400 for requests the model cannot serve, 429
// when every node is up but none has room (retry later), 503 when the backend is unavailable
// (with Retry-After and the reason as its code when the status has one: queue_full),
// 504 when the request waited past its deadline, 500 otherwise.
ApiError StatusToApiError(const Status& status);

}  // namespace tandem
