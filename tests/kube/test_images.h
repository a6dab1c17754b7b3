// Test images in a registry (testonly), built with kiln's own containerize
// through a real engine: BuildBusyboxImage pushes a scratch image holding
// the host's static busybox (its applets in /bin, /usr/bin/env, the
// accounts of executors/testing/busybox_image.h) to `registry_host` and
// returns "HOST/kiln-busybox@sha256:...". No image config env, workdir or
// user: a task's environment is exactly its request's.
#ifndef KILN_TESTS_KUBE_TEST_IMAGES_H_
#define KILN_TESTS_KUBE_TEST_IMAGES_H_

#include <string>

#include "absl/status/statusor.h"

namespace kiln {
namespace kubetest {

absl::StatusOr<std::string> BuildBusyboxImage(const std::string& registry_host);

}  // namespace kubetest
}  // namespace kiln

#endif  // KILN_TESTS_KUBE_TEST_IMAGES_H_
