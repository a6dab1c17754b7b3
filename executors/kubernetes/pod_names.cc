#include "executors/kubernetes/pod_names.h"

#include "absl/strings/str_cat.h"
#include "kube/names.h"

namespace kiln {
namespace kubernetes {

using kube::DnsLabel;
std::string PodName(absl::string_view run_id, absl::string_view task,
                    uint32_t attempt) {
  return DnsLabel(absl::StrCat("kiln-", run_id, "-", task, "-", attempt));
}

std::string AgentSecretName(absl::string_view executor_name) {
  return DnsLabel(absl::StrCat("kiln-agent-", executor_name));
}

std::map<std::string, std::string> PodLabels(absl::string_view run_id,
                                             absl::string_view task,
                                             uint32_t attempt) {
  return {{kLabelRun, DnsLabel(run_id)},
          {kLabelTask, DnsLabel(task)},
          {kLabelAttempt, absl::StrCat(attempt)},
          {kLabelManagedBy, "kiln"}};
}

std::map<std::string, std::string> PodAnnotations(absl::string_view run_id,
                                                  absl::string_view task) {
  return {{kAnnotationRunId, std::string(run_id)},
          {kAnnotationTaskName, std::string(task)}};
}

std::string RunSelector(absl::string_view run_id) {
  return absl::StrCat(kLabelRun, "=", DnsLabel(run_id), ",", kLabelManagedBy,
                      "=kiln");
}

std::string ManagedSelector() { return absl::StrCat(kLabelManagedBy, "=kiln"); }

}  // namespace kubernetes
}  // namespace kiln
