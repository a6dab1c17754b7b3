// KilnService task outputs: ListArtifacts, DownloadArtifact (role viewer).
// Translation over Engine::ListArtifacts / GetArtifact / OpenArtifact: the
// names in a request are only compared with the run's recorded outputs.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
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

constexpr int kDefaultArtifactPage = 1000;
constexpr int kMaxArtifactPage = 5000;

// A page token names the last artifact sent (task, NUL, name), web-safe
// base64: opaque to clients, and stable while a run records more outputs.
std::string PageToken(const ArtifactInfo& last) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(last.task, std::string(1, '\0'), last.name));
}

}  // namespace

absl::StatusOr<ArtifactPage> PageArtifacts(std::vector<ArtifactInfo> all,
                                           int page_size,
                                           const std::string& page_token) {
  if (page_size < 0 || page_size > kMaxArtifactPage) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be 0..", kMaxArtifactPage));
  }
  if (page_size == 0) page_size = kDefaultArtifactPage;
  size_t start = 0;
  if (!page_token.empty()) {
    std::string decoded;
    if (!absl::WebSafeBase64Unescape(page_token, &decoded) ||
        decoded.find('\0') == std::string::npos) {
      return absl::InvalidArgumentError("malformed page_token");
    }
    size_t nul = decoded.find('\0');
    std::string task = decoded.substr(0, nul), name = decoded.substr(nul + 1);
    size_t i = 0;
    while (i < all.size() && !(all[i].task == task && all[i].name == name)) ++i;
    if (i == all.size()) {
      return absl::InvalidArgumentError(
          "page_token names no artifact of this listing (another run or "
          "task?)");
    }
    start = i + 1;
  }
  ArtifactPage page;
  size_t end = std::min(all.size(), start + static_cast<size_t>(page_size));
  for (size_t i = start; i < end; ++i) {
    page.artifacts.push_back(std::move(all[i]));
  }
  if (end < all.size()) page.next_page_token = PageToken(page.artifacts.back());
  return page;
}

grpc::Status KilnService::ListArtifacts(grpc::ServerContext* context,
                                        const v1::ListArtifactsRequest* request,
                                        v1::ListArtifactsResponse* response) {
  if (auto who = Admit(context, "ListArtifacts"); !who.ok()) {
    return ToGrpc(who.status());
  }
  absl::StatusOr<std::vector<ArtifactInfo>> listed =
      engine_->ListArtifacts(request->run_id(), request->task());
  if (!listed.ok()) return ToGrpc(listed.status());
  absl::StatusOr<ArtifactPage> page = PageArtifacts(
      std::move(*listed), request->page_size(), request->page_token());
  if (!page.ok()) return ToGrpc(page.status());
  for (const ArtifactInfo& info : page->artifacts) {
    ToProto(info, response->add_artifacts());
  }
  response->set_next_page_token(page->next_page_token);
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
