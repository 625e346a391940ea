// Client/server behaviour when a peer misbehaves, stalls, or goes away: every failure must end
// in a precise Status within its bound, never a hang.
#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>

#include "common/rpc/wire_status.h"
#include "tests/rpc/rpc_harness.h"

namespace tandem::rpc::testing {
namespace {

bool Contains(const Status& s, const std::string& needle) {
  return s.message().find(needle) != std::string::npos;
}

TEST(RpcFailureTest, OversizedIncomingFrameClosesWithResourceExhaustedOnBothEnds) {
  auto server_options = ServerHarness::DefaultOptions();
  server_options.connection.max_frame_bytes = 1024;
  ServerHarness s(server_options);
  ASSERT_TRUE(s.server->Start().ok());
  ClientHarness c(ClientHarness::DefaultOptions(s.port()));  // 64 MiB limit: it will send
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok());

  ASSERT_TRUE(c.client->Send(MakeAbort("big", std::string(4096, 'x'))).ok());
  ASSERT_TRUE(s.rec.WaitClosed(1));
  const Status server_side = s.rec.closed()[0];
  EXPECT_EQ(server_side.code(), StatusCode::kResourceExhausted) << server_side.ToString();
  EXPECT_TRUE(Contains(server_side, "exceeds the limit of 1024")) << server_side.message();
  // The sender learns the same cause from the Goodbye, not a bare "connection reset".
  ASSERT_TRUE(c.rec.WaitClosed(1));
  const Status client_side = c.rec.closed()[0];
  EXPECT_EQ(client_side.code(), StatusCode::kResourceExhausted) << client_side.ToString();
  EXPECT_TRUE(Contains(client_side, "exceeds the limit of 1024")) << client_side.message();
  EXPECT_TRUE(s.rec.messages().empty());

