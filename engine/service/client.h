// KilnClient: a connection to `kiln serve` for the CLI verbs, tests and
// benchmarks: dialing (unix socket or TCP, optional TLS, bearer token),
// blob upload/download and a WatchRun loop that resumes by sequence.
//
// Thread-safety: all methods may be called concurrently (gRPC stubs are
// thread-safe).
#ifndef KILN_ENGINE_SERVICE_CLIENT_H_
#define KILN_ENGINE_SERVICE_CLIENT_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/cas/digest.h"
#include "engine/engine.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "kiln/v1/service.grpc.pb.h"

namespace kiln::service {

struct ClientOptions {
  // "unix:PATH" or "HOST:PORT".
  std::string server;
  // Sent as `authorization: Bearer TOKEN` (empty: none).
  std::string token;
  // PEM roots: dial with TLS (else plaintext).
  std::string tls_roots;
  // Bytes per UploadBlob message.
  size_t chunk_bytes = 1 << 20;
};

// The token in a token file: the first field of its first line that is not
// blank or a comment (so a bare token, or a server `TOKEN ROLE NAME` line).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// absl status from a gRPC status (codes map 1:1).
absl::Status FromGrpc(const grpc::Status& status);

class KilnClient {
 public:
  explicit KilnClient(ClientOptions options);

  v1::Kiln::Stub& stub() { return *stub_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // A context carrying the token (and `timeout`, unless infinite).
  std::unique_ptr<grpc::ClientContext> NewContext(
      absl::Duration timeout = absl::InfiniteDuration()) const;

  // Uploads bytes / a blob of the local store under `digest`. With a
  // `digest` the caller already has (it must be the bytes' own: the server
  // verifies it and refuses a mismatch), the bytes are not hashed here.
  absl::Status UploadBytes(absl::string_view bytes);
  absl::Status UploadBytes(absl::string_view bytes, const cas::Digest& digest);
  absl::Status UploadBlob(const Engine& local, const cas::Digest& digest);
  // Uploads `digest` from the local store unless the server has it already.
  absl::Status EnsureBlob(const Engine& local, const cas::Digest& digest);
  // The whole blob (in memory).
  absl::StatusOr<std::string> DownloadBlob(const cas::Digest& digest);

  // Streams the run's events after `after_seq` to `on_event` until the
  // run's final event; reconnects after UNAVAILABLE / RESOURCE_EXHAUSTED /
  // a dropped stream, resuming after the last sequence delivered, for at
  // most `reconnect_for` without progress. Returns the last event's state.
  using EventHandler = std::function<void(const v1::RunEvent&)>;
  absl::StatusOr<v1::RunState> Watch(
      const std::string& run_id, uint64_t after_seq,
      const EventHandler& on_event,
      absl::Duration reconnect_for = absl::Seconds(30));

  // SubmitRun and Watch in one call (SubmitAndWatchRun): starts the run
  // and streams its events to `on_event`, the run's id to `run_id` (if
  // not null) with the first. A stream that breaks after the first event
  // goes on as Watch does; one that fails UNAVAILABLE before it is retried
  // (as long as `reconnect_for`) only if the request carries an
  // idempotency key, which makes a second submit return the first run.
  absl::StatusOr<v1::RunState> SubmitAndWatch(
      const v1::SubmitRunRequest& request, const EventHandler& on_event,
      std::string* run_id = nullptr,
      absl::Duration reconnect_for = absl::Seconds(30));

 private:
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Kiln::Stub> stub_;
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_CLIENT_H_
