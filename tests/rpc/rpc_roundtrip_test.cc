// Client/server behaviour on 127.0.0.1 when both ends follow the protocol.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "tests/rpc/rpc_harness.h"

namespace tandem::rpc::testing {
namespace {

TEST(RpcRoundTripTest, EnvelopesFlowBothWaysAndHellosAreExchanged) {
  ServerHarness s;
  s.on_message = [](const Connection::Ptr& c, const proto::Envelope& env) {
    proto::Envelope reply;
    auto* first = reply.mutable_first_token();
    first->set_request_id(env.prefill_request().request_id());
    first->set_token_id(env.prefill_request().prompt_token_ids(0) + 1);
    first->set_logprob(-0.5f);
    ASSERT_TRUE(c->Send(std::move(reply)).ok());
  };
  ASSERT_TRUE(s.server->Start().ok());
  ASSERT_NE(s.port(), 0);
  ClientHarness c(ClientHarness::DefaultOptions(s.port()));
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok()) << c.client->last_status().ToString();

  // Each side knows the other from its Hello.
  EXPECT_EQ(c.client->peer_hello().node_id(), "prefill-0");
  EXPECT_EQ(c.client->peer_hello().role(), proto::ROLE_PREFILL);
  EXPECT_EQ(c.client->peer_hello().protocol_version(), kProtocolVersion);
  ASSERT_TRUE(s.rec.WaitReady(1));
  auto peer = s.server->FindPeer("router-0");
  ASSERT_NE(peer, nullptr);
  EXPECT_EQ(peer->peer_hello().kv_layout_hash(), 0x1234abcdULL);
  EXPECT_EQ(s.server->FindPeer("nobody"), nullptr);

  proto::Envelope req;
  req.mutable_prefill_request()->set_request_id("req-1");
  req.mutable_prefill_request()->add_prompt_token_ids(41);
  req.mutable_prefill_request()->mutable_sampling()->set_max_tokens(16);
  ASSERT_TRUE(c.client->Send(req).ok());

  ASSERT_TRUE(s.rec.WaitMessages(1));
  const proto::Envelope got = s.rec.messages()[0];
  EXPECT_EQ(got.protocol_version(), kProtocolVersion);
  EXPECT_GT(got.sent_unix_us(), 0);
  EXPECT_EQ(got.prefill_request().request_id(), "req-1");
  EXPECT_EQ(got.prefill_request().sampling().max_tokens(), 16u);

  ASSERT_TRUE(c.rec.WaitMessages(1));
  const proto::Envelope reply = c.rec.messages()[0];
  EXPECT_EQ(reply.first_token().request_id(), "req-1");
  EXPECT_EQ(reply.first_token().token_id(), 42);
  EXPECT_TRUE(reply.first_token().has_logprob());
}

TEST(RpcRoundTripTest, SendIsRefusedWhenNotReadyOrForTransportPayloads) {
  SilentListener silent;  // TCP connects, the handshake never completes
  auto options = ClientHarness::DefaultOptions(silent.port());
  options.connection.hello_timeout = milliseconds(2000);
  ClientHarness c(options);
  EXPECT_EQ(c.client->Send(MakeAbort("r")).code(), StatusCode::kFailedPrecondition);  // no Start
  ASSERT_TRUE(c.client->Start().ok());
  Status s = c.client->Send(MakeAbort("r"));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("not ready"), std::string::npos) << s.message();

  ServerHarness srv;
  ASSERT_TRUE(srv.server->Start().ok());
  ClientHarness ok(ClientHarness::DefaultOptions(srv.port()));
  ASSERT_TRUE(ok.client->Start().ok());
  ASSERT_TRUE(ok.client->WaitReady(milliseconds(3000)).ok());
  EXPECT_EQ(ok.client->Send(proto::Envelope()).code(), StatusCode::kInvalidArgument);
  proto::Envelope hello;
  *hello.mutable_hello() = MakeHello(proto::ROLE_ROUTER, "x");
  Status t = ok.client->Send(hello);
  EXPECT_EQ(t.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.message().find("reserved for the transport"), std::string::npos) << t.message();
}

