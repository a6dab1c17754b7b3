#include "engine/cli/local_engine.h"

#include <unistd.h>

#include <cstdlib>
#include <utility>

#include "engine/cas/store_dir.h"
#include "engine/image/image_store.h"
#include "engine/oci/registry/registry.h"
#include "executors/local_sandbox/local_sandbox_executor.h"

namespace kiln::cli {
namespace {

// The docker config.json credentials are read from: the option, else
// $DOCKER_CONFIG/config.json, else ~/.docker/config.json when it exists.
std::string DockerConfigPath(const std::string& given) {
  if (!given.empty()) return given;
  std::string path;
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir && *dir) {
    path = std::string(dir) + "/config.json";
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    path = std::string(home) + "/.docker/config.json";
  }
  return !path.empty() && access(path.c_str(), F_OK) == 0 ? path : "";
}

absl::StatusOr<std::shared_ptr<oci::ImageSources>> Registries(
    const LocalEngineOptions& local) {
  oci::registry::RegistryOptions options;
  options.ca_file = local.registry_ca;
  options.insecure_registries = local.insecure_registries;
  options.docker_config_path = DockerConfigPath(local.registry_config);
  auto sources = oci::registry::RegistrySources::Create(std::move(options));
  if (!sources.ok()) return sources.status();
  return std::shared_ptr<oci::ImageSources>(std::move(*sources));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> MakeLocalEngine(
    const LocalEngineOptions& local) {
  // Profile: each step within the caller's "open store" span.
  TraceRecorder* trace = local.trace.get();
  const int track = trace != nullptr ? trace->Track("kiln run") : 0;
  auto store_dir = cas::ResolveStoreDir(local.store_flag);
  if (!store_dir.ok()) return store_dir.status();
  ScopedSpan registries_span(trace, track, "registry configuration");
  auto sources = Registries(local);
  registries_span.End();
  if (!sources.ok()) return sources.status();
  // One image store, shared by the engine (pins, containerize bases) and the
  // sandbox (image-mode runs).
  image::ImageStoreOptions images;
  images.dir = *store_dir + "/images";
  images.sources = *sources;
  ScopedSpan images_span(trace, track, "image store");
  auto image_store = image::ImageStore::Open(std::move(images));
  images_span.End();
  if (!image_store.ok()) return image_store.status();
  std::shared_ptr<image::ImageStore> shared_images = std::move(*image_store);

  LocalSandboxOptions sandbox;
  sandbox.hidden_paths = DefaultHiddenPaths(*store_dir);
  sandbox.images = shared_images.get();
  ScopedSpan executor_span(trace, track, "sandbox executor");
  auto executor = LocalSandboxExecutor::Create(sandbox);
  executor_span.End();
  if (!executor.ok()) return executor.status();
  EngineOptions options;
  options.store_dir = *store_dir;
  options.executor = std::move(*executor);
  options.executors = local.more_executors;
  options.default_executor = local.default_executor;
  options.parallelism = local.jobs > 0 ? local.jobs : 2;
  options.trace = local.trace;
  options.public_url = local.public_url;
  options.kubeconfig_paths = local.kubeconfig_paths;
  options.kube_context = local.kube_context;
  options.image_sources = *std::move(sources);
  options.image_store = std::move(shared_images);
  ScopedSpan engine_span(trace, track, "engine (stores)");
  return Engine::Create(std::move(options));
}

}  // namespace kiln::cli
