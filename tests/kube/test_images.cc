#include "tests/kube/test_images.h"

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "engine/oci/registry/registry.h"
#include "engine/pipeline/loader.h"
#include "executors/fake/fake_executor.h"
#include "executors/testing/busybox_image.h"

namespace kiln {
namespace kubetest {
namespace {

constexpr char kPipeline[] = R"(name: kiln-busybox-image
params:
  - name: registry
tasks:
  - name: bin
    stash: {artifact: bin, from: rootfs/bin}
  - name: usr
    stash: {artifact: usr, from: rootfs/usr}
  - name: etc
    stash: {artifact: etc, from: rootfs/etc}
  - name: image
    needs: [bin, usr, etc]
    containerize:
      base: scratch
      layers:
        - {artifact: bin, to: /bin}
        - {artifact: usr, to: /usr}
        - {artifact: etc, to: /etc}
      push: ${params.registry}/kiln-busybox:v1
)";

}  // namespace

absl::StatusOr<std::string> BuildBusyboxImage(
    const std::string& registry_host) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string root =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/busybox-image-XXXXXX");
  if (mkdtemp(root.data()) == nullptr) {
    return absl::InternalError("mkdtemp for the busybox image build");
  }
  std::error_code ec;
  std::filesystem::create_directories(root + "/src", ec);
  std::filesystem::create_directories(root + "/layers", ec);
  // The busybox layer of the test ImageAccess, as the image's content.
  conformance::BusyboxImageAccess layers(root + "/layers");
  absl::StatusOr<std::string> layer = layers.BusyboxLayer("rootfs");
  if (!layer.ok()) return layer.status();
  std::filesystem::rename(*layer, root + "/src/rootfs", ec);
  if (ec) return absl::InternalError(absl::StrCat("rename: ", ec.message()));

  pipeline::LoadedPipeline loaded =
      pipeline::LoadPipelineText(kPipeline, "busybox-image.yaml");
  if (!loaded.ok()) {
    return absl::InvalidArgumentError(loaded.errors.empty()
                                          ? "busybox-image.yaml does not load"
                                          : loaded.errors[0].ToString());
  }
  oci::registry::RegistryOptions registry;
  registry.insecure_registries = {registry_host};
  auto sources = oci::registry::RegistrySources::Create(std::move(registry));
  if (!sources.ok()) return sources.status();
  EngineOptions options;
  options.store_dir = root + "/store";
  options.executor = std::make_shared<FakeExecutor>();  // runs no task here
  options.image_sources =
      std::shared_ptr<oci::ImageSources>(std::move(*sources));
  auto engine = Engine::Create(std::move(options));
  if (!engine.ok()) return engine.status();
  RunRequest request;
  request.pipeline = loaded.pipeline;
  request.source_dir = root + "/src";
  (*request.trigger.mutable_params())["registry"] = registry_host;
  auto run = (*engine)->Submit(std::move(request));
  if (!run.ok()) return run.status();
  v1::Run done = (*run)->Wait();
  (*engine)->Shutdown(absl::Seconds(5));
  std::filesystem::remove_all(root, ec);
  std::string image;
  std::string failures;
  for (const v1::TaskStatus& task : done.tasks()) {
    if (task.name() == "image") {
      auto it = task.results().find("image");
      if (it != task.results().end()) image = it->second;
    }
    if (task.state() != v1::TASK_SUCCEEDED && task.state() != v1::TASK_CACHED) {
      absl::StrAppend(&failures, " ", task.name(), ": ", task.reason());
    }
  }
  if (!failures.empty() || image.empty()) {
    return absl::InternalError(
        absl::StrCat("the busybox image pipeline failed:", failures));
  }
  size_t at = image.find('@');
  if (at == std::string::npos) {
    return absl::InternalError(absl::StrCat("not pinned: ", image));
  }
  return absl::StrCat(registry_host, "/kiln-busybox", image.substr(at));
}

}  // namespace kubetest
}  // namespace kiln