TEST(RpcRoundTripTest, ProtocolVersionMismatchIsRefusedAndNotRetried) {
  ServerHarness s;
  ASSERT_TRUE(s.server->Start().ok());
  auto options = ClientHarness::DefaultOptions(s.port());
  options.hello.set_protocol_version(kProtocolVersion + 98);
  ClientHarness c(options);
  ASSERT_TRUE(c.client->Start().ok());
  const auto start = Clock::now();
  Status st = c.client->WaitReady(milliseconds(3000));
  EXPECT_LT(SecondsSince(start), 1.0);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("protocol version " + std::to_string(kProtocolVersion + 98)),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("refused"), std::string::npos) << st.message();
  EXPECT_TRUE(c.client->gave_up());
  ASSERT_TRUE(c.rec.WaitClosed(1));
  EXPECT_EQ(c.rec.closed()[0].code(), StatusCode::kFailedPrecondition);

  // The server saw the refusal too, and the client does not hammer it with retries.
  ASSERT_TRUE(s.rec.WaitClosed(1));
  EXPECT_EQ(s.rec.closed()[0].code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.rec.closed()[0].message().find("refused hello"), std::string::npos);
  std::this_thread::sleep_for(milliseconds(150));  // > several backoff delays
  EXPECT_EQ(s.server->accepted_total(), 1u);
  EXPECT_TRUE(s.rec.ready().empty());
}

TEST(RpcRoundTripTest, HelloValidatorRefusesMismatchedKvLayout) {
  auto server_options = ServerHarness::DefaultOptions();
  server_options.validator = [](const proto::Hello& peer) -> Status {
    if (peer.kv_layout_hash() != 0x1234abcdULL) {
      return FailedPreconditionError("kv layout hash differs");
    }
    return Status::Ok();
  };
  ServerHarness s(server_options);
  ASSERT_TRUE(s.server->Start().ok());

  ClientHarness good(ClientHarness::DefaultOptions(s.port(), "good"));
  ASSERT_TRUE(good.client->Start().ok());
  EXPECT_TRUE(good.client->WaitReady(milliseconds(3000)).ok());

  auto bad_options = ClientHarness::DefaultOptions(s.port(), "bad");
  bad_options.hello.set_kv_layout_hash(7);
  ClientHarness bad(bad_options);
  ASSERT_TRUE(bad.client->Start().ok());
  Status st = bad.client->WaitReady(milliseconds(3000));
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("kv layout hash differs"), std::string::npos) << st.message();
  EXPECT_TRUE(good.client->ready());  // one refusal does not disturb other peers
}

TEST(RpcRoundTripTest, ManyConcurrentMessagesArriveInPerSenderOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  auto server_options = ServerHarness::DefaultOptions();
  server_options.connection.max_queued_frames = 1 << 16;  // the echo must never be refused
  ServerHarness s(server_options);
  s.on_message = [](const Connection::Ptr& c, const proto::Envelope& env) {
    proto::Envelope echo = env;
    echo.set_sent_unix_us(0);
    Status st = c->Send(std::move(echo));
    if (!st.ok()) ADD_FAILURE() << st.ToString();
  };
  ASSERT_TRUE(s.server->Start().ok());
  ClientHarness c(ClientHarness::DefaultOptions(s.port()));
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok());

  std::atomic<int> retries{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        proto::Envelope env;
        env.mutable_token_chunk()->set_request_id("t" + std::to_string(t));
        env.mutable_token_chunk()->add_token_ids(i);
        while (true) {
          Status st = c.client->Send(env);
          if (st.ok()) break;
          ASSERT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
          retries.fetch_add(1);
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& th : senders) th.join();

  const size_t total = kThreads * kPerThread;
  ASSERT_TRUE(s.rec.WaitMessages(total, milliseconds(4000))) << s.rec.messages().size();
  ASSERT_TRUE(c.rec.WaitMessages(total, milliseconds(4000))) << c.rec.messages().size();
  for (const auto* rec : {&s.rec, &c.rec}) {
    std::vector<int> next(kThreads, 0);
    for (const auto& env : rec->messages()) {
      const int t = std::stoi(env.token_chunk().request_id().substr(1));
      ASSERT_EQ(env.token_chunk().token_ids(0), next[t]) << "sender " << t << " out of order";
      ++next[t];
    }
    EXPECT_EQ(next, std::vector<int>(kThreads, kPerThread));
  }
  RecordProperty("send_retries", retries.load());
}

