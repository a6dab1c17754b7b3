#include "engine/service/listen_address.h"

#include "gtest/gtest.h"

namespace kiln::service {
namespace {

TEST(ListenAddressTest, Parses) {
  auto unix_socket = ParseListenAddress("unix:run/kiln.sock");
  ASSERT_TRUE(unix_socket.ok());
  EXPECT_TRUE(unix_socket->unix_socket);
  EXPECT_EQ(unix_socket->GrpcTarget(), "unix:run/kiln.sock");

  auto v4 = ParseListenAddress("127.0.0.1:0");
  ASSERT_TRUE(v4.ok());
  EXPECT_TRUE(v4->loopback);
  EXPECT_EQ(v4->GrpcTarget(), "127.0.0.1:0");

  auto v6 = ParseListenAddress("[::1]:8080");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->loopback);
  EXPECT_EQ(v6->port, 8080);
  EXPECT_EQ(v6->GrpcTarget(), "[::1]:8080");

  auto any = ParseListenAddress("0.0.0.0:9000");
  ASSERT_TRUE(any.ok());
  EXPECT_FALSE(any->loopback);

  for (const char* bad : {"unix:", "nohost", ":80", "host:port", "h:99999",
                          "[::1]80", "::1:80"}) {
    EXPECT_FALSE(ParseListenAddress(bad).ok()) << bad;
  }
}

TEST(ListenAddressTest, Loopback) {
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.9.8.7"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("::"));
  EXPECT_FALSE(IsLoopbackHost("example.com"));
}

TEST(ListenAddressTest, Policy) {
  auto unix_socket = *ParseListenAddress("unix:kiln.sock");
  auto loopback = *ParseListenAddress("127.0.0.1:1234");
  auto external = *ParseListenAddress("0.0.0.0:1234");
  EXPECT_TRUE(CheckListenPolicy(unix_socket, false, false).ok());
  EXPECT_EQ(CheckListenPolicy(loopback, false, false).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CheckListenPolicy(loopback, true, false).ok());
  EXPECT_EQ(CheckListenPolicy(external, true, false).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CheckListenPolicy(external, false, true).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CheckListenPolicy(external, true, true).ok());
}

}  // namespace
}  // namespace kiln::service
