#include "loadgen/bench_runner.h"

#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <deque>
#include <limits>
#include <memory>

#include "loadgen/response_stream.h"

namespace tandem::loadgen {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

// Thousands of concurrent streams need as many sockets: lift the soft limit to the hard one.
void RaiseOpenFileLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
}

std::string ErrorBodyMessage(const std::string& body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    const nlohmann::json& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
    if (e.is_string()) return e.get<std::string>();
  }
  return body.substr(0, 200);
}

class Runner;

// One request: connect, write, read the streamed answer; ends exactly once.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Runner& runner, size_t index);
  void Start();

 private:
  void OnConnect(const beast::error_code& ec);
  void OnWrite(const beast::error_code& ec);
  void OnHeader(const beast::error_code& ec);
  void ReadBody();
  void OnBody(beast::error_code ec);
  void End(const std::string& error);

  Runner& runner_;
  size_t index_;
  tcp::socket socket_;
  asio::steady_timer deadline_;
  http::request<http::string_body> request_;
  beast::flat_buffer buffer_;
  http::response_parser<http::buffer_body> parser_;
  char body_[16 * 1024];
  ResponseStream stream_;
  std::string error_body_;
  unsigned status_ = 0;
  bool ended_ = false;
};

class Runner {
 public:
  Runner(const std::vector<BenchRequest>& requests, const std::vector<double>& schedule, const RunOptions& options,
         tcp::endpoint target)
      : requests_(requests), schedule_(schedule), options_(options), target_(target), dispatch_(io_), progress_(io_) {
    results_.resize(requests.size());
    next_turn_.assign(requests.size(), -1);
    turns_.resize(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      const int64_t prev = requests[i].previous_turn;
      if (prev >= 0 && prev < static_cast<int64_t>(i)) {
        next_turn_[prev] = static_cast<int64_t>(i);
        multi_turn_ = true;
      } else {
        firsts_.push_back(i);
      }
      if (!requests[i].system_text.empty()) multi_turn_ = true;
    }
  }

  RunResult Run() {
    if (requests_.empty()) return {};
    start_ = SteadyClock::now();
    Dispatch();
    if (options_.on_progress) Progress();
    io_.run();
    RunResult out;
    out.duration_s = last_end_s_;
    out.results = std::move(results_);
    if (options_.on_progress) options_.on_progress(sent_, done_, failed_, out.results);
    return out;
  }

  double Now() const { return std::chrono::duration<double>(SteadyClock::now() - start_).count(); }
  asio::io_context& io() { return io_; }
  const RunOptions& options() const { return options_; }
  const BenchRequest& request(size_t i) const { return requests_[i]; }
  // The turn as sent, for a multi-turn workload's request (null otherwise).
  const ComposedTurn* turn(size_t i) const { return turns_[i].get(); }
  RequestResult& result(size_t i) { return results_[i]; }
  const tcp::endpoint& target() const { return target_; }

  void OnEnded(size_t i) {
    --in_flight_;
    Count(i);
    FollowUp(i);
    if (!waiting_.empty()) {
      const size_t next = waiting_.front();
      waiting_.pop_front();
      Launch(next);
    }
  }

