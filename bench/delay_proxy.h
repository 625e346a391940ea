// A TCP relay on 127.0.0.1 that delays every byte by a fixed one-way delay, both ways: a stand-in
// for a network link with latency where `tc netem` is not available (no sch_netem in the kernel
// of a sandbox). Each accepted connection is relayed to `target_port`; bytes read at time t are
// written at t + delay, in order. Used by bench/reservation_bench.cc to put a delay on every
// control-plane connection (router -> nodes, prefill -> decode); KV over UCX is not relayed.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

namespace tandem::bench {

class DelayProxy {
 public:
  using tcp = boost::asio::ip::tcp;

  DelayProxy(uint16_t target_port, std::chrono::microseconds delay)
      : target_port_(target_port),
        delay_(delay),
        acceptor_(io_, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~DelayProxy() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  // One direction of one connection: read, hold each chunk until its time, write in order.
  struct Pipe : std::enable_shared_from_this<Pipe> {
    Pipe(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to, std::chrono::microseconds delay)
        : from(std::move(from)), to(std::move(to)), timer(this->to->get_executor()), delay(delay) {}
    void Read() {
      auto self = shared_from_this();
      from->async_read_some(boost::asio::buffer(buf), [self](boost::system::error_code ec, size_t n) {
        if (ec) {
          boost::system::error_code ignored;
          self->to->shutdown(tcp::socket::shutdown_send, ignored);
          return;
        }
        self->queue.push_back({std::chrono::steady_clock::now() + self->delay,
                               std::vector<char>(self->buf, self->buf + n)});
        if (!self->writing) self->WriteNext();
        self->Read();
      });
    }
    void WriteNext() {
      if (queue.empty()) {
        writing = false;
        return;
      }
      writing = true;
      auto self = shared_from_this();
      timer.expires_at(queue.front().due);
      timer.async_wait([self](boost::system::error_code) {
        boost::asio::async_write(*self->to, boost::asio::buffer(self->queue.front().bytes),
                                 [self](boost::system::error_code ec, size_t) {
                                   self->queue.pop_front();
                                   if (ec) return;
                                   self->WriteNext();
                                 });
      });
    }
    struct Chunk {
      std::chrono::steady_clock::time_point due;
      std::vector<char> bytes;
    };
    std::shared_ptr<tcp::socket> from, to;
    boost::asio::steady_timer timer;
    std::chrono::microseconds delay;
    std::deque<Chunk> queue;
    bool writing = false;
    char buf[64 * 1024];
  };

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket client) {
      if (ec) return;
      auto in = std::make_shared<tcp::socket>(std::move(client));
      auto out = std::make_shared<tcp::socket>(io_);
      boost::system::error_code cec;
      out->connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), target_port_), cec);
      if (!cec) {
        in->set_option(tcp::no_delay(true));
        out->set_option(tcp::no_delay(true));
        std::make_shared<Pipe>(in, out, delay_)->Read();
        std::make_shared<Pipe>(out, in, delay_)->Read();
      }
      Accept();
    });
  }

  const uint16_t target_port_;
  const std::chrono::microseconds delay_;
  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

}  // namespace tandem::bench
