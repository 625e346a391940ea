#include "apps/demo_request.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <cstdint>
#include <limits>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace tandem {

namespace {
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

// Consumes complete SSE lines from `pending`; returns false when the stream ended ([DONE]).
Status HandleSse(std::string& pending, std::ostream& out, std::string& finish, bool& done) {
  size_t nl;
  while ((nl = pending.find('\n')) != std::string::npos) {
    std::string line = pending.substr(0, nl);
    pending.erase(0, nl + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("data: ", 0) != 0) continue;
    const std::string data = line.substr(6);
    if (data == "[DONE]") {
      done = true;
      return Status::Ok();
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(data);
    } catch (const nlohmann::json::exception& e) {
      return InternalError(std::string("bad SSE chunk: ") + e.what());
    }
    if (j.contains("error")) return InternalError("server error: " + j["error"].dump());
    if (!j.contains("choices") || j["choices"].empty()) continue;
    const auto& c = j["choices"][0];
    if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string()) {
      out << c["delta"]["content"].get<std::string>() << std::flush;
    }
    if (c.contains("finish_reason") && c["finish_reason"].is_string()) finish = c["finish_reason"].get<std::string>();
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> RunDemoRequest(const DemoRequest& request, std::ostream& out) {
  nlohmann::json body;
  body["model"] = request.model;
  body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", request.prompt}}});
  body["max_tokens"] = request.max_tokens;
  body["temperature"] = 0;
  body["stream"] = true;
  try {
    boost::asio::io_context ioc;
    tcp::socket sock(ioc);
    tcp::resolver resolver(ioc);
    boost::asio::connect(sock, resolver.resolve(request.host, std::to_string(request.port)));
    timeval tv{request.timeout_s, 0};  // bounds every blocking read and write below
    ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

    http::request<http::string_body> req{http::verb::post, "/v1/chat/completions", 11};
    req.set(http::field::host, request.host);
    req.set(http::field::content_type, "application/json");
    if (!request.api_key.empty()) req.set(http::field::authorization, "Bearer " + request.api_key);
    req.body() = body.dump();
    req.prepare_payload();
    http::write(sock, req);

    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // not boost::none: Boost 1.74 rejects any Content-Length against it
    http::read_header(sock, buf, parser);
    const unsigned status = parser.get().result_int();
    std::string pending, finish, error_body;
    bool done = false;
    char chunk[4096];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof(chunk);
      beast::error_code ec;
      http::read(sock, buf, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return UnavailableError("reading the reply: " + ec.message());
      const size_t n = sizeof(chunk) - parser.get().body().size;
      if (status != 200) {
        error_body.append(chunk, n);
        continue;
      }
      pending.append(chunk, n);
      RETURN_IF_ERROR(HandleSse(pending, out, finish, done));
      if (done) break;
    }
    if (status != 200) return InternalError("HTTP " + std::to_string(status) + ": " + error_body);
    if (!done) return InternalError("the stream ended without [DONE]");
    beast::error_code ignored;
    sock.shutdown(tcp::socket::shutdown_both, ignored);
    return finish;
  } catch (const boost::system::system_error& e) {
    return UnavailableError(std::string("demo request to ") + request.host + ":" + std::to_string(request.port) +
                            ": " + e.what());
  }
}

}  // namespace tandem
