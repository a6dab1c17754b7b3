// DeleteOrphanedPods: at the start of `kiln run` and `kiln serve`, removes
// the pods this kiln made (labels app.kubernetes.io/managed-by=kiln and
// kiln.dev/instance=<instance>) for runs that are no longer running: the
// run store says the run finished or does not know it. Pods of a live run
// (queued or running, here or in another process on the same store, or
// unfinished and waiting to be resumed) are left alone: the executor
// re-attaches them when the run's task starts its next attempt.
//
// A pod without the kiln.dev/run-id annotation, or already terminating, is
// left alone. Pods of other kilns (another instance value, or none) are
// never listed.
#ifndef KILN_EXECUTORS_KUBERNETES_ORPHAN_PODS_H_
#define KILN_EXECUTORS_KUBERNETES_ORPHAN_PODS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln {
namespace kube {
class Client;
}  // namespace kube

struct OrphanSweep {
  std::vector<std::string> deleted;  // pod names
  std::vector<std::string> kept;     // pods of live runs
};

// Whether the run with this id is still running (true) or finished / absent
// (false); an error stops the sweep (nothing is deleted on a doubt).
using RunIsLive = std::function<absl::StatusOr<bool>(const std::string&)>;

// Lists and deletes as above (grace 0: the run is over, its pod's work is
// no longer wanted). An API error (list or delete, except NotFound) or an
// error of `run_is_live` is returned; pods deleted before it stay deleted.
// InvalidArgument when `instance` is empty (every kiln's pods would match).
absl::StatusOr<OrphanSweep> DeleteOrphanedPods(kube::Client& client,
                                               const std::string& ns,
                                               const std::string& instance,
                                               const RunIsLive& run_is_live);

}  // namespace kiln

#endif  // KILN_EXECUTORS_KUBERNETES_ORPHAN_PODS_H_
