// One client connection (internal to scheduler/). Everything runs on the connection's strand.
//
//   kReading ──request──▶ kHandling ──▶ kWriting ──keep-alive──▶ kReading
//      │                     │  (generation: waiting for events,     │
//      │                     │   watching the socket for a hang-up)  └─close──▶ kClosed
//      └─EOF/timeout/error───┴────────────── hang-up / write error ────────────▶ kClosed
//
// A generation holds at most one request in the InferenceClient. Its events arrive on client
// threads and are posted to the strand through ServerContext::PostIfOpen; the callback holds
// only a weak reference, so a closed connection is destroyed at once and its request aborted.
// Stale events (another request id than the active one) are dropped.
//
// Reading one request is three waits, each under its own timeout (read_timer_; for the header
// and the body its expiry shuts only the receiving side, so that a 408 can still be written):
//
//   kIdle ──readable──▶ kHeader ──header complete──▶ kBody ──body complete──▶ Handle
//     │ idle_timeout_s          │ header_timeout_s            │ body_timeout_s
//     └─ close silently         └────── 408 request_timeout, then close ─┘
//
// kIdle is skipped when the buffer already holds the next request's bytes (pipelining).
//
// Hang-up detection: while a response is pending, an async_wait(wait_read) on the socket fires
// when the peer sends FIN (readable with nothing to read); a write error does the same for a
// stream. Either aborts the request, so its KV blocks are freed without waiting for max_tokens.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <optional>
#include <string>

#include "frontend/api_handlers.h"
#include "frontend/output_processor.h"
#include "frontend/server_context.h"

namespace tandem {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket&& socket, std::shared_ptr<ServerContext> ctx);
  ~HttpSession();

  void Start();

 private:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  enum class State { kReading, kHandling, kWriting, kClosed };
  enum class ReadPhase { kIdle, kHeader, kBody };

  struct Generation {
    PreparedGeneration prepared;
    std::unique_ptr<OutputProcessor> processor;
    std::string text;          // the whole output (non-streaming)
    bool engine_done = false;  // its final event arrived
    bool complete = false;     // the client-visible output is complete
    // Streaming.
    bool header_queued = false;
    bool header_written = false;
    bool last_chunk_written = false;
    std::string pending;  // SSE bytes not yet handed to a write
    // Client-visible token times (the router's clock), for the SLO report in usage.
    int64_t first_token_us = 0;
    int64_t last_token_us = 0;
    int32_t cached_tokens = 0;         // from the final event's record
    std::unique_ptr<RateLease> lease;  // the API key's slot (null without limits), freed with it
  };

  // --- connection ---
  void DoRead();
  void OnReadable(boost::beast::error_code ec);
  void ReadHeader();
  void OnHeader(boost::beast::error_code ec, size_t bytes);
  void OnRead(boost::beast::error_code ec, size_t bytes);
  // Starts `phase`'s timeout; when it fires the read it bounds is stopped (OnReadTimer).
  void ArmReadTimer(ReadPhase phase);
  void OnReadTimer(uint64_t generation, boost::beast::error_code ec);
  // Whether the header or body timeout cut the current read; if so, 408 is on its way.
  bool ReadTimedOut();
  void Handle(Request& req);
  void SendJson(int status, const nlohmann::ordered_json& body, bool close = false, const std::string& allow = "",
                int retry_after_s = 0);
  void SendEmpty(int status);
  void SendError(const ApiError& error, bool close = false);
  void Send(bool close);
  void OnWritten(bool close, boost::beast::error_code ec, size_t bytes);
  void ResponseDone(bool close);
  void OnDrained(size_t total, boost::beast::error_code ec, size_t bytes);
  void Close();

  // --- generation ---
  void StartGeneration(PreparedGeneration prepared, std::unique_ptr<RateLease> lease);
  void OnEvent(InferenceEvent event);
  void FailGeneration(const Status& status);
  void CompleteGeneration();
  void QueueSse(const nlohmann::ordered_json& chunk);
  void PumpStream();
  void OnStreamWritten(boost::beast::error_code ec, size_t bytes);
  void WatchPeer();
  void OnPeerReadable(uint64_t generation, boost::beast::error_code ec);
  void AbortActive(const char* why);

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::shared_ptr<ServerContext> ctx_;
  State state_ = State::kReading;
  bool keep_alive_ = true;
  bool generation_route_ = false;    // the request being handled asks for a completion
  uint64_t generation_counter_ = 0;  // bumped per response; stale watch callbacks compare it
  std::unique_ptr<Generation> active_;
  // The x-ratelimit-* headers of the request being answered (its API key's limits).
  std::vector<std::pair<std::string, std::string>> rate_headers_;
  boost::asio::steady_timer hold_timer_;  // keeps the session alive when the watch cannot
  boost::asio::steady_timer read_timer_;  // the current read phase's timeout
  ReadPhase read_phase_ = ReadPhase::kIdle;
  uint64_t read_timer_generation_ = 0;  // bumped per arm; a stale expiry compares it
  bool read_timed_out_ = false;         // the current phase's timer fired (and stopped the read)

  boost::beast::http::response<boost::beast::http::string_body> response_;
  boost::beast::http::response<boost::beast::http::empty_body> stream_header_;
  std::optional<boost::beast::http::response_serializer<boost::beast::http::empty_body>> header_serializer_;
  bool stream_writing_ = false;
  std::string write_buf_;
};

}  // namespace tandem
