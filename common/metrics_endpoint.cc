#include "common/metrics_endpoint.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <thread>

#include "common/metrics.h"

namespace tandem {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::shared_ptr<prometheus::Collectable> collectable)
      : stream_(std::move(socket)), collectable_(std::move(collectable)) {}

  void Start() {
    stream_.expires_after(std::chrono::seconds(10));
    parser_.body_limit(64 * 1024);
    http::async_read(stream_, buffer_, parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (!ec) self->Answer();
    });
  }

 private:
  void Answer() {
    const auto& req = parser_.get();
    const std::string_view target(req.target().data(), req.target().size());
    response_.version(req.version());
    response_.keep_alive(false);
    response_.set(http::field::server, "tandem");
    if (target.substr(0, target.find('?')) != "/metrics") {
      response_.result(http::status::not_found);
      response_.set(http::field::content_type, "text/plain");
      response_.body() = "only /metrics is served here\n";
    } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
      response_.result(http::status::method_not_allowed);
      response_.set(http::field::allow, "GET");
    } else {
      response_.result(http::status::ok);
      response_.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      if (req.method() == http::verb::get) response_.body() = RenderMetrics(collectable_->Collect());
    }
    response_.prepare_payload();
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code, size_t) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request_parser<http::string_body> parser_;
  http::response<http::string_body> response_;
  std::shared_ptr<prometheus::Collectable> collectable_;
};

}  // namespace

class MetricsEndpoint::Impl {
 public:
  explicit Impl(std::shared_ptr<prometheus::Collectable> collectable)
      : collectable_(std::move(collectable)), acceptor_(io_) {}

  Status Listen(const std::string& host, int port) {
    beast::error_code ec;
    const auto address = net::ip::make_address(host, ec);
    if (ec) return InvalidArgumentError("metrics host '" + host + "': " + ec.message());
    const tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
    const std::string where = host + ":" + std::to_string(port);
    if (acceptor_.open(endpoint.protocol(), ec); ec)
      return UnavailableError("metrics on " + where + ": " + ec.message());
    acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (acceptor_.bind(endpoint, ec); ec) return UnavailableError("metrics on " + where + ": " + ec.message());
    if (acceptor_.listen(net::socket_base::max_listen_connections, ec); ec) {
      return UnavailableError("metrics on " + where + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { io_.run(); });
    return Status::Ok();
  }

  ~Impl() {
    net::post(io_, [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
    });
    io_.stop();  // open connections are dropped with the io_context
    if (thread_.joinable()) thread_.join();
  }

  uint16_t port() const { return port_; }

 private:
  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) {  // e.g. out of file descriptors: retrying at once would spin
        retry_.expires_after(std::chrono::milliseconds(50));
        retry_.async_wait([this](beast::error_code timer_ec) {
          if (!timer_ec) Accept();
        });
        return;
      }
      std::make_shared<Connection>(std::move(socket), collectable_)->Start();
      Accept();
    });
  }

  std::shared_ptr<prometheus::Collectable> collectable_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_{io_};
  std::thread thread_;
  uint16_t port_ = 0;
};

MetricsEndpoint::MetricsEndpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsEndpoint::~MetricsEndpoint() = default;
uint16_t MetricsEndpoint::port() const { return impl_->port(); }

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(const std::string& host, int port,
                                                                std::shared_ptr<prometheus::Collectable> collectable) {
  if (port < 0 || port > 65535)
    return InvalidArgumentError("metrics port " + std::to_string(port) + " is out of range");
  auto impl = std::make_unique<Impl>(std::move(collectable));
  RETURN_IF_ERROR(impl->Listen(host, port));
  return std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint(std::move(impl)));
}

}  // namespace tandem
