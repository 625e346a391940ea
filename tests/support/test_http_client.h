// A blocking HTTP/1.1 client for tests that talk to a real server on 127.0.0.1. Defined out of
// line (test_http_client.cc, the tandem_test_http library): Beast's read and write templates
// are compiled once instead of in every suite that sends a request.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace tandem::testing {

struct HttpReply {
  int status = 0;  // 0: no response (error says why)
  std::string error;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// One keep-alive connection. Every operation ends within `timeout` (then status 0).
class TestHttpClient {
 public:
  explicit TestHttpClient(uint16_t port, std::chrono::seconds timeout = std::chrono::seconds(60));
  ~TestHttpClient();
  TestHttpClient(const TestHttpClient&) = delete;
  TestHttpClient& operator=(const TestHttpClient&) = delete;

  // `method` is the request line's verb ("GET", "POST", ...); a POST carries a JSON content type.
  HttpReply Request(const std::string& method, const std::string& target, const std::string& body = "",
                    const std::map<std::string, std::string>& headers = {});
  HttpReply Post(const std::string& target, const nlohmann::json& body,
                 const std::map<std::string, std::string>& headers = {});
  HttpReply Get(const std::string& target);
  // Sends raw bytes as the request.
  HttpReply Raw(const std::string& bytes);
  // Sends `bytes` and returns what arrives until `until` appears in it (or the timeout).
  std::string SendAndReadUntil(const std::string& bytes, const std::string& until);
  void Close();

 private:
  struct Connection;
  std::unique_ptr<Connection> connection_;
};

}  // namespace tandem::testing
