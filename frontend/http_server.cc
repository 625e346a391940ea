#include "frontend/http_server.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <string>
#include <utility>

#include "frontend/http_session.h"
#include "frontend/server_context.h"

namespace tandem {

namespace net = boost::asio;
using tcp = net::ip::tcp;

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, std::shared_ptr<const ServedModel> model, InferenceClient& client)
      : ctx_(std::make_shared<ServerContext>(std::move(options), std::move(model), client)),
        ioc_(ctx_->options.num_threads > 0 ? ctx_->options.num_threads : 1),
        acceptor_(net::make_strand(ioc_)) {}

  Result<uint16_t> Start() {
    if (!ctx_->options.api_key.empty() && ctx_->options.api_keys) {
      return InvalidArgumentError("give either --api-key or --api-keys, not both (the file can hold that key too)");
    }
    const HttpServerOptions& o = ctx_->options;
    if (o.num_threads < 1) return InvalidArgumentError("the server needs at least one io thread");
    for (const auto& [name, seconds] : {std::pair{"idle", o.idle_timeout_s}, std::pair{"header", o.header_timeout_s},
                                        std::pair{"body", o.body_timeout_s}, std::pair{"write", o.write_timeout_s}}) {
      if (seconds < 1) {
        return InvalidArgumentError(std::string("the HTTP ") + name + " timeout must be at least 1 s, not " +
                                    std::to_string(seconds));
      }
    }
    boost::system::error_code ec;
    const net::ip::address address = net::ip::make_address(o.host, ec);
    if (ec) return InvalidArgumentError("--host '" + o.host + "' is not an IP address: " + ec.message());
    const tcp::endpoint endpoint(address, o.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return UnavailableError("cannot listen on " + o.host + ":" + std::to_string(o.port) + ": " + ec.message());
    }
    const uint16_t port = acceptor_.local_endpoint().port();
    DoAccept();
    for (int i = 0; i < o.num_threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
    ctx_->log->info("serving `{}` on http://{}:{} ({} io threads)", ctx_->model->name, o.host, port, o.num_threads);
    return port;
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    ctx_->CloseGate();  // client threads post nothing from now on
    work_.reset();
    ioc_.stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    // Connections still open are destroyed with ioc_ (their pending handlers go with it); each
    // aborts its request in the client on the way out.
  }

 private:
  void DoAccept() {
    acceptor_.async_accept(net::make_strand(ioc_), [this](boost::system::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) {
        // E.g. out of file descriptors: the connection stays in the backlog, so accepting again at
        // once fails at once, and the loop would spin (and log) at full speed. Wait, then retry.
        if (accept_failures_++ == 0) ctx_->log->warn("accept failed: {}; retrying every 50 ms", ec.message());
        accept_retry_.expires_after(std::chrono::milliseconds(50));
        accept_retry_.async_wait([this](boost::system::error_code timer_ec) {
          if (!timer_ec) DoAccept();
        });
        return;
      }
      if (accept_failures_ > 0) {
        ctx_->log->info("accepting connections again after {} failed attempts", accept_failures_);
        accept_failures_ = 0;
      }
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // SSE chunks are small and latency-bound
      std::make_shared<HttpSession>(std::move(socket), ctx_)->Start();
      DoAccept();
    });
  }

  std::shared_ptr<ServerContext> ctx_;
  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> work_{ioc_.get_executor()};
  tcp::acceptor acceptor_;
  net::steady_timer accept_retry_{acceptor_.get_executor()};  // on the acceptor's strand
  int64_t accept_failures_ = 0;                               // in a row; touched on that strand only
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

HttpServer::HttpServer(HttpServerOptions options, std::shared_ptr<const ServedModel> model, InferenceClient& client)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(model), client)) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  ASSIGN_OR_RETURN(port_, impl_->Start());
  return Status::Ok();
}

void HttpServer::Stop() { impl_->Stop(); }

}  // namespace tandem
