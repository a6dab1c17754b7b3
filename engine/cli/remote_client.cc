// cli::Client over gRPC, against `kiln serve` (kiln_client.h).
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/cli/kiln_client.h"
#include "kiln/v1/service.grpc.pb.h"

namespace kiln::cli {
namespace {

class RemoteClient : public Client {
 public:
  RemoteClient(std::shared_ptr<service::KilnClient> connection,
               std::string local_store_dir)
      : c_(std::move(connection)),
        local_store_dir_(std::move(local_store_dir)) {}

  absl::StatusOr<UploadedSource> UploadSource(const std::string& dir) override {
    // Stash the source in the local store, upload what the server lacks.
    if (absl::Status s = OpenLocal(); !s.ok()) return s;
    absl::StatusOr<cas::StashResult> stashed = local_->StashDirectory(dir);
    if (!stashed.ok()) return stashed.status();
    if (absl::Status s = c_->EnsureBlob(*local_, stashed->archive); !s.ok()) {
      return s;
    }
    UploadedSource source;
    source.tree_digest = stashed->tree.ToString();
    source.archive_digest = stashed->archive.ToString();
    return source;
  }

  absl::StatusOr<std::string> Submit(const SubmitSpec& spec) override {
    v1::SubmitRunRequest request = RequestFor(spec);
    v1::SubmitRunResponse response;
    grpc::Status status;
    // Retried while the server is briefly unavailable; the idempotency key
    // makes that safe.
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto context = c_->NewContext(absl::Seconds(60));
      context->set_wait_for_ready(true);
      status = c_->stub().SubmitRun(context.get(), request, &response);
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    }
    if (!status.ok()) return service::FromGrpc(status);
    return response.run_id();
  }

  absl::StatusOr<v1::RunState> Watch(const std::string& run_id,
                                     uint64_t after_seq,
                                     const EventHandler& on_event) override {
    return c_->Watch(run_id, after_seq, on_event);
  }

  absl::StatusOr<v1::RunState> SubmitAndWatch(
      const SubmitSpec& spec,
      const std::function<void(const std::string&)>& on_run_id,
      const EventHandler& on_event) override {
    std::string id;
    bool told = false;
    return c_->SubmitAndWatch(
        RequestFor(spec),
        [&](const v1::RunEvent& event) {
          if (!told) {
            told = true;
            on_run_id(id);
          }
          on_event(event);
        },
        &id);
  }

  absl::StatusOr<v1::Run> GetRun(const std::string& run_id) override {
    v1::GetRunRequest request;
    request.set_run_id(run_id);
    v1::Run run;
    auto context = c_->NewContext(absl::Seconds(30));
    grpc::Status status = c_->stub().GetRun(context.get(), request, &run);
    if (!status.ok()) return service::FromGrpc(status);
    return run;
  }

  absl::StatusOr<store::RunPage> ListRuns(
      const store::RunFilter& filter, int page_size,
      const std::string& page_token) override {
    v1::ListRunsRequest request;
    if (filter.state.has_value()) request.set_state(*filter.state);
    request.set_pipeline_name(filter.pipeline_name);
    request.set_page_size(page_size);
    request.set_page_token(page_token);
    v1::ListRunsResponse response;
    auto context = c_->NewContext(absl::Seconds(30));
    grpc::Status status =
        c_->stub().ListRuns(context.get(), request, &response);
    if (!status.ok()) return service::FromGrpc(status);
    store::RunPage page;
    for (v1::Run& run : *response.mutable_runs()) {
      page.runs.push_back(std::move(run));
    }
    page.next_page_token = response.next_page_token();
    return page;
  }

  absl::Status Cancel(const std::string& run_id,
                      const std::string& reason) override {
    v1::CancelRunRequest request;
    request.set_run_id(run_id);
    request.set_reason(reason);
    v1::CancelRunResponse response;
    auto context = c_->NewContext(absl::Seconds(30));
    return service::FromGrpc(
        c_->stub().CancelRun(context.get(), request, &response));
  }

  absl::StatusOr<v1::ApprovalStatus> DecideApproval(
      const std::string& run_id, const std::string& task, bool approve,
      const std::string& comment) override {
    v1::DecideApprovalRequest request;
    request.set_run_id(run_id);
    request.set_task(task);
    request.set_approve(approve);
    request.set_comment(comment);
    v1::DecideApprovalResponse response;
    auto context = c_->NewContext(absl::Seconds(30));
    grpc::Status status =
        c_->stub().DecideApproval(context.get(), request, &response);
    if (!status.ok()) return service::FromGrpc(status);
    return response.approval();
  }

  absl::StatusOr<std::string> Retry(const std::string& run_id) override {
    v1::RetryRunRequest request;
    request.set_run_id(run_id);
    v1::SubmitRunResponse response;
    auto context = c_->NewContext(absl::Seconds(60));
    grpc::Status status =
        c_->stub().RetryRun(context.get(), request, &response);
    if (!status.ok()) return service::FromGrpc(status);
    return response.run_id();
  }

