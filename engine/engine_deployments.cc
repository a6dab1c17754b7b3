// kiln::Engine: deployment records and rollbacks, over the engine's store.
#include "engine/deploy/rollback.h"
#include "engine/engine.h"

namespace kiln {

absl::StatusOr<std::vector<store::DeploymentRecord>>
Engine::LatestDeployments() {
  return store().runs().LatestDeployments();
}

absl::StatusOr<std::vector<store::DeploymentRecord>> Engine::ListDeployments(
    const store::DeploymentFilter& filter) {
  return store().runs().ListDeployments(filter);
}

absl::StatusOr<store::DeploymentRecord> Engine::RollbackEnvironment(
    const deploy::RollbackRequest& request,
    const std::function<void(const std::string&)>& log) {
  return deploy::Rollback(store().runs(), store().artifacts(),
                          store().dir() + "/work", request, log, nullptr);
}

}  // namespace kiln
