// Builds a kiln::Engine over the local store and the local sandbox
// executor, as the `run` and `serve` verbs use it, with the registry
// client (images for run.image, containerize bases and pushes).
#ifndef KILN_ENGINE_CLI_LOCAL_ENGINE_H_
#define KILN_ENGINE_CLI_LOCAL_ENGINE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/engine.h"

namespace kiln::cli {

struct LocalEngineOptions {
  std::string store_flag;  // the --store value ("" for the default)
  int jobs = 2;            // <= 0: 2
  // The --executor value ("" = local-sandbox); an unknown name fails,
  // listing the known ones.
  std::string default_executor;
  // The registry client's configuration (engine/cli/registry_flags.h).
  std::string registry_ca;  // "" = the system's CAs
  std::vector<std::string> insecure_registries;
  // A docker config.json; "" = $DOCKER_CONFIG/config.json or
  // ~/.docker/config.json when it exists.
  std::string registry_config;
  // Executors beside the local sandbox (e.g. the kubernetes executor,
  // kube_executor.h); a task picks one by name.
  std::vector<std::shared_ptr<Executor>> more_executors;
  // The run's profile (--profile), or null.
  std::shared_ptr<TraceRecorder> trace;
  // The dashboard's base URL for notifications (serve --public-url).
  std::string public_url;
  // Deploy tasks' cluster (EngineOptions::kubeconfig_paths/kube_context).
  std::vector<std::string> kubeconfig_paths;
  std::string kube_context;
};

absl::StatusOr<std::unique_ptr<Engine>> MakeLocalEngine(
    const LocalEngineOptions& options);

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_LOCAL_ENGINE_H_
