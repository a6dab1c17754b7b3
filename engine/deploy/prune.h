// Pruning: after a successful apply, the objects an earlier deploy of the
// same environment applied and this one did not (dropped from the
// manifests) are deleted from the environment's namespace.
//
// What may be deleted, all of: a namespaced object in target.namespace_name
// (never a cluster-scoped one, so never a Namespace); of a kind this deploy
// applied or of a fixed list of common namespaced kinds (PrunedKinds());
// labelled kiln.dev/environment=ENV and app.kubernetes.io/managed-by=kiln; with
// server-side-apply fields owned by manager "kiln"; not owned by another
// object (ownerReferences: its owner's garbage collection decides); not
// already being deleted. Everything else in the namespace (what others
// made, unlabelled objects, a permanent environment's other contents) is
// never touched.
//
// Thread-compatible: one call per deploy attempt.
#ifndef KILN_ENGINE_DEPLOY_PRUNE_H_
#define KILN_ENGINE_DEPLOY_PRUNE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/deploy/deployer.h"
#include "kube/client.h"

namespace kiln::deploy {

// A deploy deletes at most this many objects; more is refused before any
// deletion (a label mix-up, not a manifests change).
inline constexpr size_t kMaxPrunedObjects = 500;

struct PrunedKind {
  const char* api_version;
  const char* kind;
};
// Namespaced kinds looked at even when this deploy applies none of them
// (a kind dropped from the manifests entirely). Data-holding kinds
// (PersistentVolumeClaim) are pruned only when the deploy still applies
// objects of that kind.
const std::vector<PrunedKind>& PrunedKinds();

// Deletes what `applied` (Deployer::Apply's result) no longer holds, as
// described above; logs one line per deleted object. Returns the deleted
// objects. Nothing is deleted when listing fails or the candidates exceed
// kMaxPrunedObjects; a failed deletion stops and is returned (the ones
// before it stay deleted). InvalidArgument when target.environment is not
// a label value (no selector could name it exactly).
absl::StatusOr<std::vector<AppliedObject>> Prune(
    kube::Client* client, const DeployTarget& target,
    const std::vector<AppliedObject>& applied, const LogFn& log);

}  // namespace kiln::deploy

#endif  // KILN_ENGINE_DEPLOY_PRUNE_H_
