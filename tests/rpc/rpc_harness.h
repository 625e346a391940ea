// A server and clients wired to Recorders, for the client/server tests.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "common/rpc/rpc_client.h"
#include "common/rpc/rpc_server.h"
#include "tests/rpc/rpc_test_util.h"

namespace tandem::rpc::testing {

struct ServerHarness {
  Recorder rec;  // messages received, peers closed (with status), peers ready
  std::unique_ptr<RpcServer> server;
  // Optional extra behaviour on each message (runs on the server's io thread).
  std::function<void(const Connection::Ptr&, const proto::Envelope&)> on_message;

  static RpcServerOptions DefaultOptions(uint16_t port = 0) {
    RpcServerOptions o;
    o.host = "127.0.0.1";
    o.port = port;
    o.hello = MakeHello(proto::ROLE_PREFILL, "prefill-0");
    o.connection = FastOptions();
    return o;
  }

  explicit ServerHarness(RpcServerOptions options = DefaultOptions()) {
    RpcServerCallbacks cb;
    cb.on_peer_ready = [this](const Connection::Ptr& c) { rec.AddReady(c->peer_hello()); };
    cb.on_message = [this](const Connection::Ptr& c, proto::Envelope&& env) {
      if (on_message) on_message(c, env);
      rec.AddMessage(std::move(env));
    };
    cb.on_peer_closed = [this](const Connection::Ptr&, const Status& s) { rec.AddClosed(s); };
    server = std::make_unique<RpcServer>(std::move(options), std::move(cb));
  }
  uint16_t port() const { return server->port(); }
};

struct ClientHarness {
  Recorder rec;  // messages received, disconnects (with status), ready
  std::unique_ptr<RpcClient> client;
  std::function<void(const proto::Envelope&)> on_message;

  static RpcClientOptions DefaultOptions(uint16_t port, const std::string& node_id = "router-0") {
    RpcClientOptions o;
    o.host = "127.0.0.1";
    o.port = port;
    o.hello = MakeHello(proto::ROLE_ROUTER, node_id);
    o.connection = FastOptions();
    o.backoff = FastBackoff();
    return o;
  }

  explicit ClientHarness(RpcClientOptions options) {
    RpcClientCallbacks cb;
    cb.on_ready = [this](const proto::Hello& h) { rec.AddReady(h); };
    cb.on_message = [this](proto::Envelope&& env) {
      if (on_message) on_message(env);
      rec.AddMessage(std::move(env));
    };
    cb.on_disconnected = [this](const Status& s) { rec.AddClosed(s); };
    client = std::make_unique<RpcClient>(std::move(options), std::move(cb));
  }
};

}  // namespace tandem::rpc::testing
