// KilnService task outputs: ListArtifacts, DownloadArtifact (role viewer).
// Translation over Engine::ListArtifacts / GetArtifact / OpenArtifact: the
// names in a request are only compared with the run's recorded outputs.
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/cas/digest.h"
#include "engine/service/kiln_service.h"

namespace kiln::service {
namespace {

void ToProto(const ArtifactInfo& info, v1::Artifact* out) {
  out->set_task(info.task);
  out->set_name(info.name);
  out->set_tree_digest(info.tree.ToString());
  out->set_stored(info.stored);
  if (!info.stored) return;
  out->set_archive_digest(info.archive.ToString());
  out->set_archive_size(info.archive.size());
  out->set_files(info.files);
  out->set_file_bytes(info.file_bytes);
  out->set_directories(info.directories);
  out->set_symlinks(info.symlinks);
}

}  // namespace

grpc::Status KilnService::ListArtifacts(grpc::ServerContext* context,
                                        const v1::ListArtifactsRequest* request,
                                        v1::ListArtifactsResponse* response) {
  if (auto who = Admit(context, "ListArtifacts"); !who.ok()) {
    return ToGrpc(who.status());
  }
  absl::StatusOr<std::vector<ArtifactInfo>> listed =
      engine_->ListArtifacts(request->run_id(), request->task());
  if (!listed.ok()) return ToGrpc(listed.status());
  for (const ArtifactInfo& info : *listed) {
    ToProto(info, response->add_artifacts());
  }
  return grpc::Status::OK;
}

grpc::Status KilnService::DownloadArtifact(
    grpc::ServerContext* context, const v1::DownloadArtifactRequest* request,
    grpc::ServerWriter<v1::DownloadArtifactResponse>* writer) {
  absl::StatusOr<StreamLimiter::Slot> slot =
      AdmitStream(context, "DownloadArtifact");
  if (!slot.ok()) return ToGrpc(slot.status());
  if (request->task().empty() || request->artifact().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "DownloadArtifact needs run_id, task and artifact");
  }
  if (request->format() != v1::DownloadArtifactRequest::ZSTD_TAR &&
      request->format() != v1::DownloadArtifactRequest::TAR) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("unknown format ", request->format()));
  }
  absl::StatusOr<ArtifactInfo> info = engine_->GetArtifact(
      request->run_id(), request->task(), request->artifact());
  if (!info.ok()) return ToGrpc(info.status());
  absl::StatusOr<std::unique_ptr<archive::ByteSource>> source =
      engine_->OpenArtifact(
          *info, request->format() == v1::DownloadArtifactRequest::TAR);
  if (!source.ok()) return ToGrpc(source.status());
  v1::DownloadArtifactResponse response;
  ToProto(*info, response.mutable_artifact());
  cas::Sha256 hasher;
  // Chunks of at most chunk_bytes: the sources hand out up to 1 MiB.
  while (true) {
    absl::StatusOr<absl::string_view> chunk = (*source)->Next();
    if (!chunk.ok()) return ToGrpc(chunk.status());  // DataLoss: corrupt
    if (chunk->empty()) break;
    for (size_t at = 0; at < chunk->size(); at += options_.chunk_bytes) {
      absl::string_view part = chunk->substr(at, options_.chunk_bytes);
      hasher.Update(part);
      response.set_data(std::string(part));
      if (!writer->Write(response)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
      response.Clear();
      if (StreamOver(context)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "download abandoned");
      }
    }
  }
  response.set_data_digest(hasher.Finish().ToString());
  if (!writer->Write(response)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  }
  return grpc::Status::OK;
}

}  // namespace kiln::service
