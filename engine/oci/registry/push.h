// Pushing an image (manifest or index, with everything it references) to a
// registry repository.
//
// Order: blobs (config and layers; each skipped when the repository has it,
// mounted when another repository of the registry is known to have it),
// then for an index its child manifests by digest, then the top manifest
// under the target's tag (or digest) and any extra tags. A failure leaves
// the tag untouched (blobs already uploaded stay, as with every registry
// client).
#ifndef KILN_ENGINE_OCI_REGISTRY_PUSH_H_
#define KILN_ENGINE_OCI_REGISTRY_PUSH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/oci/registry/registry.h"
#include "engine/oci/source.h"
#include "engine/oci/spec.h"

namespace kiln::oci::registry {

// Where the bytes of the blobs to push come from.
class BlobProvider {
 public:
  virtual ~BlobProvider() = default;
  // A readable, pread-able fd holding `blob` at offset 0; the caller closes
  // it. The bytes are checked by the registry against the digest.
  virtual absl::StatusOr<int> OpenBlob(const Descriptor& blob) = 0;
  // The bytes of a child manifest of an index, verified against
  // `manifest.digest`. The default reads OpenBlob().
  virtual absl::StatusOr<std::string> ReadManifest(const Descriptor& manifest);
};

// Blobs fetched (verified) from `source` — e.g. an OCI layout's
// LayoutSource — into unnamed temporary files (O_TMPFILE) in `temp_dir`;
// child manifests through source->GetManifest. `source` outlives it.
std::unique_ptr<BlobProvider> BlobsFromSource(ImageSource* source,
                                              std::string temp_dir);

// Blobs read in place from an OCI image layout directory open at
// `layout_dir_fd` (borrowed; must outlive the provider): blobs/sha256/<hex>
// opened beneath it without following any symlink, and required to be a
// regular file of the descriptor's size. No copy is made; the registry
// checks the digest at the final PUT (and ReadManifest checks it here).
std::unique_ptr<BlobProvider> BlobsFromLayout(int layout_dir_fd);

struct PushOptions {
  // More tags to point at the pushed manifest.
  std::vector<std::string> extra_tags;
  // A repository of the same registry to mount blobs from when they are not
  // in the target yet (besides those this process saw).
  std::string mount_from;
};

// Pushes the image whose top document is `manifest_bytes` (of `media_type`:
// an image manifest or an index) to `target_reference` ("host/repo:tag";
// by digest "host/repo@sha256:…" puts it untagged and the digest must
// match). Returns the manifest digest ("sha256:…").
absl::StatusOr<std::string> PushImage(RegistrySources& sources,
                                      const std::string& target_reference,
                                      const std::string& manifest_bytes,
                                      const std::string& media_type,
                                      BlobProvider& blobs,
                                      const PushOptions& options = {});

// Whether `target_reference` (as PushImage takes it) already names image
// `manifest_digest`: its tag resolves to that manifest, or, by digest, the
// repository holds it. A registry accepts a manifest only once it holds
// everything the manifest references (blobs; an index's manifests), so
// then there is nothing to push: one manifest GET instead of a HEAD per
// blob and a PUT (a cached containerize task's re-check). False, not an
// error, when it cannot tell (a missing tag, another image, an unreachable
// registry): the caller pushes, and that reports what is wrong.
bool AlreadyPushed(RegistrySources& sources,
                   const std::string& target_reference,
                   const std::string& manifest_digest);

// Pushes image `tag_or_digest` of `from` (an OCI layout, another registry,
// …) to `target_reference`. Returns the manifest digest.
absl::StatusOr<std::string> PushFromSource(RegistrySources& sources,
                                           ImageSource& from,
                                           const std::string& tag_or_digest,
                                           const std::string& target_reference,
                                           const std::string& temp_dir,
                                           const PushOptions& options = {});

}  // namespace kiln::oci::registry

#endif  // KILN_ENGINE_OCI_REGISTRY_PUSH_H_
