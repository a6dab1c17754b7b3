// Every kiln.v1 RPC x every role x {no token, wrong token} over TCP, and
// the unix socket's owner-only permissions.
#include <sys/stat.h>

#include <functional>

#include "engine/service/service_test_fixture.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"

namespace kiln::service {
namespace {

using Call = std::function<grpc::Status(v1::Kiln::Stub&, grpc::ClientContext*)>;

struct Rpc {
  const char* name;
  Role needs;
  Call call;
  // An agent token (auth.h) may call exactly the three blob RPCs.
  bool agent_may = false;
};

std::vector<Rpc> AllRpcs() {
  return {
      {"ValidatePipeline", Role::kViewer,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::ValidatePipelineRequest req;
         req.set_yaml(kTwoTaskPipeline);
         v1::ValidatePipelineResponse resp;
         return s.ValidatePipeline(c, req, &resp);
       }},
      {"SubmitRun", Role::kSubmitter,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::SubmitRunRequest req;
         req.set_yaml(kTwoTaskPipeline);
         req.set_idempotency_key("auth-test");
         v1::SubmitRunResponse resp;
         return s.SubmitRun(c, req, &resp);
       }},
      {"GetRun", Role::kViewer,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::GetRunRequest req;
         req.set_run_id("no-such-run");
         v1::Run resp;
         return s.GetRun(c, req, &resp);
       }},
      {"ListRuns", Role::kViewer,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::ListRunsRequest req;
         v1::ListRunsResponse resp;
         return s.ListRuns(c, req, &resp);
       }},
      {"CancelRun", Role::kSubmitter,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::CancelRunRequest req;
         req.set_run_id("no-such-run");
         v1::CancelRunResponse resp;
         return s.CancelRun(c, req, &resp);
       }},
      {"RetryRun", Role::kSubmitter,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::RetryRunRequest req;
         req.set_run_id("no-such-run");
         v1::SubmitRunResponse resp;
         return s.RetryRun(c, req, &resp);
       }},
      {"WatchRun", Role::kViewer,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::WatchRunRequest req;
         req.set_run_id("no-such-run");
         auto reader = s.WatchRun(c, req);
         v1::RunEvent event;
         while (reader->Read(&event)) {
         }
         return reader->Finish();
       }},
      {"SubmitAndWatchRun", Role::kSubmitter,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::SubmitRunRequest req;
         req.set_yaml(kTwoTaskPipeline);
         req.set_idempotency_key("auth-test");
         auto reader = s.SubmitAndWatchRun(c, req);
         v1::RunEvent event;
         while (reader->Read(&event)) {
         }
         return reader->Finish();
       }},
      {"StreamLogs", Role::kViewer,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::StreamLogsRequest req;
         req.set_run_id("no-such-run");
         req.set_task("t");
         auto reader = s.StreamLogs(c, req);
         v1::StreamLogsResponse resp;
         while (reader->Read(&resp)) {
         }
         return reader->Finish();
       }},
      {"FindMissingBlobs", Role::kViewer,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::FindMissingBlobsRequest req;
         req.add_digests(cas::Digest::Of("x").ToString());
         v1::FindMissingBlobsResponse resp;
         return s.FindMissingBlobs(c, req, &resp);
       },
       true},
      {"UploadBlob", Role::kSubmitter,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::UploadBlobResponse resp;
         auto writer = s.UploadBlob(c, &resp);
         v1::UploadBlobRequest req;
         req.set_digest(cas::Digest::Of("blob").ToString());
         req.set_size(4);
         req.set_data("blob");
         writer->Write(req);
         writer->WritesDone();
         return writer->Finish();
       },
       true},
      {"GetRunTasks", Role::kViewer,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::GetRunTasksRequest req;
         req.set_run_id("missing");
         v1::GetRunTasksResponse resp;
         return s.GetRunTasks(c, req, &resp);
       }},
      {"DownloadBlob", Role::kViewer,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::DownloadBlobRequest req;
         req.set_digest(cas::Digest::Of("absent").ToString());
         auto reader = s.DownloadBlob(c, req);
         v1::DownloadBlobResponse resp;
         while (reader->Read(&resp)) {
         }
         return reader->Finish();
       },
       true},
      {"ListArtifacts", Role::kViewer,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::ListArtifactsRequest req;
         req.set_run_id("missing");
         v1::ListArtifactsResponse resp;
         return s.ListArtifacts(c, req, &resp);
       }},
      // Admin in the ordered roles (approvers too: auth_test).
      {"DecideApproval", Role::kAdmin,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::DecideApprovalRequest req;
         req.set_run_id("missing");
         req.set_task("deploy");
         req.set_approve(true);
         v1::DecideApprovalResponse resp;
         return s.DecideApproval(c, req, &resp);
       }},
      {"DownloadArtifact", Role::kViewer,
       [](v1::Kiln::Stub& s, grpc::ClientContext* c) {
         v1::DownloadArtifactRequest req;
         req.set_run_id("missing");
         req.set_task("build");
         req.set_artifact("app");
         auto reader = s.DownloadArtifact(c, req);
         v1::DownloadArtifactResponse resp;
         while (reader->Read(&resp)) {
         }
         return reader->Finish();
       }},
  };
}