  absl::StatusOr<std::vector<ArtifactInfo>> ListArtifacts(
      const std::string& run_id, const std::string& task) override {
    v1::ListArtifactsRequest request;
    request.set_run_id(run_id);
    request.set_task(task);
    std::vector<ArtifactInfo> out;
    // Every page (a run of thousands of tasks spans several).
    do {
      v1::ListArtifactsResponse response;
      auto context = c_->NewContext(absl::Seconds(60));
      grpc::Status status =
          c_->stub().ListArtifacts(context.get(), request, &response);
      if (!status.ok()) return service::FromGrpc(status);
      for (const v1::Artifact& a : response.artifacts()) {
        absl::StatusOr<ArtifactInfo> info = FromProto(a);
        if (!info.ok()) return info.status();
        out.push_back(*std::move(info));
      }
      request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty());
    return out;
  }

  absl::StatusOr<ArtifactInfo> UnstashOutput(const std::string& run_id,
                                             const std::string& task,
                                             const std::string& artifact,
                                             const std::string& dir,
                                             bool replace) override {
    if (absl::Status s = OpenLocal(); !s.ok()) return s;
    v1::DownloadArtifactRequest request;
    request.set_run_id(run_id);
    request.set_task(task);
    request.set_artifact(artifact);
    request.set_format(v1::DownloadArtifactRequest::ZSTD_TAR);
    auto context = c_->NewContext();
    auto reader = c_->stub().DownloadArtifact(context.get(), request);
    v1::DownloadArtifactResponse message;
    absl::StatusOr<ArtifactInfo> info =
        absl::UnavailableError("the server sent nothing");
    std::unique_ptr<cas::BlobWriter> writer;
    // The archive goes into the local store, checked against the digest
    // the server announced; the unstash then checks the tree.
    bool first = true;
    int64_t received = 0;
    while (reader->Read(&message)) {
      if (first) {
        first = false;
        info = FromProto(message.artifact());
        if (!info.ok()) break;
        if (!info->stored) {
          info = absl::DataLossError("the server sent an unstored artifact");
          break;
        }
        if (!local_->HasBlob(info->archive)) {
          absl::StatusOr<std::unique_ptr<cas::BlobWriter>> w =
              local_->NewBlobWriter();
          if (!w.ok()) {
            info = w.status();
            break;
          }
          writer = std::move(*w);
        }
      }
      received += static_cast<int64_t>(message.data().size());
      if (received > info->archive.size()) {
        info = absl::DataLossError(
            absl::StrCat("the server sent more than the announced ",
                         info->archive.size(), " bytes"));
        break;
      }
      if (writer != nullptr) {
        if (absl::Status s = writer->Append(message.data()); !s.ok()) {
          info = s;
          break;
        }
      }
    }
    if (first) {  // no message: the server refused the call
      grpc::Status status = reader->Finish();
      if (!status.ok()) return service::FromGrpc(status);
      return info.status();
    }
    if (!info.ok()) {
      context->TryCancel();
      reader->Finish().ok();
      return info.status();
    }
    grpc::Status status = reader->Finish();
    if (!status.ok()) return service::FromGrpc(status);
    if (writer != nullptr) {
      absl::StatusOr<cas::Digest> stored = writer->Commit(&info->archive);
      if (!stored.ok()) return stored.status();
    }
    absl::Status st = local_->UnstashDownloadedArtifact(
        info->tree, info->archive, dir, replace);
    if (!st.ok()) return st;
    return info;
  }

 private:
  static v1::SubmitRunRequest RequestFor(const SubmitSpec& spec) {
    v1::SubmitRunRequest request;
    request.set_yaml(spec.yaml);
    request.set_filename(spec.filename);
    *request.mutable_trigger() = spec.trigger;
    if (!spec.source.tree_digest.empty()) {
      request.mutable_source()->set_tree_digest(spec.source.tree_digest);
      request.mutable_source()->set_archive_digest(spec.source.archive_digest);
    }
    request.set_idempotency_key(spec.idempotency_key);
    request.set_keep_going(spec.keep_going);
    return request;
  }

  // The local store, opened on first use.
  absl::Status OpenLocal() {
    if (local_ != nullptr) return absl::OkStatus();
    absl::StatusOr<std::unique_ptr<Engine>> local =
        Engine::OpenStore(local_store_dir_);
    if (!local.ok()) return local.status();
    local_ = std::move(*local);
    return absl::OkStatus();
  }

  static absl::StatusOr<ArtifactInfo> FromProto(const v1::Artifact& a) {
    ArtifactInfo info;
    info.task = a.task();
    info.name = a.name();
    absl::StatusOr<cas::Digest> tree = cas::Digest::Parse(a.tree_digest());
    if (!tree.ok()) return tree.status();
    info.tree = *tree;
    info.stored = a.stored();
    if (!info.stored) return info;
    absl::StatusOr<cas::Digest> archive =
        cas::Digest::Parse(a.archive_digest());
    if (!archive.ok()) return archive.status();
    info.archive = *archive;
    info.archive.set_size(a.archive_size());
    info.files = a.files();
    info.file_bytes = a.file_bytes();
    info.directories = a.directories();
    info.symlinks = a.symlinks();
    return info;
  }

  const std::shared_ptr<service::KilnClient> c_;
  const std::string local_store_dir_;
  std::unique_ptr<Engine> local_;  // the local store, for Submit's source
};

}  // namespace

std::unique_ptr<Client> NewRemoteClient(
    std::shared_ptr<service::KilnClient> connection,
    std::string local_store_dir) {
  return std::make_unique<RemoteClient>(std::move(connection),
                                        std::move(local_store_dir));
}

}  // namespace kiln::cli
