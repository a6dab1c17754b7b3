// Where a deploy task goes: through the pipeline's `environments:`
// (docs/environments.md) when it declares any, else from the task's own
// deploy.kind/namespace/context (docs/deploy.md).
//
// With environments the namespace is ensured by the environment lifecycle
// (environments::PrepareDeploy) once the manifests are placed and before
// the first write: a preview's namespace is created or refreshed with
// kiln's labels and its expiry; a permanent one must exist (kiln never
// creates one); the permanent guard applies.
#ifndef KILN_ENGINE_KINDS_DEPLOY_TARGET_H_
#define KILN_ENGINE_KINDS_DEPLOY_TARGET_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/deploy/deployer.h"
#include "engine/kinds/kind_env.h"
#include "kiln/v1/pipeline.pb.h"
#include "kube/client.h"

namespace kiln::kinds {

struct DeployPlacement {
  // environment, namespace_name and create_namespace filled in; the rest
  // is the caller's.
  deploy::DeployTarget target;
  // The kube context of the deploy ("" = the run's --kube-context).
  std::string context;
  // From a declared environment (BindNamespace then ensures the namespace).
  bool declared = false;
};

// Resolves `spec` (substituted) for the run. InvalidArgument or NotFound
// (naming the declared environments) when it cannot be placed.
absl::StatusOr<DeployPlacement> PlaceDeploy(const v1::DeploySpec& spec,
                                            const TaskRunnerContext& ctx);

// For a declared environment: sets placement->target.ensure_namespace to
// the environment lifecycle over `client` (which must outlive the deploy);
// say() logs the namespace ensured. Otherwise leaves the Deployer's own
// check (create_namespace).
void BindNamespace(const TaskRunnerContext& ctx, const std::string& environment,
                   kube::Client* client, const deploy::LogFn& say,
                   DeployPlacement* placement);

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_DEPLOY_TARGET_H_
