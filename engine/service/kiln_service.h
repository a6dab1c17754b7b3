// KilnService: the kiln.v1.Kiln gRPC service, a translation over
// kiln::Engine (proto in -> Engine call -> proto and status out; absl codes
// map 1:1 to gRPC codes). Every RPC first passes the Authorizer.
//
// Streams never block the engine: WatchRun hands events over through a
// bounded EventQueue (a watcher that falls behind is ended with
// RESOURCE_EXHAUSTED and resumes by sequence), and each client may hold at
// most `max_streams_per_client` streams. BeginShutdown() ends every open
// stream with UNAVAILABLE within ~`poll` so the gRPC server can stop.
//
// Thread-safety: all methods are called concurrently by gRPC threads.
#ifndef KILN_ENGINE_SERVICE_KILN_SERVICE_H_
#define KILN_ENGINE_SERVICE_KILN_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/cas/artifact_store.h"
#include "engine/engine.h"
#include "engine/service/auth.h"
#include "engine/service/stream_limiter.h"
#include "kiln/v1/service.grpc.pb.h"

namespace kiln::service {

struct ServiceOptions {
  // Null: no tokens (unix socket); everyone is the admin "local".
  std::shared_ptr<const TokenTable> tokens;
  int max_streams_per_client = 256;
  // Events buffered per watcher before it is dropped (it can resume).
  size_t watch_queue_events = 4096;
  // Bytes per DownloadBlob message and per StreamLogs read.
  size_t chunk_bytes = 1 << 20;
  // Largest blob accepted by UploadBlob.
  int64_t max_blob_bytes = int64_t{16} << 30;
  // Most digests in one FindMissingBlobs.
  int max_digests = 10000;
  // How often streams re-check cancellation and shutdown.
  absl::Duration poll = absl::Milliseconds(200);
};

class KilnService final : public v1::Kiln::Service {
 public:
  // `engine` must outlive the service.
  static absl::StatusOr<std::unique_ptr<KilnService>> Create(
      Engine* engine, ServiceOptions options);

  // Ends open streams (UNAVAILABLE) and refuses new calls.
  void BeginShutdown() { shutting_down_ = true; }

  grpc::Status ValidatePipeline(
      grpc::ServerContext* context, const v1::ValidatePipelineRequest* request,
      v1::ValidatePipelineResponse* response) override;
  grpc::Status SubmitRun(grpc::ServerContext* context,
                         const v1::SubmitRunRequest* request,
                         v1::SubmitRunResponse* response) override;
  grpc::Status GetRun(grpc::ServerContext* context,
                      const v1::GetRunRequest* request,
                      v1::Run* response) override;
  grpc::Status ListRuns(grpc::ServerContext* context,
                        const v1::ListRunsRequest* request,
                        v1::ListRunsResponse* response) override;
  grpc::Status CancelRun(grpc::ServerContext* context,
                         const v1::CancelRunRequest* request,
                         v1::CancelRunResponse* response) override;
  grpc::Status RetryRun(grpc::ServerContext* context,
                        const v1::RetryRunRequest* request,
                        v1::SubmitRunResponse* response) override;
  grpc::Status WatchRun(grpc::ServerContext* context,
                        const v1::WatchRunRequest* request,
                        grpc::ServerWriter<v1::RunEvent>* writer) override;
  grpc::Status StreamLogs(
      grpc::ServerContext* context, const v1::StreamLogsRequest* request,
      grpc::ServerWriter<v1::StreamLogsResponse>* writer) override;
  grpc::Status FindMissingBlobs(
      grpc::ServerContext* context, const v1::FindMissingBlobsRequest* request,
      v1::FindMissingBlobsResponse* response) override;
  grpc::Status UploadBlob(grpc::ServerContext* context,
                          grpc::ServerReader<v1::UploadBlobRequest>* reader,
                          v1::UploadBlobResponse* response) override;
  grpc::Status DownloadBlob(
      grpc::ServerContext* context, const v1::DownloadBlobRequest* request,
      grpc::ServerWriter<v1::DownloadBlobResponse>* writer) override;

 private:
  KilnService(Engine* engine, ServiceOptions options,
              std::unique_ptr<cas::ArtifactStore> artifacts);

  // Authorizes the call and refuses it during shutdown.
  absl::StatusOr<Principal> Admit(grpc::ServerContext* context,
                                  absl::string_view method) const;
  // As Admit, plus a stream slot for the client.
  absl::StatusOr<StreamLimiter::Slot> AdmitStream(grpc::ServerContext* context,
                                                  absl::string_view method);
  // Unpacks an uploaded source artifact into a fresh directory.
  absl::StatusOr<std::string> MaterializeSource(
      const v1::SourceArtifact& source);
  // True when the stream should stop (client gone or shutting down).
  bool StreamOver(grpc::ServerContext* context) const;

  Engine* const engine_;
  const ServiceOptions options_;
  const Authorizer authorizer_;
  std::unique_ptr<cas::ArtifactStore> artifacts_;
  StreamLimiter limiter_;
  std::atomic<bool> shutting_down_{false};
};

// absl -> grpc status (codes map 1:1).
grpc::Status ToGrpc(const absl::Status& status);

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_KILN_SERVICE_H_
