// A raw-socket SSE client for the `tandem serve` fault tests.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tandem::testing {

// A streaming POST over a plain socket ("Connection: close"), read on the caller's thread. It
// keeps the raw bytes and the time each read returned, so a test can tell when the stream
// ended, and Close() hangs up mid-stream as a client that goes away would.
class SseStream {
 public:
  using Clock = std::chrono::steady_clock;

  ~SseStream() { Close(); }

  // Connects to 127.0.0.1:`port` and sends the request; false (with `error`) when either fails.
  bool Open(uint16_t port, const std::string& target, const std::string& body) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Fail("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return Fail("connect");
    const std::string req = "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                            "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    size_t sent = 0;
    while (sent < req.size()) {
      const ssize_t n = ::send(fd_, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return Fail("send");
      sent += static_cast<size_t>(n);
    }
    sent_at_ = Clock::now();
    return true;
  }

  // Reads until `done(*this)` holds, the peer closes, or `deadline`. True when `done` held.
  template <typename Pred>
  bool ReadUntil(Pred done, Clock::time_point deadline) {
    while (!done(*this)) {
      if (eof_ || fd_ < 0) return false;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100)));
      if (r < 0 && errno != EINTR) return Fail("poll");
      if (r <= 0) continue;
      char buf[16384];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        eof_ = true;
        ended_at_ = Clock::now();
        return done(*this);
      }
      raw_.append(buf, static_cast<size_t>(n));
      if (first_byte_at_ == Clock::time_point{}) first_byte_at_ = Clock::now();
      Parse();
      if (done_seen_ && ended_at_ == Clock::time_point{}) ended_at_ = Clock::now();
    }
    return true;
  }
  // Reads to the end of the response (the peer's close) or `deadline`.
  bool ReadToEnd(Clock::time_point deadline) {
    return ReadUntil([](const SseStream& s) { return s.eof(); }, deadline);
  }

  // Ends the connection under a ReadUntil running on another thread (it then sees EOF).
  void Shutdown() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // 0 until the status line arrived.
  int status() const { return status_; }
  // The JSON payloads of the `data:` events so far, without the final "[DONE]".
  const std::vector<nlohmann::json>& events() const { return events_; }
  bool done_seen() const { return done_seen_; }  // "data: [DONE]" arrived
  bool eof() const { return eof_; }
  // [DONE] or the peer's close, whichever came first; epoch while neither did.
  Clock::time_point ended_at() const { return ended_at_; }
  Clock::time_point sent_at() const { return sent_at_; }
  Clock::time_point first_byte_at() const { return first_byte_at_; }
  const std::string& raw() const { return raw_; }
  const std::string& error() const { return error_; }
  // The body of a non-streaming (error) response, once complete.
  std::string body() const { return body_; }

  // The finish_reason of the event that carried one; "" if none did.
  std::string FinishReason() const {
    for (const auto& e : events_) {
      if (e.contains("choices") && e["choices"].is_array() && !e["choices"].empty() &&
          e["choices"][0]["finish_reason"].is_string()) {
        return e["choices"][0]["finish_reason"].get<std::string>();
      }
    }
    return "";
  }
  // The message of an SSE error event; "" if none came.
  std::string ErrorEvent() const {
    for (const auto& e : events_) {
      if (e.contains("error")) return e["error"].value("message", std::string("(no message)"));
    }
    return "";
  }
  int NumTextEvents() const {
    int n = 0;
    for (const auto& e : events_) n += e.contains("choices") ? 1 : 0;
    return n;
  }

 private:
  bool Fail(const char* what) {
    error_ = std::string(what) + ": " + std::strerror(errno);
    Close();
    return false;
  }

  // Re-parses what arrived: status line, headers, then the (chunked or plain) body, whose
  // complete "data: ..." events are collected.
  void Parse() {
    const size_t header_end = raw_.find("\r\n\r\n");
    if (header_end == std::string::npos) return;
    if (status_ == 0 && raw_.rfind("HTTP/1.1 ", 0) == 0) status_ = std::atoi(raw_.c_str() + 9);
    std::string headers = raw_.substr(0, header_end);
    for (char& c : headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool chunked = headers.find("transfer-encoding: chunked") != std::string::npos;
    std::string body;
    size_t at = header_end + 4;
    if (!chunked) {
      body = raw_.substr(at);
    } else {
      while (true) {
        const size_t line_end = raw_.find("\r\n", at);
        if (line_end == std::string::npos) break;
        const size_t size = std::strtoul(raw_.substr(at, line_end - at).c_str(), nullptr, 16);
        if (size == 0 || line_end + 2 + size > raw_.size()) break;
        body.append(raw_, line_end + 2, size);
        at = line_end + 2 + size + 2;
      }
    }
    body_ = body;
    events_.clear();
    size_t pos = 0;
    while (true) {
      const size_t end = body.find("\n\n", pos);
      if (end == std::string::npos) break;
      const std::string event = body.substr(pos, end - pos);
      pos = end + 2;
      if (event.rfind("data: ", 0) != 0) continue;
      const std::string data = event.substr(6);
      if (data == "[DONE]") {
        done_seen_ = true;
        continue;
      }
      events_.push_back(nlohmann::json::parse(data, nullptr, false));
    }
  }

  int fd_ = -1;
  std::string raw_;
  std::string body_;
  std::string error_;
  int status_ = 0;
  bool eof_ = false;
  bool done_seen_ = false;
  std::vector<nlohmann::json> events_;
  Clock::time_point sent_at_{}, first_byte_at_{}, ended_at_{};
};

}  // namespace tandem::testing
