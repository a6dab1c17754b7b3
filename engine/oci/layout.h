// OCI image layouts (image-spec "image-layout"): a directory holding
//   oci-layout          {"imageLayoutVersion":"1.0.0"}
//   index.json          an image index naming the layout's images
//   blobs/sha256/<hex>  every manifest, config and layer, by digest
//
// LayoutWriter creates one (the containerize kind's output artifact).
// LayoutSource reads one as an ImageSource. A layout read by kiln is
// usually an artifact some task produced, so it is hostile input: every
// file is opened beneath the layout's directory fd without following a
// symlink (a symlinked blob, index.json or blobs/ directory is refused),
// only regular files are read, index.json and manifests are size-limited
// (spec.h kMaxManifestBytes), and every blob is verified against its
// digest and size while it is read (DataLoss on a mismatch).
#ifndef KILN_ENGINE_OCI_LAYOUT_H_
#define KILN_ENGINE_OCI_LAYOUT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/cas/beneath.h"
#include "engine/oci/source.h"
#include "engine/oci/spec.h"

namespace kiln::oci {

// The annotation naming an image in index.json ("tag" in `oci:DIR:TAG`).
inline constexpr char kRefNameAnnotation[] =
    "org.opencontainers.image.ref.name";
inline constexpr char kLayoutVersionJson[] =
    "{\"imageLayoutVersion\":\"1.0.0\"}";

class LayoutWriter {
 public:
  // Creates the layout in the new directory `name` of parent_fd (which
  // must not exist), with oci-layout and blobs/sha256/.
  static absl::StatusOr<LayoutWriter> Create(int parent_fd,
                                             const std::string& name);

  // Stores a blob from memory; returns its digest ("sha256:…").
  absl::StatusOr<std::string> PutBlob(absl::string_view bytes);
  // A new temporary blob file to stream into; CommitBlob names it by its
  // digest (computed by the writer of the stream) or discards it if that
  // blob is already present.
  absl::StatusOr<cas::UniqueFd> NewBlobFile(std::string* temp_name);
  absl::Status CommitBlob(const std::string& temp_name,
                          const std::string& digest);
  // Writes index.json listing `manifests` (canonical JSON).
  absl::Status WriteIndex(const std::vector<Descriptor>& manifests);

  int dir_fd() const { return dir_.get(); }

 private:
  LayoutWriter(cas::UniqueFd dir, cas::UniqueFd blobs)
      : dir_(std::move(dir)), blobs_(std::move(blobs)) {}
  cas::UniqueFd dir_;
  cas::UniqueFd blobs_;  // blobs/sha256
  int next_temp_ = 0;
};

class LayoutSource : public ImageSource {
 public:
  // Opens the layout at dir_fd (duplicated; the caller keeps its fd) and
  // checks its oci-layout file. `display` names it in errors.
  static absl::StatusOr<std::unique_ptr<LayoutSource>> Open(
      int dir_fd, std::string display);

  std::string Describe() const override;
  // "" names the layout's index.json itself (an OCI index; ResolveImage
  // then picks the platform); "sha256:…" a manifest or index blob; anything
  // else the index.json entry whose ref.name annotation equals it.
  absl::StatusOr<FetchedManifest> GetManifest(
      const std::string& tag_or_digest) override;
  absl::Status FetchBlob(const Descriptor& blob, int out_fd) override;
  // A small blob (a config) into memory, verified; at most `max_bytes`.
  absl::StatusOr<std::string> ReadBlob(const Descriptor& blob,
                                       size_t max_bytes);

 private:
  LayoutSource(cas::UniqueFd dir, std::string display)
      : dir_(std::move(dir)), display_(std::move(display)) {}
  absl::StatusOr<std::string> ReadIndexJson();
  // Streams blob `digest` to `consume`, verifying digest and `size` (>= 0).
  absl::Status StreamBlob(
      const std::string& digest, int64_t size, size_t max_bytes,
      const std::function<absl::Status(absl::string_view)>& consume);

  cas::UniqueFd dir_;
  std::string display_;
};

}  // namespace kiln::oci

#endif  // KILN_ENGINE_OCI_LAYOUT_H_
