#include "frontend/http_session.h"

#include <sys/socket.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>

#include "common/clock.h"
#include "common/sse.h"
#include "frontend/http_routes.h"

namespace tandem {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::ordered_json;
using tcp = net::ip::tcp;

namespace {

constexpr char kServerName[] = "tandem";
constexpr size_t kMaxDrainBytes = 8u << 20;  // read and dropped before closing after an error

}  // namespace

HttpSession::HttpSession(tcp::socket&& socket, std::shared_ptr<ServerContext> ctx)
    : stream_(std::move(socket)),
      ctx_(std::move(ctx)),
      hold_timer_(stream_.get_executor()),
      read_timer_(stream_.get_executor()) {
  ctx_->open_connections.fetch_add(1);
}

HttpSession::~HttpSession() {
  AbortActive("connection destroyed");
  ctx_->open_connections.fetch_sub(1);
}

void HttpSession::Start() {
  if (ctx_->open_connections.load() > ctx_->options.max_connections) {
    // Over the cap: answer at once (before reading the request) and close, so a flood of idle
    // connections cannot starve the ones serving requests of file descriptors and memory.
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      ApiError e = HttpError(503, "the server has too many open connections; retry later", "server_overloaded");
      e.type = "server_error";
      e.retry_after_s = 1;
      self->ctx_->metrics->CountRejection(e.code);
      self->SendError(e, /*close=*/true);
    });
    return;
  }
  net::dispatch(stream_.get_executor(), beast::bind_front_handler(&HttpSession::DoRead, shared_from_this()));
}

// --- connection ---

void HttpSession::DoRead() {
  if (state_ == State::kClosed) return;
  state_ = State::kReading;
  generation_route_ = false;
  parser_.emplace();
  ConfigureRequestParser(ctx_->options.max_body_bytes, &*parser_);
  stream_.expires_never();   // read_timer_ bounds each read phase
  if (buffer_.size() > 0) {  // the next request came with the last one (pipelining)
    ReadHeader();
    return;
  }
  // An idle connection holds no buffer and no response: waiting costs a pending wait and a timer.
  buffer_.shrink_to_fit();
  response_ = {};
  ArmReadTimer(ReadPhase::kIdle);
  stream_.socket().async_wait(tcp::socket::wait_read,
                              beast::bind_front_handler(&HttpSession::OnReadable, shared_from_this()));
}

void HttpSession::OnReadable(beast::error_code ec) {
  if (state_ == State::kClosed) return;
  if (ec) {
    Close();
    return;
  }
  // Bytes, or the peer's end of stream: the header read tells which (an end of stream before any
  // byte closes without an answer).
  ReadHeader();
}

void HttpSession::ReadHeader() {
  ArmReadTimer(ReadPhase::kHeader);
  http::async_read_header(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&HttpSession::OnHeader, shared_from_this()));
}

void HttpSession::OnHeader(beast::error_code ec, size_t bytes) {
  if (state_ == State::kClosed || ReadTimedOut()) return;
  if (ec || parser_->is_done()) {  // an error, or a request without a body
    OnRead(ec, bytes);
    return;
  }
  ArmReadTimer(ReadPhase::kBody);
  http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
}

void HttpSession::ArmReadTimer(ReadPhase phase) {
  read_phase_ = phase;
  read_timed_out_ = false;
  const HttpServerOptions& o = ctx_->options;
  const int seconds = phase == ReadPhase::kIdle     ? o.idle_timeout_s
                      : phase == ReadPhase::kHeader ? o.header_timeout_s
                                                    : o.body_timeout_s;
  read_timer_.expires_after(std::chrono::seconds(seconds));  // cancels the last phase's wait
  const uint64_t generation = ++read_timer_generation_;
  // Weak: the pending read keeps the session alive, not its timer.
  read_timer_.async_wait([weak = weak_from_this(), generation](beast::error_code ec) {
    if (auto self = weak.lock()) self->OnReadTimer(generation, ec);
  });
}

void HttpSession::OnReadTimer(uint64_t generation, beast::error_code ec) {
  if (ec || generation != read_timer_generation_ || state_ != State::kReading) return;
  if (read_phase_ == ReadPhase::kIdle) {  // nothing was asked: nothing to answer
    Close();
    return;
  }
  read_timed_out_ = true;
  // Stop the read without closing, so that a 408 can still be written: cancel the pending step,
  // and shut the receiving side, so that a step Beast's composed read starts after this one (its
  // last step had completed, its handler not yet run) ends at once too.
  beast::error_code ignored;
  stream_.socket().cancel(ignored);
  stream_.socket().shutdown(tcp::socket::shutdown_receive, ignored);
}