TEST_F(ServiceTest, EveryRpcChecksTokenAndRole) {
  StartTcp();
  struct Caller {
    const char* label;
    std::string token;
    absl::optional<Role> role;
  } callers[] = {
      {"no token", "", absl::nullopt},
      {"wrong token", "wrong-token-0123456789", absl::nullopt},
      {"prefix of a token", "viewer-token-012345678", absl::nullopt},
      {"viewer", kViewerToken, Role::kViewer},
      {"submitter", kSubmitterToken, Role::kSubmitter},
      {"admin", kAdminToken, Role::kAdmin},
      {"agent", kAgentToken, Role::kAgent},
  };
  std::vector<Rpc> rpcs = AllRpcs();
  ASSERT_EQ(rpcs.size(), static_cast<size_t>(
                             google::protobuf::DescriptorPool::generated_pool()
                                 ->FindServiceByName("kiln.v1.Kiln")
                                 ->method_count()))
      << "a new RPC needs a row here";
  for (const Rpc& rpc : rpcs) {
    EXPECT_EQ(RequiredRole(rpc.name), rpc.needs) << rpc.name;
    EXPECT_EQ(RoleMayCall(Role::kAgent, rpc.name), rpc.agent_may) << rpc.name;
    for (const Caller& caller : callers) {
      SCOPED_TRACE(absl::StrCat(rpc.name, " as ", caller.label));
      auto client = TcpClient(caller.token);
      auto context = client->NewContext(absl::Seconds(20));
      grpc::Status status = rpc.call(client->stub(), context.get());
      if (!caller.role.has_value()) {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << status.error_message();
      } else if (*caller.role == Role::kAgent
                     ? !rpc.agent_may
                     : static_cast<int>(*caller.role) <
                           static_cast<int>(rpc.needs)) {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << status.error_message();
      } else {
        EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
        EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << status.error_message();
      }
    }
  }
}

// grpc.health.v1.Health/Check with an empty request, without generated
// stubs: the response's bytes are {0x08, status} (field 1, varint).
grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                         int* serving_status) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::CompletionQueue cq;
  grpc::ByteBuffer request, response;
  grpc::Slice empty("", 0);
  request = grpc::ByteBuffer(&empty, 1);
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check",
                                    request, &cq);
  call->StartCall();
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);
  std::vector<grpc::Slice> slices;
  *serving_status = -1;
  if (status.ok() && response.Dump(&slices).ok()) {
    std::string bytes;
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    *serving_status = bytes.size() == 2 && bytes[0] == 0x08 ? bytes[1] : 0;
  }
  return status;
}

TEST_F(ServiceTest, HealthStaysOpenWithoutToken) {
  StartTcp();
  auto client = TcpClient("");
  int serving = -1;
  grpc::Status status = HealthCheck(client->channel(), &serving);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(serving, 1);  // SERVING
}

TEST_F(ServiceTest, UnixSocketIsOwnerOnly) {
  StartUnix();
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/s.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ServiceTest, RefusesUnsafeListening) {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  auto no_tokens = KilnServer::Start(engine_.get(), options);
  EXPECT_EQ(no_tokens.status().code(), absl::StatusCode::kFailedPrecondition);
  options.listen = "0.0.0.0:0";
  options.token_file = dir_ + "/absent";
  auto no_tls = KilnServer::Start(engine_.get(), options);
  EXPECT_EQ(no_tls.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kiln::service
