// Deployment records: what a deploy task or a rollback applied to an
// environment, written to the run store (RunStore::RecordDeployment) once
// the apply (and wait) is over, whether it succeeded or failed.
// Thread-compatible: one recorder per deployment.
#ifndef KILN_ENGINE_DEPLOY_RECORD_H_
#define KILN_ENGINE_DEPLOY_RECORD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/deploy/deployer.h"
#include "engine/deploy/manifests.h"
#include "engine/store/run_store.h"

namespace kiln::deploy {

class DeploymentRecorder {
 public:
  // Starts the record of applying `manifests` (the artifact `digest`) to
  // `target` in kube context `context` by `task` of `run_id`: notes the
  // start time and the images the manifests name. Call before Apply.
  // `runs` null: nothing is recorded (an engine without a run store).
  DeploymentRecorder(store::RunStore* runs, const DeployTarget& target,
                     const std::string& context, const std::string& run_id,
                     const std::string& task, const std::string& digest,
                     const std::vector<Manifest>& manifests);

  // A rollback: the deployment it re-applies.
  void set_rollback_to(int64_t id) { record_.rollback_to = id; }

  // Writes the record: the objects `applied` and the outcome (`result` not
  // OK: failed, its message passed through `mask` when given, so no secret
  // reaches the store). Says on `log` which record it wrote, or why it
  // could not. Returns the record's id (0 without a run store), or the
  // store's error.
  absl::StatusOr<int64_t> Finish(
      const std::vector<AppliedObject>& applied, const absl::Status& result,
      const LogFn& log,
      const std::function<std::string(std::string)>& mask = nullptr);

 private:
  store::RunStore* const runs_;
  store::DeploymentRecord record_;
};

}  // namespace kiln::deploy

#endif  // KILN_ENGINE_DEPLOY_RECORD_H_