bool HttpSession::ReadTimedOut() {
  // Whatever the read's outcome: the receiving side is shut once the timer fired.
  if (!read_timed_out_) return false;
  const bool header = read_phase_ == ReadPhase::kHeader;
  const int seconds = header ? ctx_->options.header_timeout_s : ctx_->options.body_timeout_s;
  const std::string what = header ? "headers" : "body";
  ctx_->log->info("408: a request's {} did not arrive within {} s", what, seconds);
  ctx_->metrics->CountRejection("request_timeout");  // counted whatever the route: it may be unread
  SendError(HttpError(408, "the request's " + what + " did not arrive within " + std::to_string(seconds) + " s",
                      "request_timeout"),
            /*close=*/true);
  return true;
}

void HttpSession::OnRead(beast::error_code ec, size_t) {
  if (state_ == State::kClosed) return;
  read_timer_.cancel();
  if (ReadTimedOut()) return;
  if (ec == http::error::end_of_stream || ec == net::error::operation_aborted) {
    Close();
    return;
  }
  keep_alive_ = parser_->get().keep_alive();
  if (ec) {
    if (auto reply = ReadErrorReply(ec, parser_->is_header_done(), ctx_->options.max_body_bytes)) {
      SendError(*reply, /*close=*/true);
    } else {
      Close();
    }
    return;
  }
  Request req = parser_->release();
  Handle(req);
}

void HttpSession::Handle(Request& req) {
  state_ = State::kHandling;
  rate_headers_.clear();
  generation_route_ = false;
  const int64_t arrival_us = SteadyClock::Read();
  const auto method = req.method_string();
  const RouteDecision routed = RouteRequest(req.method(), std::string_view(method.data(), method.size()),
                                            std::string_view(req.target().data(), req.target().size()));
  if (!routed.route) {
    if (routed.allow.empty()) {
      SendError(*routed.error);  // 404
    } else {
      SendJson(routed.error->http_status, routed.error->ToJson(), /*close=*/false, routed.allow);  // 405
    }
    return;
  }
  const Endpoint endpoint = routed.route->endpoint;
  if (endpoint == Endpoint::kMetrics) {
    response_ = {};
    response_.version(11);
    response_.result(http::status::ok);
    response_.set(http::field::server, kServerName);
    response_.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    response_.body() = ctx_->metrics->Render(ctx_->client.Load());
    Send(false);
    return;
  }
  generation_route_ = IsGenerationEndpoint(endpoint);
  if (endpoint == Endpoint::kHealth) {
    const InferenceClient::Health health = ctx_->client.GetHealth();
    if (!health.serving) {
      SendError(HttpError(503, "the inference backend is not ready", "service_unavailable"));
    } else if (health.degraded.empty()) {
      SendEmpty(200);
    } else {
      // Serving on the nodes that are left: still healthy for a load balancer, but say what is
      // missing.
      SendJson(200, ordered_json{{"status", "degraded"}, {"unavailable", health.degraded}});
    }
    return;
  }
  int key_index = -1;
  if (ctx_->keys) {
    const auto auth = req[http::field::authorization];
    if (auto given = BearerKey(std::string_view(auth.data(), auth.size()))) key_index = ctx_->keys->Find(*given);
    if (key_index < 0) {
      SendError(HttpError(401, "Incorrect or missing API key; send 'Authorization: Bearer <key>'", "invalid_api_key"));
      return;
    }
  }
  const ApiKey* key = key_index >= 0 ? &ctx_->keys->at(key_index) : nullptr;
  if (endpoint == Endpoint::kModels) {
    JsonReply reply = HandleModels(*ctx_, key);
    SendJson(reply.http_status, reply.body);
    return;
  }
  if (endpoint == Endpoint::kLoad) {  // read-only: the client's LoadInfo, for operators and tests
    SendJson(200, HandleLoad(*ctx_).body);
    return;
  }

  ordered_json body;
  if (auto error = ParseJsonObjectBody(req.body(), &body)) {
    SendError(*error);
    return;
  }
  if (endpoint == Endpoint::kTokenize || endpoint == Endpoint::kDetokenize) {
    JsonReply reply = endpoint == Endpoint::kTokenize ? HandleTokenize(*ctx_, body) : HandleDetokenize(*ctx_, body);
    SendJson(reply.http_status, reply.body);
    return;
  }
  const ApiKind kind = endpoint == Endpoint::kChatCompletions ? ApiKind::kChat : ApiKind::kCompletion;
  PreparedGeneration prepared;
  if (auto error = PrepareGeneration(*ctx_, body, kind, arrival_us, &prepared, std::string(req["X-SLO-Class"]), key)) {
    SendError(*error);
    return;
  }
  std::unique_ptr<RateLease> lease;
  if (key != nullptr && key->limits.any()) {
    const double tokens = static_cast<double>(prepared.serving.prompt.size()) + prepared.serving.params.max_tokens;
    RateDecision d = ctx_->limiter->Acquire(key_index, tokens, arrival_us);
    rate_headers_ = std::move(d.headers);
    if (!d.allowed) {
      ctx_->log->info("API key {}: 429: {}", key->name, d.why);
      ApiError e = HttpError(429, d.why, "rate_limit_exceeded");
      e.type = "requests";
      e.retry_after_s = d.retry_after_s;
      SendError(e);
      return;
    }
    lease = std::make_unique<RateLease>(ctx_->limiter.get(), key_index);
  }
  StartGeneration(std::move(prepared), std::move(lease));
}