  // The client reconnects, and small frames flow again on the new incarnation.
  ASSERT_TRUE(c.rec.WaitReady(2));
  EXPECT_GE(c.client->generation(), 2u);
  ASSERT_TRUE(c.client->Send(MakeAbort("small")).ok());
  ASSERT_TRUE(s.rec.WaitMessages(1));
  EXPECT_EQ(s.rec.messages()[0].abort().request_id(), "small");
}

// A raw peer completes the handshake and then writes `bytes`; the server must answer with a
// Goodbye carrying `code`, close its side, and report `code`.
void ExpectRawBytesRejected(const std::string& bytes, StatusCode code, proto::ErrorCode wire) {
  ServerHarness s;
  ASSERT_TRUE(s.server->Start().ok());
  RawPeer raw;
  ASSERT_TRUE(raw.Connect(s.port()));
  auto ack = raw.Handshake("raw");
  ASSERT_TRUE(ack.has_value());
  ASSERT_TRUE(ack->hello_ack().accepted());
  ASSERT_TRUE(raw.WriteBytes(bytes));
  // Heartbeats may precede the Goodbye.
  std::optional<proto::Envelope> env;
  do {
    env = raw.ReadEnvelope();
  } while (env && env->has_heartbeat());
  ASSERT_TRUE(env.has_value());
  ASSERT_TRUE(env->has_goodbye()) << env->DebugString();
  EXPECT_EQ(env->goodbye().code(), wire);
  EXPECT_TRUE(raw.ReadUntilEof());  // the server sent FIN after the Goodbye
  raw.socket().close();
  ASSERT_TRUE(s.rec.WaitClosed(1));
  EXPECT_EQ(s.rec.closed()[0].code(), code) << s.rec.closed()[0].ToString();
}

TEST(RpcFailureTest, GarbageLengthIsRefused) {
  ExpectRawBytesRejected(std::string("\xFF\xFF\xFF\xFF", 4) + "garbage",
                         StatusCode::kResourceExhausted, proto::ERROR_CODE_RESOURCE_EXHAUSTED);
}

TEST(RpcFailureTest, GarbageBodyIsDataLoss) {
  const std::string body = "\x07\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF";
  ExpectRawBytesRejected(std::string("\0\0\0", 3) + static_cast<char>(body.size()) + body,
                         StatusCode::kDataLoss, proto::ERROR_CODE_DATA_LOSS);
}

TEST(RpcFailureTest, EnvelopeWithoutPayloadIsRefused) {
  ExpectRawBytesRejected(std::string("\0\0\0\0", 4), StatusCode::kFailedPrecondition,
                         proto::ERROR_CODE_FAILED_PRECONDITION);  // version 0 is checked first
}

TEST(RpcFailureTest, RawPeerWithOtherVersionGetsRefusingHelloAck) {
  ServerHarness s;
  ASSERT_TRUE(s.server->Start().ok());
  RawPeer raw;
  ASSERT_TRUE(raw.Connect(s.port()));
  auto ack = raw.Handshake("old-router", /*version=*/kProtocolVersion + 6);
  ASSERT_TRUE(ack.has_value());
  ASSERT_TRUE(ack->has_hello_ack());
  EXPECT_FALSE(ack->hello_ack().accepted());
  EXPECT_NE(
      ack->hello_ack().reason().find("protocol version " + std::to_string(kProtocolVersion + 6)),
      std::string::npos)
      << ack->hello_ack().reason();
  EXPECT_EQ(ack->hello_ack().hello().node_id(), "prefill-0");  // says who refused
  EXPECT_TRUE(raw.ReadUntilEof());
  raw.socket().close();
  ASSERT_TRUE(s.rec.WaitClosed(1));
  EXPECT_EQ(s.rec.closed()[0].code(), StatusCode::kFailedPrecondition);
}

TEST(RpcFailureTest, FirstFrameOtherThanHelloIsRefused) {
  ServerHarness s;
  ASSERT_TRUE(s.server->Start().ok());
  RawPeer raw;
  ASSERT_TRUE(raw.Connect(s.port()));
  proto::Envelope env = MakeAbort("r1");
  env.set_protocol_version(kProtocolVersion);
  ASSERT_TRUE(raw.WriteEnvelope(env));
  auto ack = raw.ReadEnvelope();
  ASSERT_TRUE(ack.has_value());
  EXPECT_FALSE(ack->hello_ack().accepted());
  EXPECT_NE(ack->hello_ack().reason().find("expected hello"), std::string::npos);
  EXPECT_TRUE(raw.ReadUntilEof());
  EXPECT_TRUE(s.rec.messages().empty());  // the Abort never reached the application
}

TEST(RpcFailureTest, ServerClosesPeerThatNeverSaysHello) {
  ServerHarness s;  // hello_timeout 300 ms
  ASSERT_TRUE(s.server->Start().ok());
  RawPeer raw;
  const auto start = Clock::now();
  ASSERT_TRUE(raw.Connect(s.port()));
  ASSERT_TRUE(s.rec.WaitClosed(1));
  const double elapsed = SecondsSince(start);
  EXPECT_GE(elapsed, 0.25);
  EXPECT_LT(elapsed, 1.5);
  const Status st = s.rec.closed()[0];
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded) << st.ToString();
  EXPECT_TRUE(Contains(st, "sent no hello within 300 ms")) << st.message();
  EXPECT_TRUE(raw.ReadUntilEof());
}

TEST(RpcFailureTest, ClientGivesDeadlineExceededWhenPeerAcceptsButNeverAnswers) {
  SilentListener silent;
  auto options = ClientHarness::DefaultOptions(silent.port());
  options.backoff.max_attempts = 1;
  ClientHarness c(options);
  const auto start = Clock::now();
  ASSERT_TRUE(c.client->Start().ok());
  Status st = c.client->WaitReady(milliseconds(3000));
  const double elapsed = SecondsSince(start);
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded) << st.ToString();
  EXPECT_TRUE(Contains(st, "no hello_ack within 300 ms")) << st.message();
  EXPECT_GE(elapsed, 0.25);
  EXPECT_LT(elapsed, 1.5);
  EXPECT_TRUE(c.client->gave_up());
}

