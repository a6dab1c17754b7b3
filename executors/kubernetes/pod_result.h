// From a pod object (and the agent's termination messages in it) to where
// the attempt stands and, once it has ended, its ExecResult. Pure.
#ifndef KILN_EXECUTORS_KUBERNETES_POD_RESULT_H_
#define KILN_EXECUTORS_KUBERNETES_POD_RESULT_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kiln/v1/exec.pb.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace kubernetes {

// One artifact the agent uploaded: its tree digest and archive blob.
struct AgentArtifact {
  std::string tree;
  std::string archive;
};

// The agent's result.json / fetch.json.
struct AgentReport {
  std::string status;  // EXITED, SIGNALED, TIMED_OUT, INPUTS_FAILED, ...
  int exit_code = 0;
  int signal = 0;
  std::string message;
  std::map<std::string, AgentArtifact> outputs;
  std::optional<AgentArtifact> report;
  std::vector<std::string> warnings;
};
// InvalidArgument when `json` is not a v1 report (bad JSON, unknown
// status, wrong types).
absl::StatusOr<AgentReport> ParseAgentReport(absl::string_view json);

struct PodView {
  enum class Stage {
    kPending,   // not yet running the task container (scheduling, pulling,
                // fetching inputs)
    kRunning,   // the task container runs (its log can be followed)
    kFinished,  // over: `result` holds the outcome
  };
  Stage stage = Stage::kPending;
  // When finished: the result (outputs not yet adopted: see `agent`).
  v1::ExecResult result;
  // When finished and the task container wrote a valid result.json.
  std::optional<AgentReport> agent;
  // While pending: the latest reason/message the pod itself shows (a
  // waiting container's or an unschedulable condition's), for messages.
  std::string pending_reason;
  // The task container has started (runs or ran): it has a log to read,
  // also when the pod ended (evicted, say) before it was seen running.
  bool task_started = false;
};

// Where the pod stands. An image that cannot be pulled (ImagePullBackOff,
// InvalidImageName, ErrImageNeverPull) ends the attempt as INFRA_FAILED;
// so does eviction or a lost node. DeadlineExceeded is TIMED_OUT, an
// OOMKilled task container OUT_OF_MEMORY, a failed init container the
// fetch report's INPUTS_FAILED/SETUP_FAILED.
PodView ViewPod(const nlohmann::json& pod);

// The message of the newest event of `events` (a List of core/v1 Events)
// about the pod, "REASON: message", or "" when there is none.
std::string LatestEventMessage(const nlohmann::json& events);

}  // namespace kubernetes
}  // namespace kiln

#endif  // KILN_EXECUTORS_KUBERNETES_POD_RESULT_H_