void HttpSession::SendJson(int status, const ordered_json& body, bool close, const std::string& allow,
                           int retry_after_s) {
  response_ = {};
  if (!allow.empty()) response_.set(http::field::allow, allow);
  if (retry_after_s > 0) response_.set(http::field::retry_after, std::to_string(retry_after_s));
  for (const auto& [name, value] : rate_headers_) response_.set(name, value);
  response_.version(11);
  response_.result(static_cast<http::status>(status));
  response_.set(http::field::server, kServerName);
  response_.set(http::field::content_type, "application/json");
  response_.body() = DumpJson(body);
  Send(close);
}

void HttpSession::SendEmpty(int status) {
  response_ = {};
  response_.version(11);
  response_.result(static_cast<http::status>(status));
  response_.set(http::field::server, kServerName);
  Send(false);
}

void HttpSession::SendError(const ApiError& error, bool close) {
  if (generation_route_) ctx_->metrics->CountRejection(error.code.empty() ? error.type : error.code);
  if (error.http_status >= 500) {
    ctx_->log->warn("answering {}: {}", error.http_status, error.message);
  } else {
    ctx_->log->debug("answering {}: {}", error.http_status, error.message);
  }
  SendJson(error.http_status, error.ToJson(), close, "", error.retry_after_s);
}

void HttpSession::Send(bool close) {
  if (state_ == State::kClosed) return;
  state_ = State::kWriting;
  close = close || !keep_alive_;
  response_.keep_alive(!close);
  response_.prepare_payload();
  stream_.expires_after(std::chrono::seconds(ctx_->options.write_timeout_s));
  http::async_write(stream_, response_, beast::bind_front_handler(&HttpSession::OnWritten, shared_from_this(), close));
}

void HttpSession::OnWritten(bool close, beast::error_code ec, size_t) {
  if (state_ == State::kClosed) return;
  if (ec) {
    Close();
    return;
  }
  ResponseDone(close);
}

void HttpSession::ResponseDone(bool close) {
  ++generation_counter_;  // any watch still pending is now stale
  beast::error_code ignored;
  stream_.socket().cancel(ignored);
  hold_timer_.cancel();
  active_.reset();
  header_serializer_.reset();
  if (!close) {
    DoRead();
    return;
  }
  // Half-close, then read and drop what the client still sends (e.g. the rest of an oversized
  // body) so that our close does not turn into a reset that destroys the response in flight.
  state_ = State::kWriting;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.expires_after(std::chrono::seconds(2));
  OnDrained(0, {}, 0);
}

void HttpSession::OnDrained(size_t total, beast::error_code ec, size_t bytes) {
  total += bytes;
  if (ec || total > kMaxDrainBytes || state_ == State::kClosed) {
    Close();
    return;
  }
  buffer_.clear();
  stream_.async_read_some(buffer_.prepare(64 * 1024),
                          beast::bind_front_handler(&HttpSession::OnDrained, shared_from_this(), total));
}

void HttpSession::Close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  AbortActive("client connection closed");
  active_.reset();
  hold_timer_.cancel();
  read_timer_.cancel();
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
}

// --- generation ---

