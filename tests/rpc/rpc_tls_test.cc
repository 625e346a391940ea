// TLS on the control plane (common/rpc/tls.h) with self-signed certificates the test makes:
// peers holding certificates from the same CA connect and exchange frames (large ones too) and
// close in order; an untrusted certificate on either side, a certificate that does not name the
// dialed address, a plain-TCP peer on either side are refused, and nothing they send reaches the
// node; bad certificate files give precise errors.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/rpc/tls.h"
#include "common/rpc/tls_certificate.h"
#include "tests/rpc/rpc_harness.h"

namespace tandem::rpc::testing {
namespace {

using std::chrono::milliseconds;
namespace fs = std::filesystem;

class RpcTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("tandem-tls-" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    ASSERT_TRUE(WriteSelfSignedCertificate(Path("cluster.crt"), Path("cluster.key"), {"127.0.0.1", "localhost"}).ok());
    ASSERT_TRUE(WriteSelfSignedCertificate(Path("other.crt"), Path("other.key"), {"127.0.0.1"}).ok());
    ASSERT_TRUE(WriteSelfSignedCertificate(Path("elsewhere.crt"), Path("elsewhere.key"), {"127.0.0.2"}).ok());
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string Path(const std::string& name) { return (*dir_ / name).string(); }
  // A process holding `name`'s certificate and key, trusting `ca`'s certificate.
  static std::shared_ptr<TlsContext> Context(const std::string& name, const std::string& ca) {
    auto context = LoadTlsContext({Path(name + ".crt"), Path(name + ".key"), Path(ca + ".crt")});
    EXPECT_TRUE(context.ok()) << context.status().ToString();
    return context.ok() ? *context : nullptr;
  }
  static RpcServerOptions Server(std::shared_ptr<TlsContext> tls, const std::string& secret = "") {
    RpcServerOptions o = ServerHarness::DefaultOptions();
    o.connection.tls = std::move(tls);
    o.connection.cluster_secret = secret;
    return o;
  }
  static RpcClientOptions Client(uint16_t port, std::shared_ptr<TlsContext> tls, const std::string& secret = "") {
    RpcClientOptions o = ClientHarness::DefaultOptions(port);
    o.connection.tls = std::move(tls);
    o.connection.cluster_secret = secret;
    return o;
  }
  // The client gives up with FailedPrecondition naming `client_says`; the server saw no message
  // and no ready peer.
  static void ExpectRefused(RpcServerOptions server, std::shared_ptr<TlsContext> client_tls,
                            const std::string& client_says) {
    ServerHarness s(std::move(server));
    ASSERT_TRUE(s.server->Start().ok());
    ClientHarness c(Client(s.port(), std::move(client_tls)));
    ASSERT_TRUE(c.client->Start().ok());
    ASSERT_TRUE(c.rec.WaitFor([&] { return c.client->gave_up(); })) << c.client->last_status().ToString();
    const Status why = c.client->last_status();
    EXPECT_EQ(why.code(), StatusCode::kFailedPrecondition) << why.ToString();
    EXPECT_NE(why.message().find(client_says), std::string::npos) << why.ToString();
    EXPECT_TRUE(c.rec.ready().empty());
    EXPECT_TRUE(s.rec.ready().empty());
    EXPECT_TRUE(s.rec.messages().empty());
  }

  static fs::path* dir_;
};
fs::path* RpcTlsTest::dir_ = nullptr;

TEST_F(RpcTlsTest, PeersOfOneCaExchangeFramesAndCloseInOrder) {
  const std::string secret = "0123456789abcdef0123456789abcdef";  // both layers at once
  ServerHarness s(Server(Context("cluster", "cluster"), secret));
  s.on_message = [](const Connection::Ptr& c, const proto::Envelope& env) {
    proto::Envelope reply = env;  // echo, so the server's writes go through TLS too
    ASSERT_TRUE(c->Send(std::move(reply)).ok());
  };
  ASSERT_TRUE(s.server->Start().ok());
  ClientHarness c(Client(s.port(), Context("cluster", "cluster"), secret));
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.client->WaitReady(milliseconds(3000)).ok()) << c.client->last_status().ToString();
  EXPECT_EQ(c.client->peer_hello().node_id(), "prefill-0");

  // Many small frames and one of 1 MiB: TLS records are at most 16 KiB, so it spans ~64.
  constexpr int kFrames = 200;
  for (int i = 0; i < kFrames; ++i) ASSERT_TRUE(c.client->Send(MakeAbort(std::to_string(i))).ok());
  ASSERT_TRUE(c.client->Send(MakeAbort("big", std::string(size_t{1} << 20, 'x'))).ok());
  ASSERT_TRUE(c.rec.WaitMessages(kFrames + 1, milliseconds(5000)));
  const auto echoed = c.rec.messages();
  for (int i = 0; i < kFrames; ++i) EXPECT_EQ(echoed[i].abort().request_id(), std::to_string(i));
  EXPECT_EQ(echoed[kFrames].abort().reason().size(), size_t{1} << 20);

