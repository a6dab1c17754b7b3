// The deploy memo (docs/deploy.md, "Memoization"): a deploy is skipped only
// when the cluster still holds exactly what the latest deployment of the
// same (environment, namespace, kube context) recorded, so that re-running
// an unchanged pipeline does not re-apply, re-prune or re-wait.
//
// "Unchanged" needs all of: that deployment succeeded and was a deploy (not
// a rollback); the same manifests digest, images, force flag and set of
// objects; the namespace still exists and is not being deleted; every
// recorded object still exists (listed with kiln's environment label, one
// LIST per kind) with the same uid, the same metadata.generation when it
// has one (else the same resourceVersion), kiln's labels and the manifest's
// own labels and annotations, and no deletion pending; a workload the
// deploy waits for is still rolled out (CheckRollout on the listed object);
// no other kiln-applied object of a listed kind that a deploy would prune.
// Anything else, including any error while checking, means "apply": the
// check can only skip a deploy, never fail one. Thread-compatible.
#ifndef KILN_ENGINE_DEPLOY_DRIFT_H_
#define KILN_ENGINE_DEPLOY_DRIFT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/optional.h"
#include "engine/deploy/deployer.h"
#include "engine/deploy/manifests.h"
#include "engine/store/run_store.h"
#include "kube/client.h"
#include "nlohmann/json.hpp"

namespace kiln::deploy {

// What this deploy would apply, as the record compares it.
struct DeployIntent {
  std::string environment, namespace_name, kube_context;
  std::string manifests_digest;
  bool force = false;
  bool wait = false;
};

// Why `last` cannot stand for applying `manifests` as `now` says, without
// looking at the cluster; "" when it can.
std::string RecordMismatch(const store::DeploymentRecord& last,
                           const DeployIntent& now,
                           const std::vector<Manifest>& manifests);

// Why the live object differs from `recorded` (`live` null: not found);
// "" when it matches. `manifest` (may be null) gives the labels and
// annotations kiln applied; `wait`: a workload must still be rolled out.
// The reason starts with "Kind/name: ".
std::string ObjectDrift(const store::DeployedObject& recorded,
                        const nlohmann::json* live, const Manifest* manifest,
                        const std::string& environment, bool wait);

struct Unchanged {
  int64_t deployment_id = 0;
  std::string run_id;
  size_t objects = 0;
  // "unchanged since deployment N (run R): K objects match, not re-applied"
  std::string message;
};

// The check, before any write: the latest deployment of (target's
// environment and namespace, `context`) in `runs`, compared with the live
// objects read through `client`. Logs on `log` why the deploy goes ahead
// (the first drifted object and why, or the error) and returns nullopt;
// or, when nothing drifted, runs target.ensure_namespace (a declared
// environment's refresh) and returns the deployment that still stands.
absl::optional<Unchanged> FindUnchanged(
    kube::Client* client, store::RunStore* runs, const DeployTarget& target,
    const std::string& context, const std::string& manifests_digest,
    const std::vector<Manifest>& manifests, const LogFn& log);

}  // namespace kiln::deploy

#endif  // KILN_ENGINE_DEPLOY_DRIFT_H_
