// Rolling an environment back: the manifests artifact a recorded
// deployment applied is applied again with the same Deployer (server-side
// apply, field manager "kiln", the same placement and labels), into the
// namespace it was recorded with, and the rollback is recorded as a new
// deployment (run id "", task "rollback", rollback_to = the source).
// Thread-compatible.
#ifndef KILN_ENGINE_DEPLOY_ROLLBACK_H_
#define KILN_ENGINE_DEPLOY_ROLLBACK_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "engine/cas/artifact_store.h"
#include "engine/deploy/deployer.h"
#include "engine/store/run_store.h"

namespace kiln::deploy {

inline constexpr char kRollbackTask[] = "rollback";

struct RollbackRequest {
  std::string environment;
  // The environment's namespace; "" when its records name only one.
  std::string namespace_name;
  // The deployment to re-apply; 0: the newest successful deployment before
  // the environment's latest one, with other manifests than the latest
  // if that one succeeded.
  int64_t to = 0;
  // The cluster: kubeconfig files (empty: $KUBECONFIG, ~/.kube/config,
  // in-cluster) and the context (unset: the one recorded).
  std::vector<std::string> kubeconfig_paths;
  absl::optional<std::string> kube_context;
  bool force = false;  // take over fields other managers own
  bool wait = true;    // wait for the rollouts
  absl::Duration timeout = absl::Minutes(5);
};

// The deployment `request` rolls back to. NotFound for an environment
// without records or an unknown id; InvalidArgument for an id of another
// environment or namespace; FailedPrecondition for several namespaces
// without request.namespace_name, a failed deployment, or no earlier
// successful one.
absl::StatusOr<store::DeploymentRecord> ChooseRollback(
    store::RunStore& runs, const RollbackRequest& request);

// Rolls back (ChooseRollback, then apply and wait). The manifests are
// unstashed into a fresh directory beneath `scratch_parent` (removed
// after). FailedPrecondition if the artifact is no longer stored or the
// namespace no longer exists (a rollback creates none). Once the apply
// started, the outcome is recorded either way; the new record on success,
// the apply's error (naming the record) otherwise. `cancelled` is polled
// while waiting (may be null).
absl::StatusOr<store::DeploymentRecord> Rollback(
    store::RunStore& runs, const cas::ArtifactStore& artifacts,
    const std::string& scratch_parent, const RollbackRequest& request,
    const LogFn& log, std::function<bool()> cancelled);

}  // namespace kiln::deploy

#endif  // KILN_ENGINE_DEPLOY_ROLLBACK_H_