TEST(RpcRoundTripTest, FullOutgoingQueueIsBackpressureNotLoss) {
  constexpr size_t kMaxQueued = 8;
  ServerHarness s;
  s.server = nullptr;  // rebuilt below with an on_peer_ready that pokes the client
  RpcServerCallbacks cb;
  cb.on_peer_ready = [](const Connection::Ptr& conn) {
    ASSERT_TRUE(conn->Send(MakeAbort("poke")).ok());
  };
  cb.on_message = [&s](const Connection::Ptr&, proto::Envelope&& env) {
    s.rec.AddMessage(std::move(env));
  };
  auto server_options = ServerHarness::DefaultOptions();
  server_options.connection.idle_timeout = milliseconds(20000);  // the client sends no heartbeats
  s.server = std::make_unique<RpcServer>(server_options, std::move(cb));
  ASSERT_TRUE(s.server->Start().ok());

  auto options = ClientHarness::DefaultOptions(s.port());
  options.connection.max_queued_frames = kMaxQueued;
  options.connection.heartbeat_interval = milliseconds(10000);  // no transport frames meanwhile
  options.connection.idle_timeout = milliseconds(20000);
  ClientHarness c(options);
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> first{true};
  c.on_message = [&](const proto::Envelope&) {
    if (!first.exchange(false)) return;
    entered.set_value();
    released.wait();  // holds the client's io thread: nothing it queues can drain
  };
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_EQ(entered.get_future().wait_for(milliseconds(3000)), std::future_status::ready);

  const size_t already = c.client->connection()->queued_frames();
  ASSERT_LT(already, kMaxQueued);
  for (size_t i = already; i < kMaxQueued; ++i) {
    ASSERT_TRUE(c.client->Send(MakeAbort("r" + std::to_string(i))).ok()) << i;
  }
  Status full = c.client->Send(MakeAbort("one-too-many"));
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("queue"), std::string::npos) << full.message();
  EXPECT_NE(full.message().find("full"), std::string::npos) << full.message();

  release.set_value();
  ASSERT_TRUE(s.rec.WaitMessages(kMaxQueued - already));
  ASSERT_TRUE(PollUntil([&] { return c.client->connection()->queued_frames() == 0; }));
  EXPECT_TRUE(c.client->Send(MakeAbort("after")).ok());
  ASSERT_TRUE(s.rec.WaitMessages(kMaxQueued - already + 1));
  for (const auto& env : s.rec.messages()) EXPECT_NE(env.abort().request_id(), "one-too-many");
  EXPECT_TRUE(c.client->ready());
  EXPECT_EQ(c.client->generation(), 1u);  // no reconnect happened along the way
}

TEST(RpcRoundTripTest, OversizeSendIsRefusedAndTheConnectionStays) {
  ServerHarness s;
  ASSERT_TRUE(s.server->Start().ok());
  auto options = ClientHarness::DefaultOptions(s.port());
  options.connection.max_frame_bytes = 1024;
  ClientHarness c(options);
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok());
  Status st = c.client->Send(MakeAbort("big", std::string(4096, 'x')));
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("exceeds the limit of 1024"), std::string::npos) << st.message();
  EXPECT_TRUE(c.client->Send(MakeAbort("small")).ok());
  ASSERT_TRUE(s.rec.WaitMessages(1));
  EXPECT_EQ(s.rec.messages()[0].abort().request_id(), "small");
  EXPECT_TRUE(c.client->ready());
}

