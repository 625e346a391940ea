// Cluster authentication (common/rpc/cluster_auth.h): peers with the same secret connect; a
// wrong secret, a missing one on either side, a raw peer that skips the proof or sends garbage
// is refused before anything it sends reaches the node.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/rpc/cluster_auth.h"
#include "tests/rpc/rpc_harness.h"

namespace tandem::rpc::testing {
namespace {

using std::chrono::milliseconds;

const std::string kSecret = "0123456789abcdef0123456789abcdef";
const std::string kOtherSecret = "fedcba9876543210fedcba9876543210";

// A raw peer's Hello, with a nonce or without one.
proto::Envelope RawHello(bool with_nonce) {
  proto::Envelope hello;
  hello.set_protocol_version(kProtocolVersion);
  *hello.mutable_hello() = MakeHello(proto::ROLE_ROUTER, "intruder");
  hello.mutable_hello()->set_protocol_version(kProtocolVersion);
  if (with_nonce) hello.mutable_hello()->set_auth_nonce(NewAuthNonce());
  return hello;
}

RpcServerOptions ServerWith(const std::string& secret) {
  RpcServerOptions o = ServerHarness::DefaultOptions();
  o.connection.cluster_secret = secret;
  return o;
}

RpcClientOptions ClientWith(uint16_t port, const std::string& secret) {
  RpcClientOptions o = ClientHarness::DefaultOptions(port);
  o.connection.cluster_secret = secret;
  return o;
}

TEST(ClusterAuthTest, ProofsDependOnSecretNoncesRoleAndNode) {
  const std::string c = NewAuthNonce(), s = NewAuthNonce();
  ASSERT_EQ(c.size(), kAuthNonceBytes);
  EXPECT_NE(c, s);
  const std::string server = ServerAuthProof(kSecret, c, s);
  EXPECT_EQ(server.size(), 32u);
  EXPECT_EQ(server, ServerAuthProof(kSecret, c, s));
  EXPECT_NE(server, ServerAuthProof(kOtherSecret, c, s));
  EXPECT_NE(server, ServerAuthProof(kSecret, s, c));
  EXPECT_NE(server, ClientAuthProof(kSecret, c, s, ""));  // not reflectable
  EXPECT_NE(ClientAuthProof(kSecret, c, s, "router-0"), ClientAuthProof(kSecret, c, s, "router-1"));
  EXPECT_TRUE(AuthProofMatches(server, server));
  EXPECT_FALSE(AuthProofMatches(server, server.substr(1)));
  EXPECT_FALSE(AuthProofMatches("", ""));
}

TEST(ClusterAuthTest, SecretFilesAreTrimmedAndCheckedAndWrittenPrivate) {
  const auto dir = std::filesystem::temp_directory_path() / ("tandem-auth-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "secret").string();
  ASSERT_TRUE(WriteNewClusterSecret(path).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto secret = LoadClusterSecret(path);
  ASSERT_TRUE(secret.ok()) << secret.status().ToString();
  EXPECT_EQ(secret->size(), 64u);  // hex, the newline trimmed
  std::ofstream(dir / "short") << "  too-short \n";
  EXPECT_EQ(LoadClusterSecret((dir / "short").string()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(LoadClusterSecret((dir / "missing").string()).ok());
  std::filesystem::remove_all(dir);
  ConnectionOptions o;
  o.cluster_secret = "short";
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
}

TEST(RpcAuthTest, TheSameSecretConnects) {
  ServerHarness s(ServerWith(kSecret));
  ASSERT_TRUE(s.server->Start().ok());
  ClientHarness c(ClientWith(s.port(), kSecret));
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok()) << c.client->last_status().ToString();
  ASSERT_TRUE(s.rec.WaitReady(1));
  EXPECT_EQ(s.rec.ready()[0].node_id(), "router-0");
}

void ExpectClientRefused(const std::string& server_secret, const std::string& client_secret,
                         const std::string& client_says) {
  ServerHarness s(ServerWith(server_secret));
  ASSERT_TRUE(s.server->Start().ok());
  ClientHarness c(ClientWith(s.port(), client_secret));
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.rec.WaitClosed(1));
  ASSERT_TRUE(c.rec.WaitFor([&] { return c.client->gave_up(); }));  // no retrying a refusal
  const Status why = c.client->last_status();
  EXPECT_EQ(why.code(), StatusCode::kFailedPrecondition) << why.ToString();
  EXPECT_NE(why.message().find(client_says), std::string::npos) << why.ToString();
  // A server without a secret accepts anyone (it was not asked to check); the client leaves.
  if (!server_secret.empty()) EXPECT_TRUE(s.rec.ready().empty());
  EXPECT_TRUE(s.rec.messages().empty());
}

TEST(RpcAuthTest, AWrongSecretIsRefused) { ExpectClientRefused(kSecret, kOtherSecret, "cluster secret differs"); }

TEST(RpcAuthTest, APeerWithoutTheSecretIsRefused) {
  ExpectClientRefused(kSecret, "", "requires cluster authentication");
}

TEST(RpcAuthTest, AServerWithoutTheSecretIsNotTrusted) {
  ExpectClientRefused("", kSecret, "without authenticating itself");
}

// A raw peer speaking our frame format: a Hello without a nonce, then a message. The server
// refuses the Hello and never hands the message to the node.
TEST(RpcAuthTest, ARawPeerThatSkipsTheProofIsRefusedBeforeAnythingIsRead) {
  ServerHarness s(ServerWith(kSecret));
  ASSERT_TRUE(s.server->Start().ok());
  RawPeer raw;
  ASSERT_TRUE(raw.Connect(s.port()));
  ASSERT_TRUE(raw.WriteEnvelope(RawHello(false)));
  proto::Envelope abort;
  abort.set_protocol_version(kProtocolVersion);
  abort.mutable_abort()->set_request_id("7");
  (void)raw.WriteEnvelope(abort);
  auto ack = raw.ReadEnvelope();
  ASSERT_TRUE(ack.has_value());
  ASSERT_TRUE(ack->has_hello_ack());
  EXPECT_FALSE(ack->hello_ack().accepted());
  EXPECT_NE(ack->hello_ack().reason().find("requires cluster authentication"), std::string::npos);
  EXPECT_TRUE(raw.ReadUntilEof());
  ASSERT_TRUE(s.rec.WaitClosed(1));
  EXPECT_TRUE(s.rec.messages().empty());
  EXPECT_TRUE(s.rec.ready().empty());
}

// A raw peer that answers the challenge with a made-up proof, or with another message.
TEST(RpcAuthTest, ARawPeerWithAForgedProofIsRefused) {
  for (bool forged_proof : {true, false}) {
    ServerHarness s(ServerWith(kSecret));
    ASSERT_TRUE(s.server->Start().ok());
    RawPeer raw;
    ASSERT_TRUE(raw.Connect(s.port()));
    ASSERT_TRUE(raw.WriteEnvelope(RawHello(true)));
    auto challenge = raw.ReadEnvelope();
    ASSERT_TRUE(challenge.has_value());
    ASSERT_TRUE(challenge->has_auth_challenge());
    EXPECT_EQ(challenge->auth_challenge().nonce().size(), kAuthNonceBytes);
    proto::Envelope answer;
    answer.set_protocol_version(kProtocolVersion);
    if (forged_proof) {
      answer.mutable_auth_proof()->set_proof(std::string(32, 'x'));
    } else {
      answer.mutable_abort()->set_request_id("7");
    }
    ASSERT_TRUE(raw.WriteEnvelope(answer));
    auto ack = raw.ReadEnvelope();
    ASSERT_TRUE(ack.has_value());
    ASSERT_TRUE(ack->has_hello_ack());
    EXPECT_FALSE(ack->hello_ack().accepted());
    EXPECT_NE(ack->hello_ack().reason().find(forged_proof ? "authentication failed" : "expected auth_proof"),
              std::string::npos)
        << ack->hello_ack().reason();
    EXPECT_TRUE(raw.ReadUntilEof());
    ASSERT_TRUE(s.rec.WaitClosed(1));
    EXPECT_TRUE(s.rec.messages().empty());
    EXPECT_TRUE(s.rec.ready().empty());
  }
}

TEST(RpcAuthTest, GarbageIsRefusedWithoutReachingTheNode) {
  ServerHarness s(ServerWith(kSecret));
  ASSERT_TRUE(s.server->Start().ok());
  RawPeer raw;
  ASSERT_TRUE(raw.Connect(s.port()));
  ASSERT_TRUE(raw.WriteBytes(std::string("\x00\x00\x00\x10garbage-garbage!", 20)));
  raw.ReadUntilEof();
  ASSERT_TRUE(s.rec.WaitClosed(1));
  EXPECT_TRUE(s.rec.messages().empty());
  EXPECT_TRUE(s.rec.ready().empty());
}

}  // namespace
}  // namespace tandem::rpc::testing
