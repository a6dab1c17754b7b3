// OpenRegistryImages (testonly): the engine's image store (engine/image) as
// the simulated kubelet's ImageAccess, pulling from registries (loopback
// registries in plain HTTP, as kiln's registry client does), layers
// unpacked under `dir`.
#ifndef KILN_KUBE_TESTING_KUBELET_REGISTRY_IMAGES_H_
#define KILN_KUBE_TESTING_KUBELET_REGISTRY_IMAGES_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "executors/image_access.h"

namespace kiln {
namespace kube {
namespace testing {

absl::StatusOr<std::unique_ptr<ImageAccess>> OpenRegistryImages(
    const std::string& dir);

}  // namespace testing
}  // namespace kube
}  // namespace kiln

#endif  // KILN_KUBE_TESTING_KUBELET_REGISTRY_IMAGES_H_