 private:
  // Sends every first turn due (every request, without multi-turn), then sleeps until the next
  // send time.
  void Dispatch() {
    while (next_ < firsts_.size() && schedule_[next_] <= Now()) {
      Enqueue(firsts_[next_], schedule_[next_]);
      ++next_;
    }
    if (next_ >= firsts_.size()) return;
    dispatch_.expires_at(
        start_ + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(schedule_[next_])));
    dispatch_.async_wait([this](const beast::error_code& ec) {
      if (!ec) Dispatch();
    });
  }

  void Enqueue(size_t i, double scheduled_s) {
    results_[i].index = static_cast<int64_t>(i);
    results_[i].scheduled_s = scheduled_s;
    results_[i].turn = requests_[i].turn;
    if (options_.max_concurrency > 0 && in_flight_ >= options_.max_concurrency) {
      waiting_.push_back(i);
    } else {
      Launch(i);
    }
  }

  void Launch(size_t i) {
    ++in_flight_;
    ++sent_;
    if (multi_turn_) {
      const int64_t prev = requests_[i].previous_turn;
      const ComposedTurn* before = prev >= 0 ? turns_[prev].get() : nullptr;
      turns_[i] = std::make_unique<ComposedTurn>(
          ComposeTurn(requests_[i], before, prev >= 0 ? results_[prev].generated_text : std::string()));
    }
    std::make_shared<Session>(*this, i)->Start();
  }

  void Count(size_t i) {
    ++done_;
    failed_ += !results_[i].success;
    last_end_s_ = std::max(last_end_s_, results_[i].done_s);
    if (done_ == static_cast<int64_t>(requests_.size())) {
      dispatch_.cancel();
      progress_.cancel();
    }
  }

  // The conversation's next turn after turn `i` ended: sent after the think time, or, when `i`
  // failed, failed unsent (there is no answer to continue from), and so every turn after it.
  void FollowUp(size_t i) {
    const int64_t j = next_turn_[i];
    if (j < 0) return;
    if (!results_[i].success) {
      RequestResult& r = results_[j];
      r.index = j;
      r.turn = requests_[j].turn;
      r.scheduled_s = r.sent_s = r.done_s = Now();
      r.success = false;
      r.error = "an earlier turn of its conversation failed";
      Count(j);
      FollowUp(j);
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(io_);
    timer->expires_after(
        std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(options_.multi_turn_think_s)));
    timer->async_wait([this, j, timer](const beast::error_code& ec) {
      if (!ec) Enqueue(static_cast<size_t>(j), Now());
    });
  }

  void Progress() {
    options_.on_progress(sent_, done_, failed_, results_);
    progress_.expires_after(std::chrono::milliseconds(500));
    progress_.async_wait([this](const beast::error_code& ec) {
      if (!ec) Progress();
    });
  }

  const std::vector<BenchRequest>& requests_;
  const std::vector<double>& schedule_;
  const RunOptions& options_;
  tcp::endpoint target_;
  asio::io_context io_{1};
  asio::steady_timer dispatch_;
  asio::steady_timer progress_;
  SteadyClock::time_point start_;
  std::vector<RequestResult> results_;
  std::deque<size_t> waiting_;
  std::vector<size_t> firsts_;                        // requests sent on the schedule, in order
  std::vector<int64_t> next_turn_;                    // the turn after request i (-1: none)
  std::vector<std::unique_ptr<ComposedTurn>> turns_;  // multi-turn requests as sent
  bool multi_turn_ = false;
  size_t next_ = 0;
  int64_t in_flight_ = 0, sent_ = 0, done_ = 0, failed_ = 0;
  double last_end_s_ = 0;
};

Session::Session(Runner& runner, size_t index)
    : runner_(runner),
      index_(index),
      socket_(runner.io()),
      deadline_(runner.io()),
      stream_(runner.options().endpoint.chat()) {
  // Not boost::none: Boost 1.74 compares a Content-Length against an empty limit as exceeded.
  parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
}

void Session::Start() {
  const RunOptions& o = runner_.options();
  const BenchRequest& req = runner_.request(index_);
  RequestResult& r = runner_.result(index_);
  r.slo_class = req.slo_class;
  r.prompt_len = req.prompt_len;
  r.expected_output_len = req.output_len;
  request_ = {http::verb::post, o.endpoint.path, 11};
  request_.set(http::field::host, o.endpoint.host + ":" + std::to_string(o.endpoint.port));
  request_.set(http::field::content_type, "application/json");
  request_.set(http::field::accept, "text/event-stream");
  if (!o.api_key.empty()) request_.set(http::field::authorization, "Bearer " + o.api_key);
  if (o.send_slo_class && !req.slo_class.empty()) request_.set("X-SLO-Class", req.slo_class);
  request_.set("X-Request-Id", "bench-" + std::to_string(index_));
  request_.body() = BuildRequestBody(req, o, runner_.turn(index_)).dump();
  request_.prepare_payload();

  r.sent_s = runner_.Now();
  auto self = shared_from_this();
  deadline_.expires_after(
      std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(o.request_timeout_s)));
  deadline_.async_wait([self](const beast::error_code& ec) {
    if (!ec)
      self->End("timed out after " + std::to_string(static_cast<int64_t>(self->runner_.options().request_timeout_s)) +
                " s");
  });
  socket_.async_connect(runner_.target(), [self](const beast::error_code& ec) { self->OnConnect(ec); });
}

