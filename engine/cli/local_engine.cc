#include "engine/cli/local_engine.h"

#include "engine/cas/store_dir.h"
#include "executors/local_sandbox/local_sandbox_executor.h"

namespace kiln::cli {

absl::StatusOr<std::unique_ptr<Engine>> MakeLocalEngine(
    const std::string& store_flag, int jobs,
    const std::string& default_executor) {
  auto store_dir = cas::ResolveStoreDir(store_flag);
  if (!store_dir.ok()) return store_dir.status();
  LocalSandboxOptions sandbox;
  sandbox.hidden_paths = DefaultHiddenPaths(*store_dir);
  auto executor = LocalSandboxExecutor::Create(sandbox);
  if (!executor.ok()) return executor.status();
  EngineOptions options;
  options.store_dir = *store_dir;
  options.executor = std::move(*executor);
  options.default_executor = default_executor;
  options.parallelism = jobs > 0 ? jobs : 2;
  return Engine::Create(std::move(options));
}

}  // namespace kiln::cli
