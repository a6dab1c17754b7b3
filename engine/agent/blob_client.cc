#include "engine/agent/blob_client.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace kiln::agent {
namespace {

constexpr size_t kChunk = 1 << 20;

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

}  // namespace

BlobClient::BlobClient(BlobClientOptions options)
    : options_(std::move(options)) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options_.ca_pem.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options_.ca_pem;
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(8 << 20);
  args.SetMaxSendMessageSize(8 << 20);
  channel_ = grpc::CreateCustomChannel(options_.server, creds, args);
  stub_ = v1::Kiln::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> BlobClient::NewContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.token.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", options_.token));
  }
  context->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  context->set_wait_for_ready(false);
  return context;
}

absl::StatusOr<std::vector<std::string>> BlobClient::FindMissing(
    const std::vector<std::string>& digests) {
  v1::FindMissingBlobsRequest request;
  for (const std::string& d : digests) request.add_digests(d);
  v1::FindMissingBlobsResponse response;
  auto context = NewContext();
  grpc::Status s = stub_->FindMissingBlobs(context.get(), request, &response);
  if (!s.ok()) return FromGrpc(s, "FindMissingBlobs");
  return std::vector<std::string>(response.missing().begin(),
                                  response.missing().end());
}

absl::Status BlobClient::Upload(const cas::Digest& digest, int fd) {
  auto context = NewContext();
  v1::UploadBlobResponse response;
  auto writer = stub_->UploadBlob(context.get(), &response);
  v1::UploadBlobRequest message;
  message.set_digest(digest.ToString());
  message.set_size(digest.size());
  int64_t left = digest.size();
  std::string buf(kChunk, '\0');
  bool first = true;
  while (first || left > 0) {
    size_t want = static_cast<size_t>(std::min<int64_t>(left, kChunk));
    size_t got = 0;
    while (got < want) {
      ssize_t n = read(fd, buf.data() + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        context->TryCancel();
        return absl::InternalError(
            absl::StrCat("reading the archive to upload: ",
                         n < 0 ? std::strerror(errno) : "short file"));
      }
      got += static_cast<size_t>(n);
    }
    message.set_data(buf.data(), got);
    left -= static_cast<int64_t>(got);
    first = false;
    if (!writer->Write(message)) break;  // Finish says why
    message.Clear();
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok())
    return FromGrpc(s, absl::StrCat("UploadBlob ", digest.ToString()));
  if (response.digest() != digest.ToString()) {
    return absl::DataLossError(absl::StrCat(
        "UploadBlob stored ", response.digest(), ", not ", digest.ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Download>> BlobClient::StartDownload(
    const cas::Digest& digest) {
  std::unique_ptr<Download> d(new Download());
  d->want_ = digest;
  d->context_ = NewContext();
  v1::DownloadBlobRequest request;
  request.set_digest(digest.ToString());
  d->reader_ = stub_->DownloadBlob(d->context_.get(), request);
  return d;
}

absl::StatusOr<absl::string_view> Download::Next() {
  if (!final_.ok()) return final_;
  while (!done_) {
    message_.Clear();
    if (!reader_->Read(&message_)) {
      done_ = true;
      grpc::Status s = reader_->Finish();
      if (!s.ok()) {
        final_ = FromGrpc(s, absl::StrCat("DownloadBlob ", want_.ToString()));
        return final_;
      }
      break;
    }
    if (message_.data().empty()) continue;
    received_ += static_cast<int64_t>(message_.data().size());
    if (want_.size() != cas::Digest::kUnknownSize && received_ > want_.size()) {
      final_ = absl::DataLossError(absl::StrCat("blob ", want_.ToString(),
                                                ": more bytes than its size"));
      context_->TryCancel();
      return final_;
    }
    hash_.Update(message_.data());
    return absl::string_view(message_.data());
  }
  return absl::string_view();
}

absl::Status Download::Finish() {
  while (true) {
    absl::StatusOr<absl::string_view> chunk = Next();
    if (!chunk.ok()) return chunk.status();
    if (chunk->empty()) break;
  }
  cas::Digest got = hash_.Finish();
  if (got.Hex() != want_.Hex() || (want_.size() != cas::Digest::kUnknownSize &&
                                   received_ != want_.size())) {
    final_ = absl::DataLossError(
        absl::StrCat("blob ", want_.ToString(), ": the bytes received hash to ",
                     got.ToString(), " (", received_, " bytes)"));
    return final_;
  }
  return absl::OkStatus();
}

}  // namespace kiln::agent
