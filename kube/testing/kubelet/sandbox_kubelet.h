// kiln::kube::testing::SandboxKubelet (testonly): a simulated kubelet for
// the API server double that really runs each pod created on it.
//
// Hooked into a FakeApiServer (SetKubelet), for every new pod it:
//   - binds it (spec.nodeName) and reports phase Pending, then Running once
//     its first regular container starts, Succeeded/Failed at the end;
//   - makes each emptyDir volume a fresh host directory (other volume kinds:
//     a Warning FailedMount event, the pod stays Pending as on a node);
//   - pulls each container's image through an ImageAccess (pinned by
//     digest; a failure is the waiting reason ErrImagePull, then
//     ImagePullBackOff, with Warning events, retried with backoff);
//   - resolves env (value, valueFrom.secretKeyRef from the double's
//     Secrets; a missing one is CreateContainerConfigError, retried);
//   - runs the init containers in order, then the regular containers, each
//     with the local sandbox in image mode: the host's network (agents dial
//     127.0.0.1), volumes bound read-write at their mountPaths, workingDir
//     (created in its volume when missing, as runtimes do), the command +
//     args as argv (image entrypoints are not modelled: a container without
//     a command is CreateContainerError);
//   - serves stdout and stderr as the container log (AppendLog/EndLog);
//   - reports state.terminated {exitCode, reason Completed/Error/OOMKilled/
//     StartError, message}: the file at terminationMessagePath (which must
//     lie in one of the container's emptyDir mounts; read beneath it
//     without following a symlink; at most 4096 bytes), or with
//     FallbackToLogsOnError the log's tail;
//   - enforces activeDeadlineSeconds (SIGTERM, grace
//     terminationGracePeriodSeconds, SIGKILL; phase Failed, reason
//     DeadlineExceeded) and graceful deletion (SIGTERM, the deletion's grace,
//     SIGKILL, then FinalizePodDeletion); a pod removed at once (grace 0) has
//     its containers killed.
// A pod's directories are removed when it ends. Thread-safe; the destructor
// kills every container and joins every thread.
#ifndef KILN_KUBE_TESTING_KUBELET_SANDBOX_KUBELET_H_
#define KILN_KUBE_TESTING_KUBELET_SANDBOX_KUBELET_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "executors/image_access.h"
#include "kube/testing/fake_api_server.h"

namespace kiln {
namespace kube {
namespace testing {

struct SandboxKubeletOptions {
  // Where pods' volumes and scratch directories are made (absolute; created
  // if missing; trusted).
  std::string root;
  // Pulls and unpacks container images; must outlive the kubelet.
  ImageAccess* images = nullptr;
  std::string node_name = "kiln-sandbox-node";
  // Backoff of image pulls and secret lookups: doubling from initial.
  absl::Duration retry_initial = absl::Seconds(1);
  absl::Duration retry_max = absl::Seconds(10);
  // kiln-sandbox-init (empty: next to the executable or in its runfiles).
  std::string init_binary;
};

class SandboxKubelet {
 public:
  // Hooks the kubelet into `server` (which must outlive it).
  // InvalidArgument without images or a root; FailedPrecondition when the
  // local sandbox cannot run (no kiln-sandbox-init).
  static absl::StatusOr<std::unique_ptr<SandboxKubelet>> Start(
      FakeApiServer* server, SandboxKubeletOptions options);
  ~SandboxKubelet();
  SandboxKubelet(const SandboxKubelet&) = delete;
  SandboxKubelet& operator=(const SandboxKubelet&) = delete;

  // Pods this kubelet has taken (created while it was hooked).
  int pods_started() const;

  class Core;

 private:
  explicit SandboxKubelet(FakeApiServer* server, std::shared_ptr<Core> core);
  FakeApiServer* const server_;
  std::shared_ptr<Core> core_;
};

}  // namespace testing
}  // namespace kube
}  // namespace kiln

#endif  // KILN_KUBE_TESTING_KUBELET_SANDBOX_KUBELET_H_
