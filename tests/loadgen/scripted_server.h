// A stand-in for a misbehaving (or instantly answering) OpenAI-compatible server, for the
// client's own tests and its lag bench: what it does with a request is chosen by the prompt.
//   "error"  400 with an OpenAI-style error body
//   "cut"    200, one chunk, then the connection closes without [DONE]
//   "hang"   200, one chunk, then nothing (the client's timeout must end it)
//   "bad"    200, an event that is not JSON
//   other    200, max_tokens chunks at once, usage, [DONE]
// GET /v1/models lists one model, "scripted". One io thread, no thread per connection. It counts
// the cache_salt values that requests carried.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace tandem::testing {

class ScriptedServer {
 public:
  ScriptedServer() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~ScriptedServer() {
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::map<std::string, int> cache_salts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cache_salts_;
  }

 private:
  using tcp = boost::asio::ip::tcp;
  struct Conn {
    explicit Conn(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    boost::beast::flat_buffer buffer;
    boost::beast::http::request<boost::beast::http::string_body> request;
    std::string reply;
  };

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      auto c = std::make_shared<Conn>(std::move(socket));
      boost::beast::http::async_read(c->socket, c->buffer, c->request, [this, c](boost::system::error_code e, size_t) {
        if (!e) Answer(c);
      });
      Accept();
    });
  }

  static std::string Event(const std::string& data) { return "data: " + data + "\n\n"; }

  void Answer(const std::shared_ptr<Conn>& c) {
    const std::string sse_head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    const std::string chunk = Event(R"({"choices":[{"index":0,"text":"x","finish_reason":null}]})");
    bool close = true;
    if (c->request.method() == boost::beast::http::verb::get) {
      const std::string body = R"({"object":"list","data":[{"id":"scripted","object":"model"}]})";
      c->reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body;
    } else {
      const nlohmann::json j = nlohmann::json::parse(c->request.body(), nullptr, false);
      const std::string prompt =
          j.is_object() && j.contains("prompt") && j["prompt"].is_string() ? j["prompt"].get<std::string>() : "";
      const int tokens = j.is_object() && j.contains("max_tokens") ? j["max_tokens"].get<int>() : 4;
      if (j.is_object() && j.contains("cache_salt") && j["cache_salt"].is_string()) {
        std::lock_guard<std::mutex> lock(mu_);
        ++cache_salts_[j["cache_salt"].get<std::string>()];
      }
      if (prompt == "error") {
        const std::string body = R"({"error":{"message":"the prompt is too long","type":"invalid_request_error"}})";
        c->reply =
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body;
      } else if (prompt == "cut") {
        c->reply = sse_head + chunk;
      } else if (prompt == "hang") {
        c->reply = sse_head + chunk;
        close = false;
      } else if (prompt == "bad") {
        c->reply = sse_head + chunk + Event("not json at all") + Event("[DONE]");
      } else {
        c->reply = sse_head;
        for (int i = 0; i < tokens; ++i) c->reply += chunk;
        c->reply +=
            Event(R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":)" + std::to_string(tokens) + "}}");
        c->reply += Event("[DONE]");
      }
    }
    boost::asio::async_write(c->socket, boost::asio::buffer(c->reply),
                             [this, c, close](boost::system::error_code, size_t) {
                               if (close) {
                                 boost::system::error_code ignored;
                                 c->socket.shutdown(tcp::socket::shutdown_both, ignored);
                                 c->socket.close(ignored);
                               } else {
                                 held_.push_back(c);  // kept open until the server stops
                               }
                             });
  }

  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<Conn>> held_;
  mutable std::mutex mu_;
  std::map<std::string, int> cache_salts_;
  std::thread thread_;
};

}  // namespace tandem::testing
