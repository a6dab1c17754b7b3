// ImageSource: where image manifests and blobs come from — a registry
// repository (engine/oci/registry) or an OCI image layout (engine/oci/layout).
// Consumers (the image store that unpacks layers for image-mode runs, the
// image builder that starts from a base) program against this and never
// care which.
#ifndef KILN_ENGINE_OCI_SOURCE_H_
#define KILN_ENGINE_OCI_SOURCE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/oci/spec.h"

namespace kiln::oci {

struct FetchedManifest {
  std::string bytes;       // exactly as served (its digest is `digest`)
  std::string media_type;  // a manifest or an index media type
  std::string digest;      // "sha256:…" of `bytes`, verified
};

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // A description for errors, e.g. "registry 127.0.0.1:5000 repository app"
  // or "OCI layout 'base'".
  virtual std::string Describe() const = 0;
  // The manifest or index named by `tag_or_digest` ("sha256:…" or a tag).
  // By digest: the bytes are verified against it (a mismatch is
  // DataLoss naming both digests). Size-limited by kMaxManifestBytes.
  virtual absl::StatusOr<FetchedManifest> GetManifest(
      const std::string& tag_or_digest) = 0;
  // Writes blob `blob` to out_fd (from its current offset), verifying its
  // size and digest while writing; on mismatch returns DataLoss and the
  // caller discards what was written.
  virtual absl::Status FetchBlob(const Descriptor& blob, int out_fd) = 0;
};

// Resolves `tag_or_digest` in `source` to a single-platform image manifest:
// an index is narrowed to `platform` (SelectPlatform) and that manifest
// fetched by digest. Returns the manifest and its verified bytes.
struct ResolvedImage {
  FetchedManifest manifest;  // an image manifest, never an index
  Manifest parsed;
};
absl::StatusOr<ResolvedImage> ResolveImage(ImageSource& source,
                                           const std::string& tag_or_digest,
                                           const Platform& platform);

// A reference opened to its source: the repository's ImageSource plus what
// to ask it for.
struct OpenedReference {
  std::unique_ptr<ImageSource> source;
  // "host[:port]/path/repo": the reference without tag or digest, in the
  // canonical form a pinned reference is written in ("NAME@sha256:…").
  std::string name;
  std::string tag_or_digest;  // "latest" when the reference names neither
};

// Opens references ("host:5000/app:1.0", "app@sha256:…", "debian" →
// docker.io/library/debian:latest) to their registry repositories, with the
// configured credentials, CA and insecure-registry list. The registry client
// implements it; tests may use an implementation over OCI layouts.
// Thread-safe.
class ImageSources {
 public:
  virtual ~ImageSources() = default;
  // InvalidArgument for a malformed reference (naming it and why).
  virtual absl::StatusOr<OpenedReference> Open(
      const std::string& reference) = 0;
};

}  // namespace kiln::oci

#endif  // KILN_ENGINE_OCI_SOURCE_H_
