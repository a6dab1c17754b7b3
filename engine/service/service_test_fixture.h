// A FakeEngine on a fresh store served by KilnServer, for service tests.
#ifndef KILN_ENGINE_SERVICE_SERVICE_TEST_FIXTURE_H_
#define KILN_ENGINE_SERVICE_SERVICE_TEST_FIXTURE_H_

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/service/client.h"
#include "engine/service/server.h"
#include "engine/service/testing/fake_engine.h"
#include "gtest/gtest.h"

namespace kiln::service {

inline constexpr char kViewerToken[] = "viewer-token-0123456789";
inline constexpr char kSubmitterToken[] = "submitter-token-0123456";
inline constexpr char kAdminToken[] = "admin-token-01234567890";
inline constexpr char kAgentToken[] = "agent-token-01234567890";

inline constexpr char kTwoTaskPipeline[] =
    "name: hello\n"
    "tasks:\n"
    "  - name: greet\n"
    "    run: {command: [/bin/sh, -c, echo hello]}\n"
    "  - name: after\n"
    "    needs: [greet]\n"
    "    run: {command: [/bin/true]}\n";

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/t", counter++);
    mkdir(dir_.c_str(), 0700);
    testing::FakeEngineOptions engine_options;
    engine_options.store_dir = dir_ + "/store";
    engine_ = std::move(*testing::FakeEngine::Create(engine_options));
  }

  void TearDown() override {
    if (tcp_server_) tcp_server_->Shutdown(absl::Seconds(1));
    if (server_) server_->Shutdown(absl::Seconds(1));
    engine_->Shutdown(absl::Seconds(1));
  }

  // Serves the engine on a unix socket (no tokens).
  void StartUnix(ServerOptions options = {}) {
    // Bazel's TEST_TMPDIR is too long for a socket path (108 bytes): bind
    // relative to it.
    ASSERT_EQ(chdir(dir_.c_str()), 0);
    options.listen = "unix:s.sock";
    auto server = KilnServer::Start(engine_.get(), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // Serves the engine on loopback TCP with the four test tokens.
  void StartTcp(ServerOptions options = {}) {
    std::string tokens = dir_ + "/tokens";
    {
      std::ofstream out(tokens);
      out << kViewerToken << " viewer v\n"
          << kSubmitterToken << " submitter s\n"
          << kAdminToken << " admin a\n"
          << kAgentToken << " agent pod\n";
    }
    chmod(tokens.c_str(), 0600);
    options.listen = "127.0.0.1:0";
    options.token_file = tokens;
    auto server = KilnServer::Start(engine_.get(), options);
    ASSERT_TRUE(server.ok()) << server.status();
    tcp_server_ = std::move(*server);
  }

  std::unique_ptr<KilnClient> UnixClient() {
    ClientOptions options;
    options.server = server_->address();
    return std::make_unique<KilnClient>(options);
  }
  std::unique_ptr<KilnClient> TcpClient(std::string token) {
    ClientOptions options;
    options.server = tcp_server_->address();
    options.token = std::move(token);
    return std::make_unique<KilnClient>(options);
  }

  std::string dir_;
  std::unique_ptr<testing::FakeEngine> engine_;
  std::unique_ptr<KilnServer> server_;
  std::unique_ptr<KilnServer> tcp_server_;
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_SERVICE_TEST_FIXTURE_H_
