#include "frontend/http_routes.h"

#include <boost/beast/http/error.hpp>
#include <vector>

namespace tandem {

namespace http = boost::beast::http;

namespace {

constexpr Route kRoutes[] = {
    {"/v1/completions", http::verb::post, Endpoint::kCompletions},
    {"/v1/chat/completions", http::verb::post, Endpoint::kChatCompletions},
    {"/v1/models", http::verb::get, Endpoint::kModels},
    {"/health", http::verb::get, Endpoint::kHealth},
    {"/tokenize", http::verb::post, Endpoint::kTokenize},
    {"/detokenize", http::verb::post, Endpoint::kDetokenize},
    {"/v1/load", http::verb::get, Endpoint::kLoad},
    {"/metrics", http::verb::get, Endpoint::kMetrics},
};

}  // namespace

ApiError HttpError(int status, std::string message, std::string code) {
  ApiError e;
  e.http_status = status;
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

void ConfigureRequestParser(size_t max_body_bytes, HttpRequestParser* parser) {
  parser->body_limit(max_body_bytes);
  parser->header_limit(kMaxHeaderBytes);
}

std::optional<ApiError> ReadErrorReply(boost::beast::error_code ec, bool header_done, size_t max_body_bytes) {
  if (ec == http::error::body_limit) {
    return HttpError(413, "request body exceeds the limit of " + std::to_string(max_body_bytes) + " bytes",
                     "request_too_large");
  }
  if (&ec.category() == &http::make_error_code(http::error::bad_target).category() || header_done) {
    return HttpError(400, "malformed HTTP request: " + ec.message(), "bad_request");
  }
  return std::nullopt;  // reset or garbage before a header: nobody to answer
}

RouteDecision RouteRequest(http::verb method, std::string_view method_string, std::string_view target) {
  RouteDecision d;
  const std::string_view path = target.substr(0, target.find('?'));
  const Route* route = nullptr;
  for (const Route& r : kRoutes) {
    if (r.path == path) route = &r;
  }
  if (!route) {
    d.error = HttpError(404, "Invalid URL (" + std::string(method_string) + " " + std::string(path) + ")", "not_found");
    return d;
  }
  if (method != route->verb) {
    d.allow = std::string(http::to_string(route->verb));
    d.error = HttpError(
        405, "method " + std::string(method_string) + " is not allowed on " + std::string(path) + "; use " + d.allow,
        "method_not_allowed");
    return d;
  }
  d.route = route;
  return d;
}

bool IsGenerationEndpoint(Endpoint e) { return e == Endpoint::kCompletions || e == Endpoint::kChatCompletions; }

std::optional<std::string_view> BearerKey(std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer) return std::nullopt;
  return authorization.substr(kBearer.size());
}

namespace {

// ordered_json looks keys up by a linear scan, so an object's parse (and each later lookup) costs
// its key count squared: 60k keys in a 770 KB body held the io thread for 8 s. A SAX pass first
// refuses any object with more keys than a request can have a use for.
constexpr size_t kMaxKeysPerObject = 1024;

class KeyCounter final : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool too_many() const { return too_many_; }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.push_back(0);
    return true;
  }
  bool key(string_t&) override {
    if (++keys_.back() <= kMaxKeysPerObject) return true;
    too_many_ = true;
    return false;  // stops the parse
  }
  bool end_object() override {
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;  // the real parse below reports it
  }

 private:
  std::vector<size_t> keys_;
  bool too_many_ = false;
};

}  // namespace

std::optional<ApiError> ParseJsonObjectBody(std::string_view body, nlohmann::ordered_json* out) {
  KeyCounter counter;
  (void)nlohmann::json::sax_parse(body, &counter);
  if (counter.too_many()) {
    return HttpError(400,
                     "a JSON object in the request body has more than " + std::to_string(kMaxKeysPerObject) + " keys",
                     "invalid_json");
  }
  try {
    *out = nlohmann::ordered_json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    return HttpError(400, std::string("the request body is not valid JSON: ") + e.what(), "invalid_json");
  }
  if (!out->is_object()) return HttpError(400, "the request body must be a JSON object", "invalid_json");
  return std::nullopt;
}

}  // namespace tandem
