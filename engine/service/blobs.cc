// KilnService blob transfer: FindMissingBlobs, UploadBlob, DownloadBlob.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/service/kiln_service.h"

namespace kiln::service {

grpc::Status KilnService::FindMissingBlobs(
    grpc::ServerContext* context, const v1::FindMissingBlobsRequest* request,
    v1::FindMissingBlobsResponse* response) {
  if (auto who = Admit(context, "FindMissingBlobs"); !who.ok()) {
    return ToGrpc(who.status());
  }
  if (request->digests_size() > options_.max_digests) {
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("at most ", options_.max_digests, " digests per call"));
  }
  std::vector<cas::Digest> digests;
  digests.reserve(request->digests_size());
  for (const std::string& text : request->digests()) {
    absl::StatusOr<cas::Digest> digest = cas::Digest::Parse(text);
    if (!digest.ok()) return ToGrpc(digest.status());
    digests.push_back(*digest);
  }
  for (const cas::Digest& missing : engine_->FindMissingBlobs(digests)) {
    response->add_missing(missing.ToString());
  }
  return grpc::Status::OK;
}

grpc::Status KilnService::UploadBlob(
    grpc::ServerContext* context,
    grpc::ServerReader<v1::UploadBlobRequest>* reader,
    v1::UploadBlobResponse* response) {
  absl::StatusOr<StreamLimiter::Slot> slot = AdmitStream(context, "UploadBlob");
  if (!slot.ok()) return ToGrpc(slot.status());
  v1::UploadBlobRequest message;
  if (!reader->Read(&message)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "empty upload (the first message names the blob)");
  }
  absl::StatusOr<cas::Digest> expected = cas::Digest::Parse(message.digest());
  if (!expected.ok()) return ToGrpc(expected.status());
  if (message.size() < 0 || message.size() > options_.max_blob_bytes) {
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("blob size ", message.size(), " over the limit of ",
                     options_.max_blob_bytes, " bytes"));
  }
  expected->set_size(message.size());
  // Bounded uploads at once and temporary space: the announced size is
  // reserved up front (and writing stops at it).
  struct Reservation {
    std::atomic<int>* uploads;
    ByteBudget* budget;
    int64_t bytes = 0;
    ~Reservation() {
      uploads->fetch_sub(1);
      budget->Give(bytes);
    }
  } reservation{&uploads_, temp_budget_.get()};
  if (uploads_.fetch_add(1) >= options_.max_concurrent_uploads) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("too many uploads in progress (limit ",
                                     options_.max_concurrent_uploads,
                                     ", --max-uploads); retry later"));
  }
  if (!temp_budget_->Take(message.size())) {
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("upload of ", message.size(),
                     " bytes refused: uploads and extractions in progress "
                     "already reserve ",
                     temp_budget_->used(), " bytes of temporary space (limit ",
                     options_.max_upload_temp_bytes,
                     ", --max-upload-temp-bytes); retry later"));
  }
  reservation.bytes = message.size();
  if (absl::Status s =
          CheckFreeSpace(absl::StrCat("upload of ", message.size(), " bytes"));
      !s.ok()) {
    return ToGrpc(s);
  }
  absl::StatusOr<std::unique_ptr<cas::BlobWriter>> writer =
      engine_->NewBlobWriter();
  if (!writer.ok()) return ToGrpc(writer.status());
  int64_t received = 0;
  do {
    if (!message.digest().empty() && received > 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "digest allowed in the first message only");
    }
    received += static_cast<int64_t>(message.data().size());
    if (received > expected->size()) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("more than the announced ", expected->size(), " bytes"));
    }
    if (absl::Status s = (*writer)->Append(message.data()); !s.ok()) {
      return ToGrpc(s);
    }
    message.Clear();
    if (StreamOver(context)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "upload abandoned");
    }
  } while (reader->Read(&message));
  // Commit verifies size and hash; on mismatch nothing is stored.
  absl::StatusOr<cas::Digest> stored = (*writer)->Commit(&*expected);
  if (!stored.ok()) return ToGrpc(stored.status());
  response->set_digest(stored->ToString());
  response->set_size(stored->size());
  return grpc::Status::OK;
}

grpc::Status KilnService::DownloadBlob(
    grpc::ServerContext* context, const v1::DownloadBlobRequest* request,
    grpc::ServerWriter<v1::DownloadBlobResponse>* writer) {
  absl::StatusOr<StreamLimiter::Slot> slot =
      AdmitStream(context, "DownloadBlob");
  if (!slot.ok()) return ToGrpc(slot.status());
  absl::StatusOr<cas::Digest> digest = cas::Digest::Parse(request->digest());
  if (!digest.ok()) return ToGrpc(digest.status());
  absl::StatusOr<std::unique_ptr<cas::BlobReader>> reader =
      engine_->OpenBlob(*digest);
  if (!reader.ok()) return ToGrpc(reader.status());
  v1::DownloadBlobResponse response;
  response.set_size((*reader)->size());
  std::string* buffer = response.mutable_data();
  bool first = true;
  while (true) {
    buffer->resize(options_.chunk_bytes);
    absl::StatusOr<size_t> n =
        (*reader)->Read(buffer->data(), options_.chunk_bytes);
    if (!n.ok()) return ToGrpc(n.status());  // DataLoss: corrupt blob
    buffer->resize(*n);
    if (*n == 0 && !first) break;
    if (!writer->Write(response)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    if (*n == 0) break;
    first = false;
    response.clear_size();
    if (StreamOver(context)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "download abandoned");
    }
  }
  return grpc::Status::OK;
}

}  // namespace kiln::service