void Session::OnConnect(const beast::error_code& ec) {
  if (ended_) return;
  if (ec) return End("connect: " + ec.message());
  socket_.set_option(tcp::no_delay(true));
  http::async_write(socket_, request_,
                    [self = shared_from_this()](const beast::error_code& e, size_t) { self->OnWrite(e); });
}

void Session::OnWrite(const beast::error_code& ec) {
  if (ended_) return;
  if (ec) return End("sending the request: " + ec.message());
  http::async_read_header(socket_, buffer_, parser_,
                          [self = shared_from_this()](const beast::error_code& e, size_t) { self->OnHeader(e); });
}

void Session::OnHeader(const beast::error_code& ec) {
  if (ended_) return;
  if (ec) return End("reading the response header: " + ec.message());
  status_ = parser_.get().result_int();
  runner_.result(index_).http_status = static_cast<int>(status_);
  ReadBody();
}

void Session::ReadBody() {
  parser_.get().body().data = body_;
  parser_.get().body().size = sizeof(body_);
  if (parser_.is_done()) return OnBody({});
  http::async_read_some(socket_, buffer_, parser_,
                        [self = shared_from_this()](const beast::error_code& e, size_t) { self->OnBody(e); });
}

void Session::OnBody(beast::error_code ec) {
  if (ended_) return;
  if (ec == http::error::need_buffer) ec = {};
  const size_t got = sizeof(body_) - parser_.get().body().size;
  if (got > 0) {
    const std::string_view bytes(body_, got);
    if (status_ == 200) {
      stream_.Feed(bytes, runner_.Now() - runner_.result(index_).sent_s);
    } else if (error_body_.size() < 4096) {
      error_body_.append(bytes);
    }
  }
  if (status_ == 200 && (stream_.done() || stream_.failed())) return End("");
  if (ec || parser_.is_done()) {
    if (status_ != 200) return End("HTTP " + std::to_string(status_) + ": " + ErrorBodyMessage(error_body_));
    return End("");  // the stream's own verdict: ended before [DONE]
  }
  ReadBody();
}

void Session::End(const std::string& error) {
  if (ended_) return;
  ended_ = true;
  deadline_.cancel();
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  RequestResult& r = runner_.result(index_);
  r.done_s = runner_.Now();
  stream_.Finish(&r);
  if (!error.empty()) {  // the connection's failure overrides what the stream had to say
    r.success = false;
    r.error = error;
    r.latency_s = -1;
  }
  runner_.OnEnded(index_);
}

}  // namespace

bool HttpEndpoint::chat() const { return path.find("chat/completions") != std::string::npos; }

Result<HttpEndpoint> ParseEndpoint(const std::string& base_url, const std::string& host, int port,
                                   const std::string& endpoint) {
  HttpEndpoint e;
  e.host = host;
  if (port < 1 || port > 65535) return InvalidArgumentError("--port must be in 1..65535");
  e.port = static_cast<uint16_t>(port);
  std::string prefix;
  if (!base_url.empty()) {
    if (base_url.rfind("https://", 0) == 0) {
      return InvalidArgumentError("--base-url " + base_url + ": https is not supported (use a plain http endpoint)");
    }
    if (base_url.rfind("http://", 0) != 0)
      return InvalidArgumentError("--base-url " + base_url + ": expected http://HOST[:PORT][/PATH]");
    std::string rest = base_url.substr(7);
    const size_t slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    if (slash != std::string::npos) prefix = rest.substr(slash);
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    const size_t colon = authority.rfind(':');
    e.port = 80;
    if (colon != std::string::npos && authority.find(']') == std::string::npos) {
      try {
        size_t used = 0;
        const int p = std::stoi(authority.substr(colon + 1), &used);
        if (used != authority.size() - colon - 1 || p < 1 || p > 65535) throw std::invalid_argument("port");
        e.port = static_cast<uint16_t>(p);
      } catch (const std::exception&) {
        return InvalidArgumentError("--base-url " + base_url + ": the port is not a number in 1..65535");
      }
      authority = authority.substr(0, colon);
    }
    if (authority.empty()) return InvalidArgumentError("--base-url " + base_url + ": no host");
    e.host = authority;
  }
  std::string path = endpoint.empty() ? "/v1/completions" : endpoint;
  if (path.front() != '/') path = "/" + path;
  // A base URL that already ends in /v1 and an endpoint that starts with it: say it once.
  if (prefix.size() >= 3 && prefix.substr(prefix.size() - 3) == "/v1" && path.rfind("/v1/", 0) == 0) {
    prefix.resize(prefix.size() - 3);
  }
  e.path = prefix + path;
  return e;
}

