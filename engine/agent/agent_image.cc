#include "engine/agent/agent_image.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "engine/oci/registry/registry.h"
#include "engine/pipeline/loader.h"
#include "executors/fake/fake_executor.h"

namespace kiln::agent {
namespace {

std::string Runfile(const std::string& path) {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/",
                      workspace != nullptr ? workspace : "kiln", "/", path);
}

}  // namespace

absl::StatusOr<std::string> BuildAgentImage(const std::string& registry_host) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string root =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/agent-image-XXXXXX");
  if (mkdtemp(root.data()) == nullptr) {
    return absl::InternalError("mkdtemp for the agent image build");
  }
  // The source tree: the bundle (copied: runfiles are symlinks, which a
  // stash refuses to follow) and the pipeline.
  std::error_code ec;
  std::filesystem::create_directories(root + "/src", ec);
  std::filesystem::copy(Runfile("engine/agent/bundle/kiln"), root + "/src/kiln",
                        std::filesystem::copy_options::recursive, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("copying //engine/agent:bundle (is it in the runfiles?): ",
                     ec.message()));
  }
  std::ifstream in(Runfile("engine/agent/agent-image.yaml"));
  std::stringstream yaml;
  yaml << in.rdbuf();
  if (yaml.str().empty()) {
    return absl::FailedPreconditionError(
        "engine/agent/agent-image.yaml is not in the runfiles");
  }
  pipeline::LoadedPipeline loaded =
      pipeline::LoadPipelineText(yaml.str(), "agent-image.yaml");
  if (!loaded.ok()) {
    return absl::InvalidArgumentError(loaded.errors.empty()
                                          ? "agent-image.yaml does not load"
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
        absl::StrCat("the agent image pipeline failed:", failures));
  }
  if (!absl::StartsWith(image, registry_host + "/kiln-agent")) {
    return absl::InternalError(
        absl::StrCat("the agent image pipeline pushed ", image));
  }
  // "HOST/kiln-agent:v1@sha256:..." -> "HOST/kiln-agent@sha256:...".
  size_t at = image.find('@');
  if (at == std::string::npos) {
    return absl::InternalError(absl::StrCat("not pinned: ", image));
  }
  return absl::StrCat(registry_host, "/kiln-agent", image.substr(at));
}

}  // namespace kiln::agent
