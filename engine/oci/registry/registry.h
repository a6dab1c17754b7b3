// The OCI distribution client: opens image references to registry
// repositories (oci::ImageSources / oci::ImageSource) for pulling, and
// pushes blobs and manifests (push.h).
//
// Transport: HTTPS, verified against the system's CAs or `ca_file`. Plain
// HTTP only for loopback registries (localhost, 127.0.0.0/8, ::1) and the
// registries listed in `insecure_registries` — never as a fallback.
// Authentication: anonymous, basic, or the bearer-token challenge flow, with
// credentials from `credentials` (kiln secrets; they win) or a docker
// config.json. Every request is bounded in time; transport failures, 5xx and
// 429 are retried with backoff. Errors name the registry, the repository,
// the HTTP status and the registry's error code and message.
//
// Pulled manifests are verified against the digest asked for and the
// registry's Docker-Content-Digest; blobs are verified while streaming and
// an interrupted download resumes with a Range request.
//
// Thread-safe: RegistrySources and the RegistrySources it opens may be used
// from many threads.
#ifndef KILN_ENGINE_OCI_REGISTRY_REGISTRY_H_
#define KILN_ENGINE_OCI_REGISTRY_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "engine/oci/registry/auth.h"
#include "engine/oci/registry/client.h"
#include "engine/oci/registry/http.h"
#include "engine/oci/registry/reference.h"
#include "engine/oci/source.h"
#include "engine/oci/spec.h"

namespace kiln::oci::registry {

struct RegistryOptions {
  // PEM CA bundle for HTTPS registries and token services; "" → the
  // system's.
  std::string ca_file;
  // Registries ("host[:port]") spoken to in plain HTTP. Loopback registries
  // are too, unless plain_http_loopback is false.
  std::vector<std::string> insecure_registries;
  bool plain_http_loopback = true;
  // A docker config.json to read credentials from; "" → none. A path that
  // does not exist is an error.
  std::string docker_config_path;
  // registry → credentials (kiln secrets); these win over the config file.
  CredentialsMap credentials;

  absl::Duration connect_timeout = absl::Seconds(30);
  // Whole-request limit for API calls and manifests.
  absl::Duration request_timeout = absl::Minutes(2);
  // Whole-request limit for one blob transfer (or one upload chunk).
  absl::Duration blob_timeout = absl::Hours(2);
  // A transfer with no progress for this long is aborted (and retried).
  absl::Duration stall_timeout = absl::Seconds(60);
  RetryPolicy retry;

  // Blobs larger than this are uploaded in chunks of chunk_bytes (PATCH);
  // others in one PUT.
  int64_t chunked_upload_threshold = int64_t{64} << 20;
  int64_t chunk_bytes = int64_t{16} << 20;
  std::string user_agent = "kiln";
};

class RegistrySource;

class RegistrySources : public ImageSources {
 public:
  // InvalidArgument for bad options; the docker config's load error.
  static absl::StatusOr<std::unique_ptr<RegistrySources>> Create(
      RegistryOptions options);
  ~RegistrySources() override;

  // oci::ImageSources: `source` is a RegistrySource.
  absl::StatusOr<OpenedReference> Open(const std::string& reference) override;
  // The repository of `ref` (its tag and digest are not used).
  absl::StatusOr<std::unique_ptr<RegistrySource>> OpenRepository(
      const Reference& ref);

  const RegistryOptions& options() const { return options_; }

  // Cross-repository mount candidates: blobs this process saw in a
  // repository of a registry (pulled, pushed, or found present).
  void NoteBlob(const std::string& registry, const std::string& repository,
                const std::string& digest);
  // A repository of `registry` other than `not_repository` known to hold
  // `digest`; "" when none.
  std::string KnownRepository(const std::string& registry,
                              const std::string& digest,
                              const std::string& not_repository);

 private:
  RegistrySources(RegistryOptions options, CredentialsMap credentials);
  absl::StatusOr<std::shared_ptr<RegistryClient>> Client(
      const std::string& registry);

  const RegistryOptions options_;
  const CredentialsMap credentials_;  // config file merged with options
  HttpTransport transport_;
  Mutex mu_;
  std::map<std::string, std::shared_ptr<RegistryClient>> clients_
      ABSL_GUARDED_BY(mu_);
  // registry → digest → repository (bounded, see registry.cc).
  std::map<std::string, std::map<std::string, std::string>> known_blobs_
      ABSL_GUARDED_BY(mu_);
  size_t known_blob_count_ ABSL_GUARDED_BY(mu_) = 0;
};

// One repository of a registry.
class RegistrySource : public ImageSource {
 public:
  RegistrySource(RegistrySources* sources,
                 std::shared_ptr<RegistryClient> client,
                 std::string repository);

  // "registry R repository P".
  std::string Describe() const override;
  // GET /v2/P/manifests/REF accepting the OCI and Docker v2 manifest and
  // index types. Verified: by digest → the bytes hash to it; by tag → they
  // hash to the Docker-Content-Digest the registry states (when it states
  // one). Over kMaxManifestBytes → ResourceExhausted. A media type that is
  // neither a manifest nor an index → InvalidArgument.
  absl::StatusOr<FetchedManifest> GetManifest(
      const std::string& tag_or_digest) override;
  // GET /v2/P/blobs/D following redirects; verified while streaming; an
  // interrupted transfer resumes with Range (restarting from the beginning —
  // out_fd truncated back — when the registry ignores the range and out_fd
  // is seekable).
  absl::Status FetchBlob(const Descriptor& blob, int out_fd) override;

  // Push primitives (push.h composes them).
  // HEAD /v2/P/blobs/D: true when present with the descriptor's size.
  absl::StatusOr<bool> BlobExists(const Descriptor& blob);
  // Uploads `blob` read from `fd` (pread from offset 0, blob.size bytes):
  // skipped when present; mounted from another repository of the registry
  // when one is known (`mount_from`, else one this process saw); otherwise
  // a monolithic PUT or — over the chunked threshold — PATCH chunks, an
  // interrupted upload resuming at the registry's offset or restarting.
  absl::Status PushBlob(const Descriptor& blob, int fd,
                        const std::string& mount_from = "");
  // PUT /v2/P/manifests/TAG_OR_DIGEST. Returns the manifest's digest
  // (checked against the digest given and the registry's answer).
  absl::StatusOr<std::string> PutManifest(const std::string& tag_or_digest,
                                          const std::string& bytes,
                                          const std::string& media_type);

  const std::string& repository() const { return repository_; }
  const std::string& registry() const { return client_->registry(); }

 private:
  absl::Status Upload(const Descriptor& blob, int fd, std::string location);
  absl::StatusOr<std::string> StartUpload(const Descriptor& blob,
                                          const std::string& mount_from,
                                          bool* mounted);
  std::string PullScope() const;
  std::string PushScope(const std::string& mount_from = "") const;

  RegistrySources* const sources_;
  const std::shared_ptr<RegistryClient> client_;
  const std::string repository_;
};

}  // namespace kiln::oci::registry

#endif  // KILN_ENGINE_OCI_REGISTRY_REGISTRY_H_
