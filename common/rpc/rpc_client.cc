#include "common/rpc/rpc_client.h"

#include <boost/asio/post.hpp>

#include "common/logging.h"
#include "common/rpc/connection_internal.h"

namespace tandem::rpc {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

RpcClient::RpcClient(RpcClientOptions options, RpcClientCallbacks callbacks)
    : options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      log_(GetLogger("rpc")),
      backoff_timer_(io_) {}

RpcClient::~RpcClient() {
  Stop();
  if (thread_.joinable()) {
    // Only when Stop() ran on the io thread (a REQUIRES violation); see RpcServer.
    if (std::this_thread::get_id() == thread_.get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }
  conn_.reset();  // before io_ goes
}

Status RpcClient::Start() {
  if (started_) return FailedPreconditionError("RpcClient::Start called twice");
  RETURN_IF_ERROR(options_.connection.Validate());
  RETURN_IF_ERROR(options_.backoff.Validate());
  if (options_.port == 0) return InvalidArgumentError("RpcClientOptions.port must be set");
  boost::system::error_code ec;
  const asio::ip::address address = asio::ip::make_address(options_.host, ec);
  if (!ec) {
    endpoint_ = tcp::endpoint(address, options_.port);
  } else {
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
    if (ec || results.empty()) {
      return UnavailableError("RpcClient: cannot resolve '" + options_.host +
                              "': " + (ec ? ec.message() : std::string("no addresses")));
    }
    endpoint_ = results.begin()->endpoint();
  }

  Connection::Callbacks cb;
  cb.on_ready = [this](const Connection::Ptr& conn) { OnConnectionReady(conn); };
  cb.on_message = [this](const Connection::Ptr&, proto::Envelope&& env) {
    if (callbacks_.on_message) callbacks_.on_message(std::move(env));
  };
  cb.on_closed = [this](const Connection::Ptr& conn, const Status& status) {
    OnConnectionClosed(conn, status);
  };
  conn_ = Connection::Create(io_, Connection::Side::kClient, options_.connection, options_.hello,
                             std::move(cb), options_.validator);
  started_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = false;
  }
  work_.emplace(io_.get_executor());
  conn_->Connect(endpoint_);
  thread_ = std::thread([this] { internal::RunIoContext(io_, *log_, "rpc client"); });
  return Status::Ok();
}

void RpcClient::OnConnectionReady(const Connection::Ptr& conn) {
  failures_ = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready_ = true;
    last_status_ = Status::Ok();
  }
  cv_.notify_all();
  if (callbacks_.on_ready) callbacks_.on_ready(conn->peer_hello());
}

void RpcClient::OnConnectionClosed(const Connection::Ptr& conn, const Status& status) {
  bool was_ready = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_ready = ready_;
    ready_ = false;
    closed_ = true;
    last_status_ = status;
  }
  cv_.notify_all();
  if (stopping_.load()) return;

  // A lost ready connection is not a failed attempt: the first retry comes after `initial`.
  failures_ = was_ready ? 0 : failures_ + 1;
  const int max_attempts = options_.backoff.max_attempts;
  std::string give_up_reason;
  if (conn->refused()) {
    give_up_reason = "the peer refused the handshake";
  } else if (max_attempts > 0 && failures_ >= max_attempts) {
    give_up_reason = std::to_string(failures_) + " consecutive failed attempts";
  }
  if (!give_up_reason.empty()) {
    log_->warn("giving up on {}: {} ({})", conn->peer_address(), give_up_reason, status.ToString());
    {
      std::lock_guard<std::mutex> lock(mu_);
      gave_up_ = true;
    }
    cv_.notify_all();
    if (callbacks_.on_disconnected) callbacks_.on_disconnected(status);
    return;
  }
  if (was_ready && callbacks_.on_disconnected) callbacks_.on_disconnected(status);

  const auto delay = BackoffDelay(options_.backoff, std::max(failures_, 1));
  log_->debug("reconnecting to {} in {} ms ({})", conn->peer_address(), delay.count(),
              status.ToString());
  backoff_timer_.expires_after(delay);
  backoff_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_.load()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = false;
    }
    conn_->Connect(endpoint_);
  });
}

Status RpcClient::WaitReady(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return ready_ || gave_up_ || stopped_; });
  if (ready_) return Status::Ok();
  if (gave_up_) return last_status_;
  if (stopped_) return FailedPreconditionError("RpcClient is stopped");
  return DeadlineExceededError(
      "not connected to " + options_.host + ":" + std::to_string(options_.port) + " after " +
      std::to_string(timeout.count()) + " ms; last error: " + last_status_.ToString());
}

Status RpcClient::Send(proto::Envelope envelope) {
  if (!conn_) return FailedPreconditionError("RpcClient::Send before Start");
  return conn_->Send(std::move(envelope));
}

void RpcClient::Stop() {
  if (!started_ || stopping_.exchange(true)) return;
  if (std::this_thread::get_id() == thread_.get_id()) {
    log_->error("RpcClient::Stop called on its own io thread; stopping without draining");
    io_.stop();
    return;
  }
  asio::post(io_, [this] {
    backoff_timer_.cancel();
    conn_->Drain("client shutting down");
  });
  {
    std::unique_lock<std::mutex> lock(mu_);
    const auto bound = options_.connection.drain_timeout + std::chrono::milliseconds(250);
    // closed_ covers "between attempts": then nothing is live and there is nothing to drain.
    if (!cv_.wait_for(lock, bound, [this] { return closed_; })) {
      log_->warn("rpc client stop: connection to {} still open after {} ms; closing it",
                 conn_->peer_address(), bound.count());
    }
  }
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    ready_ = false;
  }
  cv_.notify_all();
}

bool RpcClient::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

bool RpcClient::gave_up() const {
  std::lock_guard<std::mutex> lock(mu_);
  return gave_up_;
}

Status RpcClient::last_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_status_;
}

}  // namespace tandem::rpc
