#include "engine/deploy/record.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kiln::deploy {

DeploymentRecorder::DeploymentRecorder(store::RunStore* runs,
                                       const DeployTarget& target,
                                       const std::string& context,
                                       const std::string& run_id,
                                       const std::string& task,
                                       const std::string& digest,
                                       const std::vector<Manifest>& manifests)
    : runs_(runs) {
  record_.environment = target.environment;
  record_.namespace_name = target.namespace_name;
  record_.kube_context = context;
  record_.run_id = run_id;
  record_.task = task;
  record_.manifests_digest = digest;
  record_.images = ImagesOf(manifests);
  record_.force = target.force;
  record_.started = absl::Now();
}

absl::StatusOr<int64_t> DeploymentRecorder::Finish(
    const std::vector<AppliedObject>& applied, const absl::Status& result,
    const LogFn& log, const std::function<std::string(std::string)>& mask) {
  if (runs_ == nullptr) return 0;
  record_.finished = absl::Now();
  record_.succeeded = result.ok();
  if (!result.ok()) {
    std::string why(result.message());
    if (absl::IsCancelled(result)) why = "cancelled: " + why;
    record_.reason = mask ? mask(std::move(why)) : std::move(why);
  }
  record_.objects.clear();
  for (const AppliedObject& o : applied) {
    store::DeployedObject d{o.api_version, o.kind, o.namespace_name, o.name};
    d.uid = o.uid;
    d.resource_version = o.resource_version;
    d.generation = o.generation;
    record_.objects.push_back(std::move(d));
  }
  absl::StatusOr<int64_t> id = runs_->RecordDeployment(record_);
  if (!id.ok()) {
    log(absl::StrCat("the deployment record could not be written: ",
                     id.status().message()));
    return id.status();
  }
  record_.id = *id;
  log(absl::StrCat("recorded deployment ", *id, " of environment ",
                   record_.environment, " (", record_.namespace_name, ", ",
                   result.ok() ? "succeeded" : "failed", ")"));
  return *id;
}

}  // namespace kiln::deploy