  c.client->Stop();  // Goodbye, then a FIN without close_notify: read as the end, not an error
  ASSERT_TRUE(s.rec.WaitClosed(1));
  EXPECT_NE(s.rec.closed()[0].message().find("is shutting down: client shutting down"), std::string::npos)
      << s.rec.closed()[0].ToString();
}

TEST_F(RpcTlsTest, AServerOutsideTheClientsCaIsRefused) {
  ExpectRefused(Server(Context("other", "cluster")), Context("cluster", "cluster"), "certificate verify failed");
}

TEST_F(RpcTlsTest, AClientOutsideTheServersCaIsRefused) {
  ExpectRefused(Server(Context("cluster", "cluster")), Context("other", "cluster"), "TLS handshake");
}

TEST_F(RpcTlsTest, ACertificateThatDoesNotNameTheDialedAddressIsRefused) {
  ExpectRefused(Server(Context("elsewhere", "elsewhere")), Context("elsewhere", "elsewhere"), "IP address mismatch");
}

// The plain server recognises the TLS ClientHello and says what is missing.
TEST_F(RpcTlsTest, ATlsClientOfAPlainServerGivesUp) {
  ServerHarness s;
  ASSERT_TRUE(s.server->Start().ok());
  ClientHarness c(Client(s.port(), Context("cluster", "cluster")));
  ASSERT_TRUE(c.client->Start().ok());
  ASSERT_TRUE(c.rec.WaitFor([&] { return c.client->gave_up(); })) << c.client->last_status().ToString();
  EXPECT_NE(c.client->last_status().message().find("TLS handshake"), std::string::npos);
  ASSERT_TRUE(s.rec.WaitClosed(1));
  EXPECT_NE(s.rec.closed()[0].message().find("speaks TLS; this node was started without --tls-cert"), std::string::npos)
      << s.rec.closed()[0].ToString();
  EXPECT_TRUE(s.rec.ready().empty());
}

// A plain client, or a raw peer writing our frames in the clear: the server's TLS layer rejects
// the bytes before a frame is decoded.
TEST_F(RpcTlsTest, PlainPeersOfATlsServerAreRefused) {
  ServerHarness s(Server(Context("cluster", "cluster")));
  ASSERT_TRUE(s.server->Start().ok());
  {
    ClientHarness c(ClientHarness::DefaultOptions(s.port()));
    ASSERT_TRUE(c.client->Start().ok());
    ASSERT_TRUE(s.rec.WaitClosed(1));
    EXPECT_TRUE(c.rec.ready().empty());
    EXPECT_FALSE(c.client->WaitReady(milliseconds(200)).ok());
  }
  const size_t closed = s.rec.closed().size();
  RawPeer raw;
  ASSERT_TRUE(raw.Connect(s.port()));
  ASSERT_TRUE(raw.Handshake("intruder") == std::nullopt);
  ASSERT_TRUE(s.rec.WaitClosed(closed + 1));
  EXPECT_TRUE(s.rec.ready().empty());
  EXPECT_TRUE(s.rec.messages().empty());
}

TEST_F(RpcTlsTest, BadFilesGivePreciseErrors) {
  EXPECT_EQ(LoadTlsContext({}).value(), nullptr);  // no files: plain TCP

  auto partial = LoadTlsContext({Path("cluster.crt"), "", ""});
  EXPECT_EQ(partial.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(partial.status().message().find("missing: --tls-key --tls-ca"), std::string::npos);

  auto missing = LoadTlsContext({Path("nothing.crt"), Path("cluster.key"), Path("cluster.crt")});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("--tls-cert"), std::string::npos);

  std::ofstream(Path("garbage.pem")) << "not a certificate\n";
  auto garbage = LoadTlsContext({Path("garbage.pem"), Path("cluster.key"), Path("cluster.crt")});
  EXPECT_EQ(garbage.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(garbage.status().message().find("TLS certificate " + Path("garbage.pem")), std::string::npos);

  auto bad_ca = LoadTlsContext({Path("cluster.crt"), Path("cluster.key"), Path("garbage.pem")});
  EXPECT_EQ(bad_ca.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_ca.status().message().find("TLS CA file"), std::string::npos);

  auto mismatch = LoadTlsContext({Path("cluster.crt"), Path("other.key"), Path("cluster.crt")});
  EXPECT_EQ(mismatch.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.status().message().find("mismatch"), std::string::npos) << mismatch.status().ToString();
}

TEST_F(RpcTlsTest, GeneratedKeysArePrivateAndNamesAreChecked) {
  struct stat st {};
  ASSERT_EQ(::stat(Path("cluster.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(WriteSelfSignedCertificate(Path("x.crt"), Path("x.key"), {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteSelfSignedCertificate(Path("x.crt"), Path("x.key"), {"bad name,IP:1.2.3.4"}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteSelfSignedCertificate(Path("x.crt"), Path("x.key"), {"::1"}).code(), StatusCode::kOk);
  EXPECT_EQ(WriteSelfSignedCertificate("/nonexistent-dir/x.crt", Path("x.key"), {"::1"}).code(),
            StatusCode::kUnavailable);
}

}  // namespace
}  // namespace tandem::rpc::testing