nlohmann::json BuildRequestBody(const BenchRequest& request, const RunOptions& options, const ComposedTurn* turn) {
  nlohmann::json body = nlohmann::json::object();
  body["model"] = options.model;
  if (options.endpoint.chat()) {
    if (turn != nullptr) {
      body["messages"] = nlohmann::json::array();
      for (const auto& [role, content] : turn->messages)
        body["messages"].push_back({{"role", role}, {"content", content}});
    } else {
      body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", request.prompt_text}}});
    }
    body["max_completion_tokens"] = request.output_len;
  } else {
    if (turn != nullptr) {
      body["prompt"] = turn->prompt_text;
    } else if (!request.prompt_ids.empty()) {
      body["prompt"] = request.prompt_ids;
    } else {
      body["prompt"] = request.prompt_text;
    }
    body["max_tokens"] = request.output_len;
  }
  body["temperature"] = options.temperature;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  if (options.ignore_eos) body["ignore_eos"] = true;
  for (const auto& [key, value] : options.extra_body.items()) body[key] = value;
  return body;
}

Result<RunResult> RunBenchmark(const std::vector<BenchRequest>& requests, const std::vector<double>& schedule,
                               const RunOptions& options) {
  if (requests.size() != schedule.size()) return InvalidArgumentError("one send time per request");
  if (options.endpoint.chat()) {
    for (const BenchRequest& r : requests) {
      if (r.prompt_text.empty()) {
        return InvalidArgumentError(
            "the chat endpoint needs prompts as text: give --tokenizer (a model folder) so "
            "token-id prompts can be decoded, or use /v1/completions");
      }
    }
  }
  RaiseOpenFileLimit();
  asio::io_context resolve_io;
  tcp::resolver resolver(resolve_io);
  beast::error_code ec;
  auto resolved = resolver.resolve(options.endpoint.host, std::to_string(options.endpoint.port), ec);
  if (ec || resolved.empty()) {
    return InvalidArgumentError("cannot resolve " + options.endpoint.host + ": " + ec.message());
  }
  Runner runner(requests, schedule, options, resolved.begin()->endpoint());
  return runner.Run();
}

Result<std::string> FetchFirstModel(const HttpEndpoint& endpoint, const std::string& api_key, double timeout_s) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  tcp::resolver resolver(io);
  std::string path = endpoint.path;
  const size_t v1 = path.find("/v1/");
  const std::string models_path = (v1 == std::string::npos ? "" : path.substr(0, v1)) + "/v1/models";
  http::request<http::empty_body> req{http::verb::get, models_path, 11};
  req.set(http::field::host, endpoint.host + ":" + std::to_string(endpoint.port));
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  std::string failure;
  const std::string where = "http://" + endpoint.host + ":" + std::to_string(endpoint.port) + models_path;
  stream.expires_after(std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(timeout_s)));
  resolver.async_resolve(endpoint.host, std::to_string(endpoint.port), [&](const beast::error_code& ec, auto results) {
    if (ec) return void(failure = "resolve: " + ec.message());
    stream.async_connect(results, [&](const beast::error_code& ec2, auto) {
      if (ec2) return void(failure = "connect: " + ec2.message());
      http::async_write(stream, req, [&](const beast::error_code& ec3, size_t) {
        if (ec3) return void(failure = "write: " + ec3.message());
        http::async_read(stream, buffer, res, [&](const beast::error_code& ec4, size_t) {
          if (ec4) failure = "read: " + ec4.message();
        });
      });
    });
  });
  io.run();
  if (!failure.empty()) return UnavailableError(where + ": " + failure);
  if (res.result_int() != 200) {
    return FailedPreconditionError(where + ": HTTP " + std::to_string(res.result_int()) + ": " +
                                   ErrorBodyMessage(res.body()));
  }
  const nlohmann::json j = nlohmann::json::parse(res.body(), nullptr, false);
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].is_object() || !j["data"][0].contains("id") || !j["data"][0]["id"].is_string()) {
    return FailedPreconditionError(where + ": no model listed; give --model");
  }
  return j["data"][0]["id"].get<std::string>();
}

}  // namespace tandem::loadgen
