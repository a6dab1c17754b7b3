// The lifecycle of environment namespaces in a cluster (docs/environments.md):
// created with kiln's labels on first deploy, a preview's expiry refreshed on
// every deploy, destroyed (waiting until the namespace is gone) when its
// branch goes away or it expires. Every deletion passes the PermanentGuard.
//
// Thread-compatible: the functions share nothing but the Client (which is
// thread-safe). Every wait is bounded (LifecycleOptions).
#ifndef KILN_ENGINE_ENVIRONMENTS_LIFECYCLE_H_
#define KILN_ENGINE_ENVIRONMENTS_LIFECYCLE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/environments/guard.h"
#include "engine/environments/target.h"
#include "engine/pipeline/substitute.h"
#include "kiln/v1/pipeline.pb.h"
#include "kube/client.h"

namespace kiln::environments {

struct LifecycleOptions {
  // Destroy waits this long for a Terminating namespace to disappear.
  absl::Duration destroy_timeout = absl::Minutes(5);
  absl::Duration poll_interval = absl::Milliseconds(250);
  // The clock (tests move it to expire previews).
  absl::Time now = absl::InfinitePast();  // InfinitePast: absl::Now()
  // Polled while Destroy waits (null: never): true stops the wait with
  // Cancelled (the DELETE, once sent, stands). For a server shutting down.
  std::function<bool()> cancelled;
};

// Creates `target`'s namespace with kiln's labels if absent; for a preview
// sets (or refreshes) the expiry annotation to now + ttl. A preview refuses
// (PermissionDenied) a protected namespace and a namespace kiln did not
// create as a preview of this app; a permanent environment's namespace is
// labelled but otherwise left as found. Unavailable while the namespace is
// Terminating. Returns the namespace as stored.
absl::StatusOr<nlohmann::json> EnsureNamespace(kube::Client& client,
                                               const Target& target,
                                               const PermanentGuard& guard,
                                               const LifecycleOptions& options);

// What the deploy kind calls before applying: resolves the task's
// (substituted) `environment` among the pipeline's declarations and ensures
// its namespace (EnsureNamespace). A permanent environment's namespace is
// never created by a deploy: FailedPrecondition when it does not exist.
// The Target says where to apply.
absl::StatusOr<Target> PrepareDeploy(
    kube::Client& client, const v1::Pipeline& pipeline,
    const std::string& environment,
    const pipeline::SubstitutionContext& context,
    const LifecycleOptions& options = {});

enum class DestroyResult { kDeleted, kAbsent };

// Deletes a preview's namespace and waits until it is gone. A permanent
// target is refused (PermissionDenied) before any request; the namespace
// must pass guard.CheckDeletable. kAbsent when there was nothing to delete.
// DeadlineExceeded when still present after options.destroy_timeout.
absl::StatusOr<DestroyResult> Destroy(kube::Client& client,
                                      const Target& target,
                                      const PermanentGuard& guard,
                                      const LifecycleOptions& options);

struct GcEntry {
  std::string namespace_name;
  std::string environment;
  std::string branch;
  enum Action { kDeleted, kWouldDelete, kKept, kFailed } action = kKept;
  std::string reason;  // why kept, or the error
};

// Destroys every expired preview namespace of `app` (found by kiln's labels;
// its expiry annotation in the past). Keeps protected namespaces, unexpired
// ones, ones without a readable expiry and ones already Terminating. With
// dry_run nothing is deleted. An entry per namespace seen; an error only
// when the list itself fails (a failed delete is an entry kFailed).
absl::StatusOr<std::vector<GcEntry>> Gc(kube::Client& client,
                                        const std::string& app,
                                        const PermanentGuard& guard,
                                        bool dry_run,
                                        const LifecycleOptions& options);

// The teardown of a branch (a pull request closed, a branch deleted): every
// preview environment of `pipeline`, resolved for `trigger` (its branch;
// params at their defaults), is destroyed. Permanent environments are never
// touched. `client_for` gives the client of a kube context ("" = the
// default). One line per preview ("destroyed NS", "absent NS"); the first
// error stops nothing: all are tried, and the errors are joined.
// FailedPrecondition when the pipeline declares no environments.
using ClientForContext =
    std::function<absl::StatusOr<kube::Client*>(const std::string& context)>;
absl::StatusOr<std::vector<std::string>> DestroyBranchPreviews(
    const ClientForContext& client_for, const v1::Pipeline& pipeline,
    const v1::Trigger& trigger, const LifecycleOptions& options);

}  // namespace kiln::environments

#endif  // KILN_ENGINE_ENVIRONMENTS_LIFECYCLE_H_
