// ImageStore: the engine's images on this host — pins references to
// digests, pulls manifests, configs and layers through oci::ImageSources
// (verified), and unpacks each layer once per diff_id into the layer cache
// for image-mode runs (kiln::ImageAccess, executors/image_access.h).
//
// Layout under dir() (<store>/images/):
//   blobs/sha256/<hex>    manifests, indexes and configs, verified on read
//                         (a damaged one is fetched again)
//   layers/<hex>/         the unpacked layer whose diff_id is sha256:<hex>,
//                         in overlayfs form (layer_unpack.h); complete once
//                         visible (renamed into place), never written again
//   tmp/                  compressed layer blobs while they are unpacked
//                         (unlinked at once: nothing survives a crash)
// Leftovers of dead processes (cas::TempName entries in layers/ and tmp/)
// are swept by Open().
//
// Pinning: a tag is resolved through the source to the platform's image
// manifest digest ("name@sha256:…"); a reference by digest stays as it is
// (an index digest is narrowed to the platform when prepared). Prepare()
// refuses a reference that is not pinned.
//
// Pulls: each layer is fetched and unpacked once per diff_id: concurrent
// Prepare()s of one layer in this process wait for the one that unpacks it;
// across processes sharing the store, each unpacks into a private directory
// and the first rename wins (layer_unpack.h). Compressed layer blobs are
// not kept once unpacked.
//
// Thread-safe.
#ifndef KILN_ENGINE_IMAGE_IMAGE_STORE_H_
#define KILN_ENGINE_IMAGE_IMAGE_STORE_H_

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/image/layer_unpack.h"
#include "engine/oci/source.h"
#include "engine/oci/spec.h"
#include "executors/image_access.h"

namespace kiln::image {

struct ImageStoreOptions {
  // The store's image directory (trusted; created if missing), normally
  // "<store>/images".
  std::string dir;
  // Opens references to their registries (the registry client's
  // RegistrySources, or a test double). Null: tags cannot be pinned and
  // only images whose manifests, configs and layers are already in the
  // store can be prepared ("no registry access is configured").
  std::shared_ptr<oci::ImageSources> sources;
  // The platform an index is narrowed to. Empty os: this host's
  // (linux/<architecture of this build>).
  oci::Platform platform;
  UnpackOptions unpack;
};

class ImageStore : public ImageAccess {
 public:
  static absl::StatusOr<std::unique_ptr<ImageStore>> Open(
      ImageStoreOptions options);

  // "name@sha256:<hex>" for `reference` (see above). Errors name the
  // reference: InvalidArgument (malformed), FailedPrecondition (a tag and
  // no registry access), or the source's (NotFound, Unavailable, DataLoss
  // for a manifest whose bytes do not match its digest, …).
  absl::StatusOr<std::string> Pin(const std::string& reference);
  absl::StatusOr<std::string> Pin(const std::string& reference,
                                  const oci::Platform& platform);

  // ImageAccess.
  absl::StatusOr<PreparedImage> Prepare(const std::string& reference) override;

  const std::string& dir() const { return options_.dir; }
  const oci::Platform& platform() const { return options_.platform; }
  // The directory of the unpacked layer with this diff_id (it may not
  // exist).
  std::string LayerDir(const std::string& diff_id) const;

 private:
  struct Flight {
    bool done = false;
    absl::Status status;
  };
  class Pull;

  ImageStore(ImageStoreOptions options, cas::UniqueFd blobs,
             cas::UniqueFd layers, cas::UniqueFd tmp);
  // A manifest/index/config blob from blobs/, verified; NotFound if absent.
  absl::StatusOr<std::string> LocalBlob(const cas::Digest& digest);
  absl::Status StoreBlob(const cas::Digest& digest, const std::string& bytes);
  absl::Status EnsureLayer(Pull& pull, const oci::Descriptor& layer,
                           const std::string& diff_id);
  absl::Status UnpackFetched(Pull& pull, const oci::Descriptor& layer,
                             const std::string& diff_id,
                             const std::string& hex);

  const ImageStoreOptions options_;
  cas::UniqueFd blobs_fd_;
  cas::UniqueFd layers_fd_;
  cas::UniqueFd tmp_fd_;
  Mutex mu_;
  // Layers being unpacked in this process, by diff_id hex.
  std::map<std::string, std::shared_ptr<Flight>> flights_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kiln::image

#endif  // KILN_ENGINE_IMAGE_IMAGE_STORE_H_
