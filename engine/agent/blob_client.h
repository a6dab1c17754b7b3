// The agent's connection to the kiln blob API (FindMissingBlobs,
// UploadBlob, DownloadBlob of kiln.v1.Kiln) with a bearer token and, when a
// CA is given, TLS. Downloads stream and are hashed as they are read.
#ifndef KILN_ENGINE_AGENT_BLOB_CLIENT_H_
#define KILN_ENGINE_AGENT_BLOB_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/archive/byte_source.h"
#include "engine/cas/digest.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "kiln/v1/service.grpc.pb.h"

namespace kiln::agent {

struct BlobClientOptions {
  std::string server;  // HOST:PORT
  std::string token;
  std::string ca_pem;  // non-empty: TLS verified against it
  // Bound on one transfer (and on one FindMissingBlobs call).
  absl::Duration timeout = absl::Minutes(30);
};

// A download being read: Next() as a ByteSource; Finish() reads what is
// left and checks the stream's status and that the bytes hash to the digest
// asked for (DataLoss otherwise).
class Download : public archive::ByteSource {
 public:
  absl::StatusOr<absl::string_view> Next() override;
  absl::Status Finish();

 private:
  friend class BlobClient;
  Download() = default;
  cas::Digest want_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReader<v1::DownloadBlobResponse>> reader_;
  v1::DownloadBlobResponse message_;
  cas::Sha256 hash_;
  int64_t received_ = 0;
  bool done_ = false;
  absl::Status final_;
};

class BlobClient {
 public:
  explicit BlobClient(BlobClientOptions options);
  absl::StatusOr<std::vector<std::string>> FindMissing(
      const std::vector<std::string>& digests);
  // Uploads `size` bytes read from fd (from its current offset) as blob
  // `digest`.
  absl::Status Upload(const cas::Digest& digest, int fd);
  absl::StatusOr<std::unique_ptr<Download>> StartDownload(
      const cas::Digest& digest);

 private:
  std::unique_ptr<grpc::ClientContext> NewContext() const;
  BlobClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Kiln::Stub> stub_;
};

}  // namespace kiln::agent

#endif  // KILN_ENGINE_AGENT_BLOB_CLIENT_H_
