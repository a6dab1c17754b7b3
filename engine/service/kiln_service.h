// KilnService: the kiln.v1.Kiln gRPC service, a translation over
// kiln::Engine (proto in -> Engine call -> proto and status out; absl codes
// map 1:1 to gRPC codes). Every RPC first passes the Authorizer.
//
// Streams never block the engine: WatchRun sends the backlog from the run
// store at the client's pace, then hands live events over through an
// EventQueue bounded in events and bytes (a watcher that falls behind is
// cut off and resumes by sequence), and open streams are bounded
// per client and in total with a reserve for admins (stream_limiter.h).
// BeginShutdown() ends every open stream with UNAVAILABLE within ~`poll` so the
// gRPC server can stop.
//
// Thread-safety: all methods are called concurrently by gRPC threads.
#ifndef KILN_ENGINE_SERVICE_KILN_SERVICE_H_
#define KILN_ENGINE_SERVICE_KILN_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/engine.h"
#include "engine/service/admission_gate.h"
#include "engine/service/auth.h"
#include "engine/service/event_queue.h"
#include "engine/service/run_replies.h"
#include "engine/service/stream_limiter.h"
#include "engine/source/git_fetcher.h"
#include "kiln/v1/service.grpc.pb.h"

namespace kiln::service {

struct ServiceOptions {
  // Null: no tokens (unix socket); everyone is the admin "local".
  std::shared_ptr<const TokenTable> tokens;
  // Open WatchRun/StreamLogs/blob streams: per client, in all, and the
  // share of the total kept for admins (stream_limiter.h).
  int max_streams_per_client = 256;
  int max_streams = 512;
  int admin_stream_reserve = 64;
  // Events and bytes buffered per watcher, and bytes over all watchers,
  // before a watcher is ended with RESOURCE_EXHAUSTED (it resumes by
  // sequence).
  size_t watch_queue_events = 4096;
  size_t watch_queue_bytes = 4 << 20;
  size_t watch_total_bytes = 256 << 20;
  // Bytes per DownloadBlob message and per StreamLogs read.
  size_t chunk_bytes = 1 << 20;
  // Largest blob accepted by UploadBlob.
  int64_t max_blob_bytes = int64_t{16} << 30;
  // Uploads in progress at once, and source extractions (SubmitRun.source)
  // at once, over all clients. Over either: RESOURCE_EXHAUSTED.
  int max_concurrent_uploads = 16;
  int max_concurrent_extractions = 4;
  // Runs being started (validated, planned, recorded) at once; further
  // SubmitRun / SubmitAndWatchRun calls wait their turn, in arrival order,
  // within their deadline (admission_gate.h). 0: the number of CPUs, at
  // least 2.
  int max_concurrent_starts = 0;
  // Temporary space of all uploads and extractions in progress together:
  // an upload reserves its announced size, an extraction the most its
  // archive may expand to (min(max_source_bytes, max(64 MiB, archive size
  // x max_source_expansion)). A request that would pass it is refused
  // (RESOURCE_EXHAUSTED) before anything is written.
  int64_t max_upload_temp_bytes = int64_t{32} << 30;
  // Free space the store's filesystem keeps: an upload or extraction is
  // refused (RESOURCE_EXHAUSTED) when the filesystem's available bytes,
  // less everything reserved by requests in progress (this one included),
  // would fall below it. 0 turns the check off.
  int64_t min_free_bytes = int64_t{1} << 30;
  // A submitted source archive (SubmitRun.source) may hold at most this
  // many bytes of file content, and its zstd stream may expand at most
  // max_source_expansion times (past its first 64 MiB). Over either the
  // extraction stops at once: RESOURCE_EXHAUSTED, nothing left on disk.
  int64_t max_source_bytes = int64_t{4} << 30;
  int64_t max_source_expansion = 1000;
  // Most digests in one FindMissingBlobs.
  int max_digests = 10000;
  // Largest run reply (GetRun, ListRuns page, GetRunTasks page); under the
  // 8 MiB send limit (run_replies.h).
  size_t max_reply_bytes = kMaxReplyBytes;
  // Fetches SubmitRun.git_source (null: such submissions fail
  // FAILED_PRECONDITION). Its own bounds and URL policy (git_fetcher.h).
  std::shared_ptr<source::GitFetcher> git;
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
  grpc::Status GetRunTasks(grpc::ServerContext* context,
                           const v1::GetRunTasksRequest* request,
                           v1::GetRunTasksResponse* response) override;
  grpc::Status CancelRun(grpc::ServerContext* context,
                         const v1::CancelRunRequest* request,
                         v1::CancelRunResponse* response) override;
  grpc::Status RetryRun(grpc::ServerContext* context,
                        const v1::RetryRunRequest* request,
                        v1::SubmitRunResponse* response) override;
  grpc::Status DecideApproval(grpc::ServerContext* context,
                              const v1::DecideApprovalRequest* request,
                              v1::DecideApprovalResponse* response) override;
  grpc::Status WatchRun(grpc::ServerContext* context,
                        const v1::WatchRunRequest* request,
                        grpc::ServerWriter<v1::RunEvent>* writer) override;
  grpc::Status SubmitAndWatchRun(
      grpc::ServerContext* context, const v1::SubmitRunRequest* request,
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
  grpc::Status ListArtifacts(grpc::ServerContext* context,
                             const v1::ListArtifactsRequest* request,
                             v1::ListArtifactsResponse* response) override;
  grpc::Status DownloadArtifact(
      grpc::ServerContext* context, const v1::DownloadArtifactRequest* request,
      grpc::ServerWriter<v1::DownloadArtifactResponse>* writer) override;

 private:
  KilnService(Engine* engine, ServiceOptions options);

  // Authorizes the call and refuses it during shutdown.
  absl::StatusOr<Principal> Admit(grpc::ServerContext* context,
                                  absl::string_view method) const;
  // As Admit, plus a stream slot for the client.
  absl::StatusOr<StreamLimiter::Slot> AdmitStream(grpc::ServerContext* context,
                                                  absl::string_view method);
  // Unpacks an uploaded source artifact into a fresh directory.
  absl::StatusOr<std::string> MaterializeSource(
      const v1::SourceArtifact& source);
  // OK when the store's filesystem keeps options_.min_free_bytes free with
  // every reservation in progress written out (`what` names the request in
  // the error).
  absl::Status CheckFreeSpace(absl::string_view what) const;
  // SubmitRun's work after admission: starts the run (or finds the one
  // an earlier submit with the same idempotency key started); its id to
  // `run_id`.
  grpc::Status StartRun(grpc::ServerContext* context,
                        const v1::SubmitRunRequest* request,
                        std::string* run_id);
  // WatchRun's work after admission: the run's events after
  // `after_sequence`, until its final RunStateChanged.
  grpc::Status StreamEvents(grpc::ServerContext* context,
                            const std::string& run_id, uint64_t after_sequence,
                            grpc::ServerWriter<v1::RunEvent>* writer);
  // `run` as any reply may carry it: secrets redacted, size fitted.
  void PrepareRunReply(v1::Run* run);
  // True when the stream should stop (client gone or shutting down).
  bool StreamOver(grpc::ServerContext* context) const;

  Engine* const engine_;
  const ServiceOptions options_;
  const Authorizer authorizer_;
  StreamLimiter limiter_;
  // Uploads and extractions in progress, and the temporary space reserved
  // by both.
  std::atomic<int> uploads_{0};
  std::atomic<int> extractions_{0};
  // Runs being started (options_.max_concurrent_starts).
  AdmissionGate start_gate_;
  const std::shared_ptr<ByteBudget> temp_budget_;
  // Bytes queued for all watchers.
  const std::shared_ptr<ByteBudget> watch_budget_;
  std::atomic<bool> shutting_down_{false};
};

// Most tasks (tasks + finally) in a pipeline sent as a protobuf message.
inline constexpr int kMaxPipelineTasks = 10000;
// The loader's bounds applied to a pipeline sent as a protobuf message
// (size, task count, `needs` entries). ResourceExhausted naming the bound.
absl::Status CheckMessageBounds(const v1::Pipeline& pipeline);

// The temporary space a source extraction reserves: the most an archive of
// `compressed` bytes may expand to under ExtractLimits (max_total bytes of
// content, max_ratio past `grace` bytes, checked every MiB).
int64_t ExtractionReserve(int64_t compressed, int64_t max_total,
                          int64_t max_ratio, int64_t grace);

// Bytes available to an unprivileged writer on the filesystem of `dir`.
absl::StatusOr<int64_t> AvailableBytes(const std::string& dir);

// One page of a run's artifacts (ListArtifacts): at most `page_size`
// (0 = 1000, at most 5000) after the artifact `page_token` names.
// InvalidArgument for a bad size or a token naming nothing in `all`.
struct ArtifactPage {
  std::vector<ArtifactInfo> artifacts;
  std::string next_page_token;  // empty: the last page
};
absl::StatusOr<ArtifactPage> PageArtifacts(std::vector<ArtifactInfo> all,
                                           int page_size,
                                           const std::string& page_token);

// absl -> grpc status (codes map 1:1).
grpc::Status ToGrpc(const absl::Status& status);

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_KILN_SERVICE_H_
