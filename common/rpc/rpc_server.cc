#include "common/rpc/rpc_server.h"

#include <boost/asio/post.hpp>

#include "common/logging.h"
#include "common/rpc/connection_internal.h"

namespace tandem::rpc {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

RpcServer::RpcServer(RpcServerOptions options, RpcServerCallbacks callbacks)
    : options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      log_(GetLogger("rpc")),
      acceptor_(io_),
      accept_retry_timer_(io_) {}

RpcServer::~RpcServer() {
  Stop();
  if (thread_.joinable()) {
    // Only reachable when Stop() ran on the io thread (a REQUIRES violation): joining would
    // deadlock, and std::thread's destructor would terminate.
    if (std::this_thread::get_id() == thread_.get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  conns_.clear();  // before io_ goes: their sockets belong to it
}

Status RpcServer::Start() {
  if (started_) return FailedPreconditionError("RpcServer::Start called twice");
  RETURN_IF_ERROR(options_.connection.Validate());
  if (options_.max_connections == 0) {
    return InvalidArgumentError("RpcServerOptions.max_connections must be positive");
  }
  boost::system::error_code ec;
  const asio::ip::address address = asio::ip::make_address(options_.host, ec);
  if (ec) {
    return InvalidArgumentError("RpcServer: host '" + options_.host + "' is not an IP address");
  }
  const tcp::endpoint endpoint(address, options_.port);
  const std::string where = options_.host + ":" + std::to_string(options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);  // restart on same port
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acceptor_.close(ec);
    return UnavailableError("RpcServer: cannot listen on " + where + ": " + ec.message());
  }
  port_.store(acceptor_.local_endpoint(ec).port(), std::memory_order_release);
  started_ = true;
  work_.emplace(io_.get_executor());
  DoAccept();
  thread_ = std::thread([this] { internal::RunIoContext(io_, *log_, "rpc server"); });
  log_->info("rpc server listening on {}:{}", options_.host, port());
  return Status::Ok();
}

void RpcServer::DoAccept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void RpcServer::OnAccept(const boost::system::error_code& ec, tcp::socket socket) {
  if (stopping_.load() || ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    // E.g. EMFILE: back off briefly instead of spinning on a failing accept.
    log_->warn("accept failed: {}; retrying in 50 ms", ec.message());
    accept_retry_timer_.expires_after(std::chrono::milliseconds(50));
    accept_retry_timer_.async_wait([this](const boost::system::error_code& timer_ec) {
      if (!timer_ec && !stopping_.load()) DoAccept();
    });
    return;
  }
  accepted_total_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (conns_.size() >= options_.max_connections) {
      log_->warn("refusing a connection: {} open (max_connections)", conns_.size());
      boost::system::error_code close_ec;
      socket.close(close_ec);
      DoAccept();
      return;
    }
  }
  Connection::Callbacks cb;
  cb.on_ready = [this](const Connection::Ptr& conn) {
    if (callbacks_.on_peer_ready) callbacks_.on_peer_ready(conn);
  };
  cb.on_message = [this](const Connection::Ptr& conn, proto::Envelope&& env) {
    if (callbacks_.on_message) callbacks_.on_message(conn, std::move(env));
  };
  cb.on_closed = [this](const Connection::Ptr& conn, const Status& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      conns_.erase(conn);
    }
    cv_.notify_all();
    if (callbacks_.on_peer_closed) callbacks_.on_peer_closed(conn, status);
  };
  auto conn = Connection::Create(io_, Connection::Side::kServer, options_.connection,
                                 options_.hello, std::move(cb), options_.validator);
  {
    std::lock_guard<std::mutex> lock(mu_);
    conns_.insert(conn);
  }
  conn->Accept(std::move(socket));
  DoAccept();
}

void RpcServer::Stop() {
  if (!started_ || stopping_.exchange(true)) return;
  if (std::this_thread::get_id() == thread_.get_id()) {
    // Joining ourselves would deadlock; stop the loop and let the destructor deal with it.
    log_->error("RpcServer::Stop called on its own io thread; stopping without draining");
    io_.stop();
    return;
  }
  asio::post(io_, [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
    accept_retry_timer_.cancel();
    std::vector<Connection::Ptr> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      all.assign(conns_.begin(), conns_.end());
    }
    for (const auto& conn : all) conn->Drain("server shutting down");
  });
  {
    // Each connection bounds its own drain; the margin covers scheduling only.
    std::unique_lock<std::mutex> lock(mu_);
    const auto bound = options_.connection.drain_timeout + std::chrono::milliseconds(250);
    if (!cv_.wait_for(lock, bound, [this] { return conns_.empty(); })) {
      log_->warn("rpc server stop: {} connections still open after {} ms; closing them",
                 conns_.size(), bound.count());
    }
  }
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
  log_->info("rpc server on port {} stopped", port());
}

std::vector<Connection::Ptr> RpcServer::ReadyPeers() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Connection::Ptr> out;
  for (const auto& conn : conns_) {
    if (conn->state() == Connection::State::kReady) out.push_back(conn);
  }
  return out;
}

Connection::Ptr RpcServer::FindPeer(std::string_view node_id) const {
  for (auto& conn : ReadyPeers()) {
    if (conn->peer_hello().node_id() == node_id) return conn;
  }
  return nullptr;
}

size_t RpcServer::num_connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return conns_.size();
}

}  // namespace tandem::rpc
