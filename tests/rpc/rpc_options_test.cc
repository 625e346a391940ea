#include "common/rpc/rpc_options.h"
#include "common/rpc/rpc_server.h"

#include <gtest/gtest.h>

namespace tandem::rpc {
namespace {

using std::chrono::milliseconds;

TEST(RpcOptionsTest, DefaultsAreValid) {
  EXPECT_TRUE(ConnectionOptions().Validate().ok());
  EXPECT_TRUE(BackoffOptions().Validate().ok());
}

TEST(RpcOptionsTest, RejectsBadValuesNamingTheField) {
  ConnectionOptions o;
  o.idle_timeout = milliseconds(100);
  o.heartbeat_interval = milliseconds(100);
  Status s = o.Validate();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("idle_timeout"), std::string::npos) << s.message();

  o = ConnectionOptions();
  o.hello_timeout = milliseconds(0);
  EXPECT_NE(o.Validate().message().find("hello_timeout"), std::string::npos);

  o = ConnectionOptions();
  o.max_queued_bytes = o.max_frame_bytes;  // cannot hold header + one maximal frame
  EXPECT_NE(o.Validate().message().find("max_queued_bytes"), std::string::npos);

  o = ConnectionOptions();
  o.max_frame_bytes = size_t{1} << 33;
  EXPECT_NE(o.Validate().message().find("max_frame_bytes"), std::string::npos);

  BackoffOptions b;
  b.max = milliseconds(10);
  b.initial = milliseconds(20);
  EXPECT_EQ(b.Validate().code(), StatusCode::kInvalidArgument);
  b = BackoffOptions();
  b.multiplier = 0.5;
  EXPECT_EQ(b.Validate().code(), StatusCode::kInvalidArgument);
}

TEST(RpcOptionsTest, BackoffGrowsGeometricallyAndIsCapped) {
  BackoffOptions b;
  b.initial = milliseconds(50);
  b.max = milliseconds(1000);
  b.multiplier = 2.0;
  EXPECT_EQ(BackoffDelay(b, 1), milliseconds(50));
  EXPECT_EQ(BackoffDelay(b, 2), milliseconds(100));
  EXPECT_EQ(BackoffDelay(b, 5), milliseconds(800));
  EXPECT_EQ(BackoffDelay(b, 6), milliseconds(1000));
  EXPECT_EQ(BackoffDelay(b, 100000), milliseconds(1000));  // no overflow after a long outage
  b.multiplier = 1.0;
  EXPECT_EQ(BackoffDelay(b, 30), milliseconds(50));
}

TEST(RpcOptionsTest, ServerRefusesAHostThatIsNotAnAddress) {
  RpcServerOptions o;
  o.host = "not-an-address";  // `tandem prefill/decode --host`
  o.port = 0;
  RpcServer server(o, RpcServerCallbacks{});
  const Status st = server.Start();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("'not-an-address' is not an IP address"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace tandem::rpc