TEST(RpcRoundTripTest, ClientStopFlushesQueuedFramesAndEndsCleanly) {
  ServerHarness s;
  ASSERT_TRUE(s.server->Start().ok());
  ClientHarness c(ClientHarness::DefaultOptions(s.port()));
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok());
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(c.client->Send(MakeAbort(std::to_string(i))).ok());
  const auto start = Clock::now();
  c.client->Stop();
  EXPECT_LT(SecondsSince(start), 1.0);
  ASSERT_TRUE(s.rec.WaitMessages(500));
  EXPECT_EQ(s.rec.messages().back().abort().request_id(), "499");
  ASSERT_TRUE(s.rec.WaitClosed(1));
  EXPECT_EQ(s.rec.closed()[0].code(), StatusCode::kUnavailable);
  EXPECT_NE(s.rec.closed()[0].message().find("client shutting down"), std::string::npos)
      << s.rec.closed()[0].message();
  EXPECT_EQ(c.client->connection()->state(), Connection::State::kClosed);
  EXPECT_TRUE(c.client->last_status().ok()) << c.client->last_status().ToString();
  EXPECT_EQ(c.client->Send(MakeAbort("late")).code(), StatusCode::kUnavailable);
  EXPECT_EQ(c.client->WaitReady(milliseconds(10)).code(), StatusCode::kFailedPrecondition);
  c.client->Stop();  // idempotent
}

TEST(RpcRoundTripTest, ServerStopDrainsEveryPeerWithoutHanging) {
  ServerHarness s;
  ASSERT_TRUE(s.server->Start().ok());
  std::vector<std::unique_ptr<ClientHarness>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<ClientHarness>(
        ClientHarness::DefaultOptions(s.port(), "router-" + std::to_string(i))));
    ASSERT_TRUE(clients.back()->client->Start().ok());
    ASSERT_TRUE(clients.back()->client->WaitReady(milliseconds(3000)).ok());
  }
  ASSERT_TRUE(s.rec.WaitReady(3));
  EXPECT_EQ(s.server->ReadyPeers().size(), 3u);

  const auto start = Clock::now();
  s.server->Stop();
  EXPECT_LT(SecondsSince(start), 1.0);
  EXPECT_EQ(s.server->num_connections(), 0u);
  for (auto& c : clients) {
    ASSERT_TRUE(c->rec.WaitClosed(1));
    const Status st = c->rec.closed()[0];
    EXPECT_EQ(st.code(), StatusCode::kUnavailable);
    EXPECT_NE(st.message().find("server shutting down"), std::string::npos) << st.message();
  }
  // Clients keep retrying a dead server; stopping them mid-backoff is still prompt.
  std::this_thread::sleep_for(milliseconds(50));
  const auto stop_start = Clock::now();
  clients.clear();  // destructors Stop()
  EXPECT_LT(SecondsSince(stop_start), 1.0);
}

TEST(RpcRoundTripTest, DestroyingRunningEndpointsDoesNotHang) {
  const auto start = Clock::now();
  {
    ServerHarness s;
    ASSERT_TRUE(s.server->Start().ok());
    ClientHarness c(ClientHarness::DefaultOptions(s.port()));
    ASSERT_TRUE(c.client->Start().ok());
    ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok());
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(c.client->Send(MakeAbort("x")).ok());
  }  // client destroyed first (declared last), then the server
  EXPECT_LT(SecondsSince(start), 2.0);
}

TEST(RpcRoundTripTest, StartTwiceAndBadOptionsAreErrors) {
  ServerHarness s;
  ASSERT_TRUE(s.server->Start().ok());
  EXPECT_EQ(s.server->Start().code(), StatusCode::kFailedPrecondition);

  auto busy = ServerHarness::DefaultOptions(s.port());  // port already taken
  RpcServer second(busy, {});
  Status st = second.Start();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find(std::to_string(s.port())), std::string::npos) << st.message();

  auto bad_host = ServerHarness::DefaultOptions();
  bad_host.host = "not an ip";
  EXPECT_EQ(RpcServer(bad_host, {}).Start().code(), StatusCode::kInvalidArgument);

  auto bad_timeout = ClientHarness::DefaultOptions(s.port());
  bad_timeout.connection.write_timeout = milliseconds(0);
  EXPECT_EQ(RpcClient(bad_timeout, {}).Start().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RpcClient(ClientHarness::DefaultOptions(0), {}).Start().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::rpc::testing
