#include "tests/support/test_http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>

namespace tandem::testing {

namespace http = boost::beast::http;

struct TestHttpClient::Connection {
  Connection(uint16_t port, std::chrono::seconds timeout) : port(port), timeout(timeout), stream(ioc) {}

  // Starts one asynchronous operation and runs the context until it completes (or the
  // stream's deadline cancels it).
  template <typename Start>
  void Run(Start start, boost::beast::error_code* ec, size_t* n = nullptr) {
    stream.expires_after(timeout);
    start([ec, n](boost::beast::error_code e, size_t bytes) {
      *ec = e;
      if (n) *n = bytes;
    });
    ioc.restart();
    ioc.run();
  }

  bool Connect() {
    if (connected) return true;
    boost::beast::error_code ec;
    stream.expires_after(timeout);
    stream.async_connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port),
                         [&](boost::beast::error_code e) { ec = e; });
    ioc.restart();
    ioc.run();
    connected = !ec;
    return connected;
  }

  void Close() {
    boost::beast::error_code ec;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    stream.close();
    connected = false;
  }

  template <typename Write>
  HttpReply Exchange(Write write) {
    HttpReply reply;
    if (!Connect()) {
      reply.error = "connect failed";
      return reply;
    }
    boost::beast::error_code ec;
    Run([&](auto cb) { write(stream, cb); }, &ec);
    if (ec) {
      reply.error = "write: " + ec.message();
      Close();
      return reply;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    Run([&](auto cb) { http::async_read(stream, buffer, parser, cb); }, &ec);
    if (ec) {
      reply.error = "read: " + ec.message();
      Close();
      return reply;
    }
    const auto& res = parser.get();
    reply.status = res.result_int();
    reply.body = res.body();
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = std::string(f.value());
    }
    if (!res.keep_alive()) Close();
    return reply;
  }

  uint16_t port;
  std::chrono::seconds timeout;
  boost::asio::io_context ioc;
  boost::beast::tcp_stream stream;
  boost::beast::flat_buffer buffer;
  bool connected = false;
};

TestHttpClient::TestHttpClient(uint16_t port, std::chrono::seconds timeout)
    : connection_(std::make_unique<Connection>(port, timeout)) {}

TestHttpClient::~TestHttpClient() = default;

HttpReply TestHttpClient::Request(const std::string& method, const std::string& target, const std::string& body,
                                  const std::map<std::string, std::string>& headers) {
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.set(k, v);
  if (!body.empty() || req.method() == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  return connection_->Exchange([&](auto& stream, auto done) { http::async_write(stream, req, done); });
}

HttpReply TestHttpClient::Post(const std::string& target, const nlohmann::json& body,
                               const std::map<std::string, std::string>& headers) {
  return Request("POST", target, body.dump(), headers);
}

HttpReply TestHttpClient::Get(const std::string& target) { return Request("GET", target); }

HttpReply TestHttpClient::Raw(const std::string& bytes) {
  return connection_->Exchange(
      [&](auto& stream, auto done) { boost::asio::async_write(stream, boost::asio::buffer(bytes), done); });
}

std::string TestHttpClient::SendAndReadUntil(const std::string& bytes, const std::string& until) {
  Connection& c = *connection_;
  if (!c.Connect()) return "";
  boost::beast::error_code ec;
  c.Run([&](auto cb) { boost::asio::async_write(c.stream, boost::asio::buffer(bytes), cb); }, &ec);
  std::string got;
  char buf[4096];
  while (!ec && got.find(until) == std::string::npos) {
    size_t n = 0;
    c.Run([&](auto cb) { c.stream.async_read_some(boost::asio::buffer(buf), cb); }, &ec, &n);
    got.append(buf, n);
  }
  return got;
}

void TestHttpClient::Close() { connection_->Close(); }

}  // namespace tandem::testing
