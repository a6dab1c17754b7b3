// Deterministic names and labels of a task attempt's pod (the same request
// always gets the same pod, which is how a restarted engine finds it).
#ifndef KILN_EXECUTORS_KUBERNETES_POD_NAMES_H_
#define KILN_EXECUTORS_KUBERNETES_POD_NAMES_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/string_view.h"

namespace kiln {
namespace kubernetes {

// "kiln-<run>-<task>-<attempt>" as a kube::DnsLabel.
std::string PodName(absl::string_view run_id, absl::string_view task,
                    uint32_t attempt);
// The token Secret of one executor instance's agents in its namespace.
std::string AgentSecretName(absl::string_view executor_name);

inline constexpr char kLabelRun[] = "kiln.dev/run";
inline constexpr char kLabelTask[] = "kiln.dev/task";
inline constexpr char kLabelAttempt[] = "kiln.dev/attempt";
inline constexpr char kLabelManagedBy[] = "app.kubernetes.io/managed-by";
// Which kiln (one store) made the pod: PodExecutorOptions.instance. The
// orphan sweep (orphan_pods.h) deletes only pods carrying its own value.
inline constexpr char kLabelInstance[] = "kiln.dev/instance";
inline constexpr char kAnnotationRunId[] = "kiln.dev/run-id";
inline constexpr char kAnnotationTaskName[] = "kiln.dev/task-name";

// The labels kiln puts on an attempt's pod (values DnsLabel'ed; the exact
// run id and task name are annotations).
std::map<std::string, std::string> PodLabels(absl::string_view run_id,
                                             absl::string_view task,
                                             uint32_t attempt);
std::map<std::string, std::string> PodAnnotations(absl::string_view run_id,
                                                  absl::string_view task);
// Label selector of every pod of a run ("kiln.dev/run=...,app...=kiln").
std::string RunSelector(absl::string_view run_id);
// Label selector of every pod kiln manages.
std::string ManagedSelector();

}  // namespace kubernetes
}  // namespace kiln

#endif  // KILN_EXECUTORS_KUBERNETES_POD_NAMES_H_