TEST(RpcFailureTest, ConnectRefusedRetriesWithBackoffThenGivesUp) {
  auto options = ClientHarness::DefaultOptions(UnusedPort());
  options.backoff.max_attempts = 4;  // delays 10, 20, 40 ms between them
  ClientHarness c(options);
  const auto start = Clock::now();
  ASSERT_TRUE(c.client->Start().ok());
  Status st = c.client->WaitReady(milliseconds(3000));
  EXPECT_LT(SecondsSince(start), 1.5);
  EXPECT_GE(SecondsSince(start), 0.06);  // 10 + 20 + 40 ms of backoff at least
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_TRUE(Contains(st, "connect to 127.0.0.1")) << st.message();
  EXPECT_EQ(c.client->generation(), 4u);
  ASSERT_TRUE(c.rec.WaitClosed(1));  // told once, when giving up
  EXPECT_EQ(c.rec.closed().size(), 1u);
}

TEST(RpcFailureTest, WaitReadyTimesOutWithTheLastError) {
  ClientHarness c(ClientHarness::DefaultOptions(UnusedPort()));  // retries forever
  ASSERT_TRUE(c.client->Start().ok());
  Status st = c.client->WaitReady(milliseconds(200));
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(Contains(st, "last error: UNAVAILABLE")) << st.message();
  EXPECT_GE(c.client->generation(), 2u);
}

TEST(RpcFailureTest, ReconnectsAfterTheServerRestartsOnTheSamePort) {
  auto first = std::make_unique<ServerHarness>();
  ASSERT_TRUE(first->server->Start().ok());
  const uint16_t port = first->port();
  ClientHarness c(ClientHarness::DefaultOptions(port));
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok());
  ASSERT_TRUE(c.client->Send(MakeAbort("before")).ok());
  ASSERT_TRUE(first->rec.WaitMessages(1));
  const uint64_t generation_before = c.client->generation();

  first.reset();  // Stop(): the client is told and starts retrying
  ASSERT_TRUE(c.rec.WaitClosed(1));
  EXPECT_EQ(c.rec.closed()[0].code(), StatusCode::kUnavailable);
  EXPECT_FALSE(c.client->ready());
  EXPECT_EQ(c.client->Send(MakeAbort("while-down")).code(), StatusCode::kUnavailable);
  std::this_thread::sleep_for(milliseconds(150));  // a few refused attempts

  ServerHarness second(ServerHarness::DefaultOptions(port));
  ASSERT_TRUE(second.server->Start().ok());
  ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok()) << c.client->last_status().ToString();
  ASSERT_TRUE(c.rec.WaitReady(2));
  EXPECT_GT(c.client->generation(), generation_before + 1);  // refused attempts counted too
  ASSERT_TRUE(c.client->Send(MakeAbort("after")).ok());
  ASSERT_TRUE(second.rec.WaitMessages(1));
  EXPECT_EQ(second.rec.messages()[0].abort().request_id(), "after");  // nothing stale replayed
}

