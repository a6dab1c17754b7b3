// The agent blob endpoint over a real gRPC connection: the fresh token
// moves blobs and can do nothing else; other tokens are refused.
#include "engine/service/agent_blob_server.h"

#include <sys/stat.h>

#include <fstream>
#include <set>

#include "absl/strings/match.h"
#include "engine/service/service_test_fixture.h"

namespace kiln::service {
namespace {

class AgentBlobServerTest : public ServiceTest {
 protected:
  std::unique_ptr<KilnClient> Client(const std::string& address,
                                     const std::string& token) {
    ClientOptions options;
    options.server = address;
    options.token = token;
    return std::make_unique<KilnClient>(options);
  }
};

TEST_F(AgentBlobServerTest, TheAgentTokenMovesBlobsAndNothingElse) {
  auto blobs = StartAgentBlobServer(engine_.get(), {});
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  EXPECT_TRUE(absl::StartsWith((*blobs)->address(), "127.0.0.1:"))
      << (*blobs)->address();
  EXPECT_EQ((*blobs)->token().size(), 64u);
  auto agent = Client((*blobs)->address(), (*blobs)->token());

  const std::string bytes = "an archive, as far as the server cares";
  cas::Digest digest = cas::Digest::Of(bytes);
  {
    v1::FindMissingBlobsRequest req;
    req.add_digests(digest.ToString());
    v1::FindMissingBlobsResponse resp;
    auto ctx = agent->NewContext(absl::Seconds(20));
    grpc::Status st = agent->stub().FindMissingBlobs(ctx.get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(resp.missing_size(), 1);
  }
  ASSERT_TRUE(agent->UploadBytes(bytes).ok());
  // In the engine's store, and back out.
  EXPECT_TRUE(engine_->FindMissingBlobs({digest}).empty());
  auto down = agent->DownloadBlob(digest);
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_EQ(*down, bytes);

  // Nothing but blobs.
  {
    v1::GetRunRequest req;
    req.set_run_id("any");
    v1::Run resp;
    auto ctx = agent->NewContext(absl::Seconds(20));
    grpc::Status st = agent->stub().GetRun(ctx.get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << st.error_message();
  }
  {
    v1::SubmitRunRequest req;
    req.set_yaml(kTwoTaskPipeline);
    v1::SubmitRunResponse resp;
    auto ctx = agent->NewContext(absl::Seconds(20));
    grpc::Status st = agent->stub().SubmitRun(ctx.get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << st.error_message();
  }
  // Other credentials are unknown to it.
  for (const std::string& token : {std::string(), std::string(kAdminToken),
                                   (*blobs)->token().substr(0, 63) + "x"}) {
    auto other = Client((*blobs)->address(), token);
    auto result = other->DownloadBlob(digest);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated)
        << result.status();
  }
  (*blobs)->Stop();
  (*blobs)->Stop();  // idempotent
  EXPECT_FALSE(agent->DownloadBlob(digest).ok());
}

TEST_F(AgentBlobServerTest, EveryServerHasAFreshToken) {
  std::set<std::string> tokens;
  for (int i = 0; i < 3; ++i) {
    auto blobs = StartAgentBlobServer(engine_.get(), {});
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    tokens.insert((*blobs)->token());
  }
  EXPECT_EQ(tokens.size(), 3u);
}

// `kiln serve` gives its persisted token: it is the one credential, and a
// short one is refused.
TEST_F(AgentBlobServerTest, AGivenTokenIsTheCredential) {
  AgentBlobServerOptions options;
  options.token = "persisted-agent-token-0123456789";
  auto blobs = StartAgentBlobServer(engine_.get(), options);
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  EXPECT_EQ((*blobs)->token(), options.token);
  auto agent = Client((*blobs)->address(), options.token);
  ASSERT_TRUE(agent->UploadBytes("bytes of a pod").ok());
  auto stranger = Client((*blobs)->address(), "another-token-0123456789");
  EXPECT_FALSE(stranger->UploadBytes("bytes of a stranger").ok());
  options.token = "short";
  EXPECT_EQ(StartAgentBlobServer(engine_.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AgentBlobServerTest, RefusesUnsafeListening) {
  AgentBlobServerOptions options;
  options.listen = "0.0.0.0:0";  // not loopback, no TLS
  auto open = StartAgentBlobServer(engine_.get(), options);
  EXPECT_EQ(open.status().code(), absl::StatusCode::kFailedPrecondition)
      << open.status();
  options.listen = "unix:x.sock";
  EXPECT_EQ(StartAgentBlobServer(engine_.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// `kiln serve --agent-token-file F`: the token in F gets role agent beside
// the token file's.
TEST_F(AgentBlobServerTest, ServeGivesAnAgentTokenFileRoleAgent) {
  std::string agent_file = dir_ + "/agent-token";
  const std::string agent_token = "served-agent-token-0123456789";
  {
    std::ofstream out(agent_file);
    out << "# the pods' token\n" << agent_token << "\n";
  }
  chmod(agent_file.c_str(), 0644);
  ServerOptions options;
  options.agent_token_file = agent_file;
  options.listen = "127.0.0.1:0";
  auto readable = KilnServer::Start(engine_.get(), options);
  EXPECT_EQ(readable.status().code(), absl::StatusCode::kFailedPrecondition);
  chmod(agent_file.c_str(), 0600);
  StartTcp(options);
  auto agent = TcpClient(agent_token);
  ASSERT_TRUE(agent->UploadBytes("served").ok());
  v1::ListRunsRequest req;
  v1::ListRunsResponse resp;
  auto ctx = agent->NewContext(absl::Seconds(20));
  EXPECT_EQ(agent->stub().ListRuns(ctx.get(), req, &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // The token file's tokens still work.
  auto admin = TcpClient(kAdminToken);
  auto admin_ctx = admin->NewContext(absl::Seconds(20));
  EXPECT_TRUE(admin->stub().ListRuns(admin_ctx.get(), req, &resp).ok());
}

}  // namespace
}  // namespace kiln::service
