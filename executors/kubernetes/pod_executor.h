// PodExecutor runs each task attempt as one Kubernetes pod
// (docs/kubernetes-executor.md): an init container of kiln's agent fetches
// the inputs' archives through the engine's blob API into an emptyDir, the
// task container runs argv in request.image under the agent, which uploads
// the declared outputs and writes the result as its termination message.
// The executor creates the pod (adopting one that already exists for the
// same attempt: an engine restarted after kill -9 re-attaches), streams the
// task container's log live (resumed by sinceTime after a dropped stream,
// exactly the duplicates dropped), maps the pod's end to an ExecResult,
// adopts the outputs through ArchiveAccess and deletes the pod.
// Infrastructure failures (evicted, deleted by someone else, node lost,
// image not pullable, unschedulable past pending_timeout) are INFRA_FAILED
// with the reason and the scheduler's/kubelet's message.
//
// Thread-safety: Start() may be called concurrently from any threads.
#ifndef KILN_EXECUTORS_KUBERNETES_POD_EXECUTOR_H_
#define KILN_EXECUTORS_KUBERNETES_POD_EXECUTOR_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "executors/executor.h"
#include "kiln/v1/pod.pb.h"

namespace kiln {
namespace kube {
class Client;
}  // namespace kube

struct PodExecutorOptions {
  std::string name = "kubernetes";
  std::shared_ptr<kube::Client> client;
  std::string namespace_name;
  // "registry/repo@sha256:..." (pinned): enters Platform().
  std::string agent_image;
  // host:port of the blob API the agent dials, its token, its CA (PEM,
  // empty = plain connection).
  std::string agent_server, agent_token, agent_ca_pem;
  // Names this kiln (one store) on every pod as the label
  // kiln.dev/instance, so that DeleteOrphanedPods (orphan_pods.h) never
  // touches another kiln's pods in a shared namespace. "" = no label. A
  // label value: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends.
  std::string instance;
  // Per-executor pod shape; a task's `pod:` hints are merged over it.
  v1::PodShape defaults;
  // A pod not Running within this bound fails (INFRA_FAILED) with the
  // scheduler's or kubelet's last event message.
  absl::Duration pending_timeout = absl::Minutes(5);
  // How many finished pods to keep (for `kubectl logs`); the oldest beyond
  // are deleted. 0: delete each as soon as its result is recorded.
  int keep_finished_pods = 0;
  // Used when a request leaves limits.kill_grace unset.
  absl::Duration default_kill_grace = absl::Seconds(5);
  // The timeout of a request that leaves it unset.
  absl::Duration default_timeout = absl::Hours(4);
};

// Creates the executor. InvalidArgument when the options are incomplete
// (no client, namespace or agent image; an agent image not pinned by
// digest; an instance that is not a label value) or the default pod shape
// is invalid.
absl::StatusOr<std::unique_ptr<Executor>> CreatePodExecutor(
    PodExecutorOptions options);

}  // namespace kiln

#endif  // KILN_EXECUTORS_KUBERNETES_POD_EXECUTOR_H_
