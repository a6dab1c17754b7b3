// Rendered Kubernetes manifests as a deploy applies them: parsed from a
// (hostile) YAML stream with the hardened parser, ordered for apply, placed
// in the environment's namespace and labelled with it. Thread-safe (pure).
#ifndef KILN_ENGINE_DEPLOY_MANIFESTS_H_
#define KILN_ENGINE_DEPLOY_MANIFESTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace kiln::deploy {

// The label every object a deploy applies carries: its environment.
inline constexpr char kEnvironmentLabel[] = "kiln.dev/environment";
inline constexpr char kManagedByLabel[] = "app.kubernetes.io/managed-by";

struct Manifest {
  nlohmann::json object;
  std::string api_version, kind, name;
  std::string source;  // "FILE#N" (the document), for errors
};

// Every document of `text` (empty ones dropped; a kind List is
// flattened). Each needs apiVersion, kind and metadata.name (a
// generateName cannot be applied). InvalidArgument "FILE:LINE:COL: ..."
// or naming the document; ResourceExhausted over the parser's limits.
absl::StatusOr<std::vector<Manifest>> ParseManifests(
    absl::string_view text, absl::string_view filename);

// Apply order: Namespace, CustomResourceDefinition, ServiceAccount and
// RBAC, ConfigMap and Secret, Service, workloads (Deployment, StatefulSet,
// DaemonSet, ReplicaSet, Job, CronJob, Pod), then everything else; stable
// within a rank.
int ApplyRank(const std::string& kind);
void OrderForApply(std::vector<Manifest>* manifests);

// Places a namespaced object in `ns` (one naming another namespace is
// FailedPrecondition, naming both) and adds the environment and
// managed-by labels (to the object, and to a workload's pod template).
absl::Status PrepareNamespaced(Manifest* m, const std::string& ns,
                               const std::string& environment);
// The same labels for a cluster-scoped object. A Namespace other than the
// environment's own is FailedPrecondition.
absl::Status PrepareClusterScoped(Manifest* m, const std::string& ns,
                                  const std::string& environment);

// The pod spec of a Pod, of a workload's template, or of a CronJob's job
// template; nullptr for other objects (or a malformed one).
const nlohmann::json* PodSpecOf(const nlohmann::json& object);
nlohmann::json* MutablePodSpecOf(nlohmann::json* object);

// The lists of a pod spec whose entries name an `image`.
inline constexpr const char* kContainerLists[] = {
    "initContainers", "containers", "ephemeralContainers"};

// Container, init- and ephemeral-container images named by the manifests'
// pod specs (PodSpecOf), sorted, unique.
std::vector<std::string> ImagesOf(const std::vector<Manifest>& manifests);

// True for kinds a deploy waits for (Deployment, StatefulSet, DaemonSet,
// Job).
bool IsWorkload(const std::string& kind);

}  // namespace kiln::deploy

#endif  // KILN_ENGINE_DEPLOY_MANIFESTS_H_