void HttpSession::StartGeneration(PreparedGeneration prepared, std::unique_ptr<RateLease> lease) {
  auto gen = std::make_unique<Generation>();
  gen->prepared = std::move(prepared);
  gen->lease = std::move(lease);
  gen->processor = std::make_unique<OutputProcessor>(*ctx_->model->tokenizer, gen->prepared.serving.prompt,
                                                     gen->prepared.request.stop);
  ServingRequest serving = gen->prepared.serving;
  active_ = std::move(gen);

  // The callback holds no executor: the client may destroy it after the server's io_context is
  // gone (a request still in flight when the server stops), and destroying a strand executor
  // then touches the freed strand service. The session's executor is read only behind the
  // gate, while the io_context is alive; the posted handler keeps the session until it runs.
  std::weak_ptr<HttpSession> weak = weak_from_this();
  auto ctx = ctx_;
  EventCallback callback = [weak, ctx](InferenceEvent event) {
    ctx->PostIfOpen([&] {
      std::shared_ptr<HttpSession> self = weak.lock();
      if (!self) return;
      const auto executor = self->stream_.get_executor();
      net::post(executor, [self = std::move(self), event = std::move(event)]() mutable {
        self->OnEvent(std::move(event));
      });
    });
  };
  Status st = ctx_->client.Submit(std::move(serving), std::move(callback));
  if (!st.ok()) {
    active_.reset();
    SendError(StatusToApiError(st));
    return;
  }
  stream_.expires_never();  // waiting for the engine, not for the client
  WatchPeer();
}

void HttpSession::WatchPeer() {
  const uint64_t generation = generation_counter_;
  // The pending wait also keeps this session alive while it waits for the engine.
  stream_.socket().async_wait(tcp::socket::wait_read,
                              beast::bind_front_handler(&HttpSession::OnPeerReadable, shared_from_this(), generation));
}

void HttpSession::OnPeerReadable(uint64_t generation, beast::error_code ec) {
  if (ec == net::error::operation_aborted || generation != generation_counter_ || state_ == State::kClosed ||
      !active_) {
    return;
  }
  beast::error_code avail_ec;
  const size_t available = stream_.socket().available(avail_ec);
  if (!ec && !avail_ec && available == 0) {
    // Readable with nothing to read is a hang-up only if a peek confirms end of stream; a
    // wake-up that finds the socket merely empty (seen under load) re-arms the watch.
    char byte;
    const ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      WatchPeer();
      return;
    }
  }
  if (ec || avail_ec || available == 0) {
    ctx_->log->info("{}: client disconnected; aborting", active_->prepared.meta.id);
    Close();
    return;
  }
  // The client sent its next request early (pipelining). It stays in the socket for the next
  // read; a hang-up is then only noticed by a failing write. The timer keeps the session alive
  // until the response is done (ResponseDone and Close cancel it).
  hold_timer_.expires_after(std::chrono::hours(24 * 365));
  hold_timer_.async_wait([self = shared_from_this()](beast::error_code) {});
}

void HttpSession::AbortActive(const char* why) {
  if (!active_ || active_->engine_done) return;
  active_->engine_done = true;  // nothing more is wanted from it
  ctx_->client.Abort(active_->prepared.serving.id);
  if (!active_->complete) {
    active_->complete = true;
    ctx_->log->info("{} aborted ({}): prompt_tokens={} output_tokens={}", active_->prepared.meta.id, why,
                    active_->prepared.serving.prompt.size(), active_->processor->num_output_tokens());
  }
}

void HttpSession::OnEvent(InferenceEvent event) {
  if (state_ == State::kClosed || !active_ || active_->complete || event.request_id != active_->prepared.serving.id) {
    return;  // stale: a finished, aborted or earlier request of this connection
  }
  Generation& g = *active_;
  if (event.final()) {
    g.engine_done = true;
    g.cached_tokens = event.record.cached_tokens;
  }
  if (event.finish_reason == FinishReason::kError || event.finish_reason == FinishReason::kAbort) {
    FailGeneration(event.status.ok() ? AbortedError("the request was aborted by the server") : event.status);
    return;
  }
  if (!event.tokens.empty()) {
    const int64_t at = event.emitted_us ? event.emitted_us : SteadyClock::Read();
    if (g.first_token_us == 0) g.first_token_us = at;
    g.last_token_us = at;
  }
  const std::string text = g.processor->Add(event.tokens, event.finish_reason);
  if (g.processor->finished() && !g.engine_done) {
    g.engine_done = true;  // a stop string ended it: free its KV blocks now (a normal stop)
    ctx_->client.Abort(g.prepared.serving.id, FinishReason::kStop);
  }
  const GenerationRequest& req = g.prepared.request;
  if (!req.stream) {
    g.text += text;
    if (g.processor->finished()) CompleteGeneration();
    return;
  }
  if (!g.header_queued) {
    g.header_queued = true;
    if (req.kind == ApiKind::kChat) QueueSse(BuildRoleChunk(g.prepared.meta, req.include_usage));
  }
  if (!text.empty()) QueueSse(BuildTextChunk(g.prepared.meta, text, req.include_usage));
  if (g.processor->finished()) {
    CompleteGeneration();
  } else {
    PumpStream();
  }
}

