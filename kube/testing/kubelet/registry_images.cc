#include "kube/testing/kubelet/registry_images.h"

#include <utility>

#include "engine/image/image_store.h"
#include "engine/oci/registry/registry.h"

namespace kiln {
namespace kube {
namespace testing {

absl::StatusOr<std::unique_ptr<ImageAccess>> OpenRegistryImages(
    const std::string& dir) {
  absl::StatusOr<std::unique_ptr<oci::registry::RegistrySources>> sources =
      oci::registry::RegistrySources::Create(oci::registry::RegistryOptions());
  if (!sources.ok()) return sources.status();
  image::ImageStoreOptions options;
  options.dir = dir;
  options.sources = std::shared_ptr<oci::ImageSources>(std::move(*sources));
  absl::StatusOr<std::unique_ptr<image::ImageStore>> store =
      image::ImageStore::Open(std::move(options));
  if (!store.ok()) return store.status();
  return std::unique_ptr<ImageAccess>(std::move(*store));
}

}  // namespace testing
}  // namespace kube
}  // namespace kiln