TEST(RpcFailureTest, IdleTimeoutClosesASilentPeer) {
  auto options = ServerHarness::DefaultOptions();
  options.connection.idle_timeout = milliseconds(300);
  ServerHarness s(options);
  ASSERT_TRUE(s.server->Start().ok());
  RawPeer raw;  // completes the handshake, then neither writes nor reads
  ASSERT_TRUE(raw.Connect(s.port()));
  ASSERT_TRUE(raw.Handshake("mute").has_value());
  const auto start = Clock::now();
  ASSERT_TRUE(s.rec.WaitClosed(1));
  const double elapsed = SecondsSince(start);
  EXPECT_GE(elapsed, 0.25);
  EXPECT_LT(elapsed, 1.5);
  EXPECT_EQ(s.rec.closed()[0].code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(Contains(s.rec.closed()[0], "idle_timeout")) << s.rec.closed()[0].message();
}

TEST(RpcFailureTest, HeartbeatsKeepAnIdleConnectionAlive) {
  auto server_options = ServerHarness::DefaultOptions();
  server_options.connection.idle_timeout = milliseconds(250);
  ServerHarness s(server_options);
  ASSERT_TRUE(s.server->Start().ok());
  auto options = ClientHarness::DefaultOptions(s.port());
  options.connection.idle_timeout = milliseconds(250);
  ClientHarness c(options);
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok());
  std::this_thread::sleep_for(milliseconds(700));  // nearly 3 idle timeouts, no app traffic
  EXPECT_TRUE(c.client->ready());
  EXPECT_TRUE(c.rec.closed().empty());
  EXPECT_TRUE(s.rec.closed().empty());
  const auto stats = c.client->connection()->stats();
  EXPECT_GE(stats.heartbeats_sent, 5u);
  EXPECT_GE(stats.heartbeats_received, 5u);
  EXPECT_TRUE(c.rec.messages().empty());  // heartbeats never reach the application
  EXPECT_TRUE(s.rec.messages().empty());
}

TEST(RpcFailureTest, WriteTimeoutClosesWhenThePeerStopsReading) {
  auto options = ServerHarness::DefaultOptions();
  options.connection.write_timeout = milliseconds(300);
  options.connection.idle_timeout = milliseconds(10000);  // isolate the write bound
  ServerHarness s(options);
  ASSERT_TRUE(s.server->Start().ok());
  RawPeer raw;  // handshakes, then never reads again
  ASSERT_TRUE(raw.Connect(s.port()));
  ASSERT_TRUE(raw.Handshake("stuck").has_value());
  ASSERT_TRUE(PollUntil([&] { return s.server->FindPeer("stuck") != nullptr; }));
  auto peer = s.server->FindPeer("stuck");
  ASSERT_NE(peer, nullptr);
  // Far more than loopback socket buffers hold.
  for (int i = 0; i < 64; ++i) {
    Status st = peer->Send(MakeAbort("blob", std::string(1 << 20, 'b')));
    if (!st.ok()) {
      EXPECT_EQ(st.code(), StatusCode::kUnavailable);  // already closed by the timeout
      break;
    }
  }
  ASSERT_TRUE(s.rec.WaitClosed(1, milliseconds(3000)));
  EXPECT_EQ(s.rec.closed()[0].code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(Contains(s.rec.closed()[0], "did not complete within 300 ms"))
      << s.rec.closed()[0].message();
  EXPECT_EQ(peer->queued_frames(), 0u);  // every reservation released on close
}

TEST(RpcFailureTest, ThrowingCallbackClosesTheConnectionInsteadOfEscaping) {
  ServerHarness s;
  s.on_message = [](const Connection::Ptr&, const proto::Envelope& env) {
    if (env.abort().request_id() == "boom") throw std::runtime_error("handler exploded");
  };
  ASSERT_TRUE(s.server->Start().ok());
  ClientHarness c(ClientHarness::DefaultOptions(s.port()));
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok());
  ASSERT_TRUE(c.client->Send(MakeAbort("boom")).ok());
  ASSERT_TRUE(s.rec.WaitClosed(1));
  EXPECT_EQ(s.rec.closed()[0].code(), StatusCode::kInternal);
  EXPECT_TRUE(Contains(s.rec.closed()[0], "handler exploded")) << s.rec.closed()[0].message();
  ASSERT_TRUE(c.rec.WaitClosed(1));
  EXPECT_EQ(c.rec.closed()[0].code(), StatusCode::kInternal);
  // The server keeps serving: the client reconnects and a well-behaved message gets through.
  ASSERT_TRUE(c.rec.WaitReady(2));
  ASSERT_TRUE(c.client->Send(MakeAbort("fine")).ok());
  ASSERT_TRUE(s.rec.WaitFor([&] {
    for (const auto& m : s.rec.messages_locked())
      if (m.abort().request_id() == "fine") return true;
    return false;
  }));
}

}  // namespace
}  // namespace tandem::rpc::testing