void HttpSession::CompleteGeneration() {
  Generation& g = *active_;
  g.complete = true;
  const std::string finish(FinishReasonName(g.processor->finish_reason()));
  Usage usage{static_cast<int64_t>(g.prepared.serving.prompt.size()), g.processor->num_output_tokens(), std::nullopt,
              g.cached_tokens};
  if (const RequestSlo& slo = g.prepared.serving.slo; !slo.empty()) {
    // TTFT from arrival and TPOT over the tokens after the first, as RequestRecord defines them.
    SloReport report;
    report.slo_class = slo.class_name;
    const int64_t n = usage.completion_tokens;
    if (g.first_token_us) report.ttft_ms = (g.first_token_us - g.prepared.serving.arrival_us) / 1000.0;
    if (n > 1) report.tpot_ms = (g.last_token_us - g.first_token_us) / 1000.0 / static_cast<double>(n - 1);
    report.slo_met = slo.Met(report.ttft_ms, report.tpot_ms);
    usage.slo = report;
  }
  const GenerationRequest& req = g.prepared.request;
  if (!req.stream) {
    SendJson(200, BuildResponse(g.prepared.meta, g.text, finish, usage));
    return;
  }
  QueueSse(BuildFinishChunk(g.prepared.meta, finish, req.include_usage));
  if (req.include_usage) QueueSse(BuildUsageChunk(g.prepared.meta, usage));
  g.pending += kSseDone;
  PumpStream();
}

void HttpSession::FailGeneration(const Status& status) {
  Generation& g = *active_;
  g.complete = true;
  ctx_->log->warn("{} failed: {}", g.prepared.meta.id, status.ToString());
  const ApiError error = StatusToApiError(status);
  if (!g.prepared.request.stream || !g.header_queued) {
    SendError(error);
    return;
  }
  // Mid-stream the status line is long gone: an error event, then the end, as vLLM does.
  QueueSse(error.ToJson());
  g.pending += kSseDone;
  PumpStream();
}

void HttpSession::QueueSse(const ordered_json& chunk) { active_->pending += SseData(DumpJson(chunk)); }

void HttpSession::PumpStream() {
  if (stream_writing_ || state_ == State::kClosed || !active_) return;
  Generation& g = *active_;
  auto on_written = beast::bind_front_handler(&HttpSession::OnStreamWritten, shared_from_this());
  const auto timeout = std::chrono::seconds(ctx_->options.write_timeout_s);
  if (!g.header_written) {
    g.header_written = true;
    stream_header_ = {};
    stream_header_.version(11);
    stream_header_.result(http::status::ok);
    stream_header_.set(http::field::server, kServerName);
    stream_header_.set(http::field::content_type, "text/event-stream");
    stream_header_.set(http::field::cache_control, "no-cache");
    for (const auto& [name, value] : rate_headers_) stream_header_.set(name, value);
    stream_header_.keep_alive(keep_alive_);
    stream_header_.chunked(true);
    header_serializer_.emplace(stream_header_);
    state_ = State::kWriting;
    stream_writing_ = true;
    stream_.expires_after(timeout);
    http::async_write_header(stream_, *header_serializer_, std::move(on_written));
    return;
  }
  if (!g.pending.empty()) {
    // Everything queued since the last write goes out as one chunk.
    write_buf_ = std::move(g.pending);
    g.pending.clear();
    stream_writing_ = true;
    stream_.expires_after(timeout);
    net::async_write(stream_, http::make_chunk(net::buffer(write_buf_)), std::move(on_written));
    return;
  }
  if (g.complete && !g.last_chunk_written) {
    g.last_chunk_written = true;
    stream_writing_ = true;
    stream_.expires_after(timeout);
    net::async_write(stream_, http::make_chunk_last(), std::move(on_written));
    return;
  }
  if (g.last_chunk_written) {
    ResponseDone(!keep_alive_);
    return;
  }
  stream_.expires_never();  // between tokens we wait for the engine, not for the client
}

void HttpSession::OnStreamWritten(beast::error_code ec, size_t) {
  stream_writing_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    if (active_)
      ctx_->log->info("{}: writing to the client failed ({}); aborting", active_->prepared.meta.id, ec.message());
    Close();
    return;
  }
  PumpStream();
}

}  // namespace tandem
