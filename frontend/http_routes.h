// The OpenAI server's request checks that need no connection: the parser's limits, the route
// table, the Authorization header and the JSON body. HttpSession (the I/O shell) calls these
// in order; being pure, they are what tests/fuzz/http_request_fuzzer drives with bytes.
//
//   bytes ─▶ parser ──────────▶ RouteRequest ─▶ BearerKey ─▶ ParseJsonObjectBody ─▶ handler
//            │                   │               │            │
//            ReadErrorReply:     404, 405        401          400 invalid_json
//            413, 400 or close
//
// (the parser set up by ConfigureRequestParser; 401 only when the server has API keys).
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "frontend/openai_protocol.h"

namespace tandem {

// An error answer with an HTTP status other than 400 invalid_request_error's defaults.
ApiError HttpError(int status, std::string message, std::string code);

inline constexpr uint32_t kMaxHeaderBytes = 8192;  // request line + header fields (Beast's default)

using HttpRequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// Sets the limits on a fresh parser: a body over `max_body_bytes` fails with
// http::error::body_limit (413), a header over kMaxHeaderBytes with header_limit (400).
void ConfigureRequestParser(size_t max_body_bytes, HttpRequestParser* parser);

// The answer to a failed read (other than end of stream and timeouts, which the session
// handles: a close, or 408 for a request begun but not finished in time): 413 for
// a body over the limit, 400 once a header was read (or for a bad target), nullopt for garbage
// before a header (close without answering: there may be nobody to answer).
std::optional<ApiError> ReadErrorReply(boost::beast::error_code ec, bool header_done, size_t max_body_bytes);

enum class Endpoint { kCompletions, kChatCompletions, kModels, kHealth, kTokenize, kDetokenize, kLoad, kMetrics };

struct Route {
  std::string_view path;
  boost::beast::http::verb verb;
  Endpoint endpoint;
};

// A request's route, or why it has none: 404 for an unknown path, 405 (with the method to use in
// `allow`, the Allow header) for a known path with another method. The query string is ignored.
struct RouteDecision {
  const Route* route = nullptr;
  std::optional<ApiError> error;  // set when route is null
  std::string allow;
};
RouteDecision RouteRequest(boost::beast::http::verb method, std::string_view method_string, std::string_view target);

// Whether a completion is asked for (rejections on these routes are counted in the metrics).
bool IsGenerationEndpoint(Endpoint e);

// The key of "Authorization: Bearer <key>", or nullopt when the header has another form.
std::optional<std::string_view> BearerKey(std::string_view authorization);

// A POST body as a JSON object (key order kept), or 400 invalid_json.
std::optional<ApiError> ParseJsonObjectBody(std::string_view body, nlohmann::ordered_json* out);

}  // namespace tandem
