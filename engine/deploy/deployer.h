// Applying manifests to an environment's namespace with server-side apply
// (field manager "kiln") and waiting for the workloads' rollouts. Every
// line logged names objects and API messages only (never credentials).
// Thread-compatible: one Deployer per deploy attempt.
#ifndef KILN_ENGINE_DEPLOY_DEPLOYER_H_
#define KILN_ENGINE_DEPLOY_DEPLOYER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/deploy/manifests.h"
#include "kube/client.h"
#include "kube/resources.h"

namespace kiln::deploy {

inline constexpr char kFieldManager[] = "kiln";

struct DeployTarget {
  std::string environment;
  std::string namespace_name;
  // Create the namespace when missing (preview environments); otherwise a
  // missing namespace is FailedPrecondition.
  bool create_namespace = false;
  // When set, called instead of the check above, once everything is placed
  // and before the first write: it ensures the namespace (an environment's
  // lifecycle, engine/environments) and its error fails the deploy.
  std::function<absl::Status()> ensure_namespace;
  bool force = false;  // take over fields other managers own
  bool wait = false;
  absl::Duration timeout = absl::Minutes(5);
  absl::Duration poll = absl::Milliseconds(250);
};

struct AppliedObject {
  std::string api_version, kind, name, namespace_name;  // ns "" = cluster
  std::string path;                                     // the API path
  // The live object's identity and versions as the apply (and, for a
  // waited-for workload, the wait) left it; what a later deploy compares
  // to tell drift (engine/deploy/drift.h). 0: the kind has no generation.
  std::string uid, resource_version;
  int64_t generation = 0;
};

// Copies metadata.uid, resourceVersion and generation of `live` into *o.
void NoteLiveState(const nlohmann::json& live, AppliedObject* o);

using LogFn = std::function<void(const std::string& line)>;

class Deployer {
 public:
  // `cancelled` is polled while waiting (may be null).
  Deployer(kube::Client* client, LogFn log, std::function<bool()> cancelled)
      : client_(client),
        mapper_(client),
        log_(std::move(log)),
        cancelled_(std::move(cancelled)) {}

  // Orders, places and labels the manifests, then applies each. Stops at
  // the first failure: a conflict with another field manager is Aborted
  // and its message names the manager and the fields (force: true takes
  // them over). On success: the applied objects in apply order.
  absl::StatusOr<std::vector<AppliedObject>> Apply(
      std::vector<Manifest> manifests, const DeployTarget& target);
  // The objects the last Apply wrote, in order: all of them after a
  // success, those before the failing one after a failure. Their live
  // state is the apply's answer, updated by Wait for each workload ready.
  const std::vector<AppliedObject>& applied() const { return applied_; }

  // Waits for every workload among `objects` (Deployment, StatefulSet,
  // DaemonSet rollouts; Jobs' completion) within target.timeout. A failed
  // rollout (ProgressDeadlineExceeded, a Failed Job) is FailedPrecondition,
  // the timeout DeadlineExceeded, cancellation Cancelled; before returning
  // a failure it logs what a person would dig out with kubectl: the
  // object's conditions, the latest Warning events of it and its pods, and
  // the last log lines of a failing pod.
  absl::Status Wait(const std::vector<AppliedObject>& objects,
                    const DeployTarget& target);

 private:
  absl::Status EnsureNamespace(const DeployTarget& target);
  void Diagnose(const AppliedObject& obj, const nlohmann::json& live);

  kube::Client* const client_;
  kube::ResourceMapper mapper_;
  const LogFn log_;
  const std::function<bool()> cancelled_;
  std::vector<AppliedObject> applied_;
};

// The rollout state of a live workload: done, failed (with why), or still
// progressing (with what it waits for). Exposed for tests.
struct RolloutState {
  bool done = false;
  bool failed = false;
  std::string detail;
};
RolloutState CheckRollout(const nlohmann::json& live);

}  // namespace kiln::deploy

#endif  // KILN_ENGINE_DEPLOY_DEPLOYER_H_
