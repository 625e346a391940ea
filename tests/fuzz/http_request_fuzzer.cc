// libFuzzer target: arbitrary bytes as what a client sends on one keep-alive connection of the
// OpenAI server. They are fed, in pieces of a fuzzer-chosen size, to the parser HttpSession uses
// (ConfigureRequestParser: same body and header limits) the way Beast's async_read feeds it;
// each complete request then goes through the session's checks that need no socket (route and
// method, the Bearer key, the JSON body, and for the generation routes ParseGenerationRequest),
// and every error is turned into the body the client would get. Pipelined requests are parsed
// until the connection would close. Nothing may crash, and the answers must be coherent (an
// error for every request without a route, a status in 4xx).
//
// Input: byte 0 picks the body limit (bit 0: the server's default, else a small one that chunked
// bodies can exceed) and byte 1 the read size; the rest is the byte stream.
//
// Built with BOOST_ENABLE_ASSERT_HANDLER: Beast's own assertions stay on (the Release server has
// them off), and the one known to be wrong is let through (see assertion_failed below).
#include <algorithm>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "frontend/http_routes.h"
#include "frontend/http_server.h"
#include "frontend/openai_protocol.h"
#include "tests/fuzz/fuzz_check.h"

namespace boost {

// Boost 1.74's basic_parser::parse_chunk_header asserts n >= 5 on re-entry after the last chunk,
// where 3 bytes ("0\r\n" then "\r", "\n" in separate reads) are valid and the code that follows
// handles them (need_more). Fixed upstream in boostorg/beast#2861 (Boost 1.86). Any other failed
// assertion is a finding.
void assertion_failed(char const* expr, char const* function, char const* file, long line) {
  if (std::string_view(expr) == "n >= 5" && std::string_view(file).ends_with("http/impl/basic_parser.ipp")) return;
  std::fprintf(stderr, "%s:%ld: %s: assertion '%s' failed\n", file, line, function, expr);
  std::abort();
}

void assertion_failed_msg(char const* expr, char const* msg, char const* function, char const* file, long line) {
  std::fprintf(stderr, "%s:%ld: %s: assertion '%s' failed: %s\n", file, line, function, expr, msg);
  std::abort();
}

}  // namespace boost

namespace {

namespace http = boost::beast::http;
using tandem::ApiError;

constexpr size_t kSmallBodyLimit = 64;
constexpr int kMaxRequestsPerInput = 16;

void CheckAnswer(const ApiError& e) {
  FUZZ_CHECK(e.http_status >= 400 && e.http_status < 500);
  FUZZ_CHECK(!e.message.empty());
  FUZZ_CHECK(!tandem::DumpJson(e.ToJson()).empty());  // what SendError writes; never throws
}

std::string_view View(boost::beast::string_view s) { return std::string_view(s.data(), s.size()); }

// What HttpSession::Handle decides before it needs the server's state.
void Handle(const http::request<http::string_body>& req) {
  const tandem::RouteDecision routed =
      tandem::RouteRequest(req.method(), View(req.method_string()), View(req.target()));
  if (!routed.route) {
    FUZZ_CHECK(routed.error.has_value());
    FUZZ_CHECK(routed.error->http_status == (routed.allow.empty() ? 404 : 405));
    CheckAnswer(*routed.error);
    return;
  }
  FUZZ_CHECK(!routed.error.has_value() && req.method() == routed.route->verb);
  if (auto key = tandem::BearerKey(View(req[http::field::authorization]))) {
    FUZZ_CHECK(key->size() + 7 == req[http::field::authorization].size());
  }
  if (routed.route->verb != http::verb::post) return;
  nlohmann::ordered_json body;
  if (auto error = tandem::ParseJsonObjectBody(req.body(), &body)) {
    CheckAnswer(*error);
    return;
  }
  FUZZ_CHECK(body.is_object());
  if (!tandem::IsGenerationEndpoint(routed.route->endpoint)) return;
  const tandem::ApiKind kind = routed.route->endpoint == tandem::Endpoint::kChatCompletions
                                   ? tandem::ApiKind::kChat
                                   : tandem::ApiKind::kCompletion;
  tandem::GenerationRequest parsed;
  if (auto error = tandem::ParseGenerationRequest(body, kind, tandem::ProtocolLimits{32000, 4096}, &parsed)) {
    CheckAnswer(*error);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t body_limit = (data[0] & 1) ? tandem::HttpServerOptions{}.max_body_bytes : kSmallBodyLimit;
  const size_t read_size = 1 + data[1];  // what one read_some of the socket returns, at most
  std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  boost::beast::flat_buffer buffer;  // the session's buffer_, kept across requests
  bool eof = false;
  for (int n = 0; n < kMaxRequestsPerInput; ++n) {
    tandem::HttpRequestParser parser;
    tandem::ConfigureRequestParser(body_limit, &parser);
    boost::beast::error_code ec;
    // Beast's read: parse what is buffered, read more while the parser needs more.
    while (!parser.is_done()) {
      if (buffer.size() > 0) {
        const size_t used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        if (ec != http::error::need_more) {
          if (ec) break;
          continue;
        }
        ec = {};
      }
      if (stream.empty()) {
        eof = true;
        if (parser.got_some()) {
          parser.put_eof(ec);
        } else {
          ec = http::error::end_of_stream;
        }
        break;
      }
      const size_t chunk = std::min(read_size, stream.size());
      const auto mb = buffer.prepare(chunk);
      std::copy_n(stream.data(), chunk, static_cast<char*>(mb.data()));
      buffer.commit(chunk);
      stream.remove_prefix(chunk);
    }
    if (ec == http::error::end_of_stream) return 0;  // the client went away between requests: close
    if (ec) {
      // HttpSession::OnRead: 413, 400 (then close), or close without an answer.
      if (auto reply = tandem::ReadErrorReply(ec, parser.is_header_done(), body_limit)) {
        FUZZ_CHECK(reply->http_status == (ec == http::error::body_limit ? 413 : 400));
        FUZZ_CHECK(!tandem::DumpJson(reply->ToJson()).empty());
      }
      return 0;
    }
    FUZZ_CHECK(parser.is_done());
    FUZZ_CHECK(parser.get().body().size() <= body_limit);
    const bool keep_alive = parser.get().keep_alive();
    http::request<http::string_body> req = parser.release();
    Handle(req);
    if (!keep_alive || eof) return 0;
  }
  return 0;
}
