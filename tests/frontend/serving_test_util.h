// Shared by the scheduler tests: a tiny model made once per test binary, greedy reference
// generation with a plain Engine, a fault-injecting backend, and a small HTTP client whose every
// operation is bounded by a timeout (127.0.0.1 only).
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/backend.h"
#include "tests/kernels/fault_injecting_backend.h"
#include "engine/engine.h"
#include "model/kv_cache.h"
#include "model/make_model.h"
#include "model/model_weights.h"
#include "model/transformer.h"

namespace tandem::testing {

// The tiny preset (seed 7) in a temp dir, created on first use and removed at exit.
inline const std::string& TinyModelDir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    const fs::path root = fs::temp_directory_path() / ("tandem_scheduler_test_" + std::to_string(::getpid()));
    fs::remove_all(root);
    MakeModelOptions opt;
    opt.preset = "tiny";
    opt.seed = 7;
    opt.out_dir = (root / "tiny-chat").string();
    const Status st = MakeModel(opt);
    if (!st.ok()) {
      ADD_FAILURE() << "MakeModel: " << st.ToString();
      return std::string();
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(std::filesystem::temp_directory_path() /
                                      ("tandem_scheduler_test_" + std::to_string(::getpid())),
                                  ec);
    });
    return opt.out_dir;
  }();
  return dir;
}

// Output ids of one request run alone through a fresh Engine: the reference the server must match.
inline std::vector<int32_t> ReferenceGenerate(const std::vector<int32_t>& prompt, const SamplingParams& params) {
  auto backend = CreateBackend("cpu");
  EXPECT_TRUE(backend.ok());
  auto weights = LoadModelWeights(TinyModelDir(), **backend);
  EXPECT_TRUE(weights.ok());
  KvCacheOptions kv;
  kv.num_blocks = 256;
  auto cache = KvCache::Create(**backend, (*weights)->config, kv);
  auto transformer = Transformer::Create(**backend, **weights);
  EXPECT_TRUE(cache.ok() && transformer.ok());
  Engine engine(**transformer, **cache, EngineOptions{});
  Request r;
  r.id = 1;
  r.prompt = prompt;
  r.params = params;
  EXPECT_TRUE(engine.Add(std::move(r)).ok());
  while (engine.HasWork()) {
    auto out = engine.Step();
    EXPECT_TRUE(out.ok());
    if (!out.ok()) break;
  }
  auto done = engine.TakeFinished(1);
  return done ? done->output : std::vector<int32_t>{};
}

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
  explicit TestHttpClient(uint16_t port, std::chrono::seconds timeout = std::chrono::seconds(60))
      : port_(port), timeout_(timeout), stream_(ioc_) {}

  HttpReply Request(boost::beast::http::verb verb, const std::string& target, const std::string& body = "",
                    const std::map<std::string, std::string>& headers = {}) {
    namespace http = boost::beast::http;
    http::request<http::string_body> req(verb, target, 11);
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || verb == http::verb::post) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    return Exchange([&](auto& stream, auto done) { http::async_write(stream, req, done); });
  }
  HttpReply Post(const std::string& target, const nlohmann::json& body,
                 const std::map<std::string, std::string>& headers = {}) {
    return Request(boost::beast::http::verb::post, target, body.dump(), headers);
  }
  HttpReply Get(const std::string& target) { return Request(boost::beast::http::verb::get, target); }
  // Sends raw bytes as the request.
  HttpReply Raw(const std::string& bytes) {
    return Exchange([&](auto& stream, auto done) { boost::asio::async_write(stream, boost::asio::buffer(bytes), done); });
  }

  // Sends `bytes` and returns what arrives until `until` appears in it (or the timeout).
  std::string SendAndReadUntil(const std::string& bytes, const std::string& until) {
    if (!Connect()) return "";
    boost::beast::error_code ec;
    Run([&](auto cb) { boost::asio::async_write(stream_, boost::asio::buffer(bytes), cb); }, &ec);
    std::string got;
    char buf[4096];
    while (!ec && got.find(until) == std::string::npos) {
      size_t n = 0;
      Run([&](auto cb) { stream_.async_read_some(boost::asio::buffer(buf), cb); }, &ec, &n);
      got.append(buf, n);
    }
    return got;
  }
  void Close() {
    boost::beast::error_code ec;
    stream_.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    stream_.close();
    connected_ = false;
  }

 private:
  template <typename Start>
  void Run(Start start, boost::beast::error_code* ec, size_t* n = nullptr) {
    stream_.expires_after(timeout_);
    start([ec, n](boost::beast::error_code e, size_t bytes) {
      *ec = e;
      if (n) *n = bytes;
    });
    ioc_.restart();
    ioc_.run();
  }
  bool Connect() {
    if (connected_) return true;
    boost::beast::error_code ec;
    stream_.expires_after(timeout_);
    stream_.async_connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_),
                          [&](boost::beast::error_code e) { ec = e; });
    ioc_.restart();
    ioc_.run();
    connected_ = !ec;
    return connected_;
  }
  template <typename Write>
  HttpReply Exchange(Write write) {
    namespace http = boost::beast::http;
    HttpReply reply;
    if (!Connect()) {
      reply.error = "connect failed";
      return reply;
    }
    boost::beast::error_code ec;
    Run([&](auto cb) { write(stream_, cb); }, &ec);
    if (ec) {
      reply.error = "write: " + ec.message();
      Close();
      return reply;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    Run([&](auto cb) { http::async_read(stream_, buffer_, parser, cb); }, &ec);
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

  uint16_t port_;
  std::chrono::seconds timeout_;
  boost::asio::io_context ioc_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  bool connected_ = false;
};

}  // namespace tandem::testing
