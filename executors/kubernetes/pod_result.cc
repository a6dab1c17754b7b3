#include "executors/kubernetes/pod_result.h"

#include "absl/strings/str_cat.h"
#include "executors/kubernetes/pod_manifest.h"

namespace kiln {
namespace kubernetes {
namespace {

using json = nlohmann::json;

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// The status of container `name` among `statuses`, or null.
const json* ContainerStatus(const json& status, const char* list,
                            const std::string& name) {
  auto it = status.find(list);
  if (it == status.end() || !it->is_array()) return nullptr;
  for (const json& c : *it) {
    if (c.is_object() && Str(c, "name") == name) return &c;
  }
  return nullptr;
}

const json* State(const json* container, const char* which) {
  if (container == nullptr) return nullptr;
  auto state = container->find("state");
  if (state == container->end() || !state->is_object()) return nullptr;
  auto it = state->find(which);
  if (it == state->end() || !it->is_object()) return nullptr;
  return &*it;
}

int ExitCodeOf(const json& terminated) {
  auto it = terminated.find("exitCode");
  return it != terminated.end() && it->is_number_integer() ? it->get<int>()
                                                           : -1;
}

bool IsPullFailure(const std::string& reason) {
  return reason == "ImagePullBackOff" || reason == "InvalidImageName" ||
         reason == "ErrImageNeverPull";
}

PodView Finished(v1::ExecStatus status, std::string message) {
  PodView v;
  v.stage = PodView::Stage::kFinished;
  v.result.set_status(status);
  v.result.set_message(std::move(message));
  return v;
}

v1::ExecStatus StatusFromAgent(const std::string& s) {
  if (s == "EXITED") return v1::EXITED;
  if (s == "SIGNALED") return v1::SIGNALED;
  if (s == "TIMED_OUT") return v1::TIMED_OUT;
  if (s == "INPUTS_FAILED") return v1::INPUTS_FAILED;
  if (s == "OUTPUTS_FAILED") return v1::OUTPUTS_FAILED;
  if (s == "SETUP_FAILED") return v1::SETUP_FAILED;
  return v1::EXEC_STATUS_UNSPECIFIED;
}

absl::StatusOr<AgentArtifact> ParseArtifact(const json& j,
                                            const std::string& what) {
  if (!j.is_object() || !j.contains("tree") || !j["tree"].is_string() ||
      !j.contains("archive") || !j["archive"].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent result: ", what, " needs string tree and archive"));
  }
  return AgentArtifact{j["tree"].get<std::string>(),
                       j["archive"].get<std::string>()};
}

}  // namespace

absl::StatusOr<AgentReport> ParseAgentReport(absl::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("agent result is not a JSON object");
  }
  if (!j.contains("v") || j["v"] != 1) {
    return absl::InvalidArgumentError("agent result: version is not 1");
  }
  AgentReport r;
  r.status = Str(j, "status");
  if (StatusFromAgent(r.status) == v1::EXEC_STATUS_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent result: unknown status '", r.status, "'"));
  }
  for (const char* key : {"exit_code", "signal"}) {
    if (j.contains(key) && !j[key].is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat("agent result: ", key, " is not an integer"));
    }
  }
  r.exit_code = j.value("exit_code", 0);
  r.signal = j.value("signal", 0);
  r.message = Str(j, "message");
  if (j.contains("outputs")) {
    if (!j["outputs"].is_object()) {
      return absl::InvalidArgumentError("agent result: outputs is not a map");
    }
    for (const auto& [name, value] : j["outputs"].items()) {
      absl::StatusOr<AgentArtifact> a =
          ParseArtifact(value, absl::StrCat("output '", name, "'"));
      if (!a.ok()) return a.status();
      r.outputs[name] = *a;
    }
  }
  if (j.contains("report") && !j["report"].is_null()) {
    absl::StatusOr<AgentArtifact> a = ParseArtifact(j["report"], "report");
    if (!a.ok()) return a.status();
    r.report = *a;
  }
  if (j.contains("warnings")) {
    if (!j["warnings"].is_array()) {
      return absl::InvalidArgumentError("agent result: warnings is not a list");
    }
    for (const json& w : j["warnings"]) {
      if (w.is_string()) r.warnings.push_back(w.get<std::string>());
    }
  }
  return r;
}

namespace {

PodView ViewPodStage(const json& pod) {
  static const json kEmpty = json::object();
  const json& status = pod.contains("status") && pod["status"].is_object()
                           ? pod["status"]
                           : kEmpty;
  const std::string phase = Str(status, "phase");
  const std::string reason = Str(status, "reason");
  const std::string message = Str(status, "message");

  // Pod-level endings that are not the task's.
  if (reason == "Evicted") {
    return Finished(v1::INFRA_FAILED, absl::StrCat("pod evicted: ", message));
  }
  if (reason == "NodeLost" || reason == "NodeShutdown" ||
      reason == "Terminated" || reason == "UnexpectedAdmissionError" ||
      (phase == "Failed" && reason == "Shutdown")) {
    return Finished(v1::INFRA_FAILED,
                    absl::StrCat("pod failed (", reason, "): ", message));
  }
  if (reason == "DeadlineExceeded") {
    return Finished(v1::TIMED_OUT,
                    absl::StrCat("pod deadline exceeded: ", message));
  }
  if (phase == "Unknown") {
    return Finished(v1::INFRA_FAILED,
                    absl::StrCat("pod state unknown (node lost?): ", message));
  }

  // The init container: the agent fetching the inputs.
  const json* fetch =
      ContainerStatus(status, "initContainerStatuses", kFetchContainer);
  if (const json* t = State(fetch, "terminated"); t && ExitCodeOf(*t) != 0) {
    absl::StatusOr<AgentReport> report = ParseAgentReport(Str(*t, "message"));
    if (report.ok() && (report->status == "INPUTS_FAILED" ||
                        report->status == "SETUP_FAILED")) {
      return Finished(StatusFromAgent(report->status), report->message);
    }
    std::string why = Str(*t, "reason");
    return Finished(
        v1::INPUTS_FAILED,
        absl::StrCat("fetching the inputs failed: ", kFetchContainer,
                     " exited ", ExitCodeOf(*t),
                     why.empty() ? "" : absl::StrCat(" (", why, ")")));
  }
  const json* task = ContainerStatus(status, "containerStatuses", "task");
  for (const json* c : {fetch, task}) {
    if (const json* w = State(c, "waiting")) {
      std::string why = Str(*w, "reason");
      if (IsPullFailure(why)) {
        return Finished(
            v1::INFRA_FAILED,
            absl::StrCat("image '", Str(*c, "image"), "' of container ",
                         Str(*c, "name"), " cannot be pulled: ", why, ": ",
                         Str(*w, "message")));
      }
      if (why == "CreateContainerConfigError" ||
          why == "CreateContainerError") {
        return Finished(v1::INFRA_FAILED,
                        absl::StrCat("container ", Str(*c, "name"),
                                     " cannot be created: ", why, ": ",
                                     Str(*w, "message")));
      }
    }
  }

  if (const json* t = State(task, "terminated")) {
    int exit_code = ExitCodeOf(*t);
    std::string why = Str(*t, "reason");
    if (why == "OOMKilled") {
      PodView v = Finished(v1::OUT_OF_MEMORY,
                           "the task container was killed at its memory limit");
      v.result.set_exit_code(exit_code);
      return v;
    }
    absl::StatusOr<AgentReport> report = ParseAgentReport(Str(*t, "message"));
    if (!report.ok()) {
      PodView v = Finished(
          v1::SETUP_FAILED,
          absl::StrCat(
              "the task container exited ", exit_code,
              why.empty() ? "" : absl::StrCat(" (", why, ")"),
              " without a valid agent result: ", report.status().message()));
      v.result.set_exit_code(exit_code);
      return v;
    }
    PodView v = Finished(StatusFromAgent(report->status), report->message);
    v.result.set_exit_code(report->exit_code);
    v.result.set_signal(report->signal);
    for (const auto& w : report->warnings) v.result.add_warnings(w);
    v.agent = std::move(*report);
    return v;
  }
  if (phase == "Failed" || phase == "Succeeded") {
    return Finished(
        v1::INFRA_FAILED,
        absl::StrCat("pod ", phase, " without a task result",
                     reason.empty() ? "" : absl::StrCat(" (", reason, ")"),
                     message.empty() ? "" : absl::StrCat(": ", message)));
  }

  PodView v;
  if (State(task, "running") != nullptr) {
    v.stage = PodView::Stage::kRunning;
    return v;
  }
  for (const json* c : {fetch, task}) {
    if (const json* w = State(c, "waiting")) {
      std::string why = Str(*w, "reason");
      if (!why.empty()) {
        v.pending_reason = absl::StrCat(Str(*c, "name"), ": ", why);
        std::string m = Str(*w, "message");
        if (!m.empty()) absl::StrAppend(&v.pending_reason, ": ", m);
      }
    }
  }
  if (v.pending_reason.empty() && status.contains("conditions") &&
      status["conditions"].is_array()) {
    for (const json& c : status["conditions"]) {
      if (c.is_object() && Str(c, "type") == "PodScheduled" &&
          Str(c, "status") == "False") {
        v.pending_reason =
            absl::StrCat(Str(c, "reason"), ": ", Str(c, "message"));
      }
    }
  }
  return v;
}

}  // namespace

PodView ViewPod(const json& pod) {
  PodView view = ViewPodStage(pod);
  static const json kEmpty = json::object();
  const json& status = pod.contains("status") && pod["status"].is_object()
                           ? pod["status"]
                           : kEmpty;
  const json* task = ContainerStatus(status, "containerStatuses", "task");
  view.task_started =
      State(task, "running") != nullptr || State(task, "terminated") != nullptr;
  return view;
}

std::string LatestEventMessage(const json& events) {
  if (!events.is_object() || !events.contains("items") ||
      !events["items"].is_array()) {
    return "";
  }
  const json* latest = nullptr;
  std::string latest_time;
  for (const json& e : events["items"]) {
    if (!e.is_object()) continue;
    std::string t = Str(e, "lastTimestamp");
    if (t.empty()) t = Str(e, "eventTime");
    if (t.empty() && e.contains("metadata") && e["metadata"].is_object())
      t = Str(e["metadata"], "creationTimestamp");
    // RFC 3339 in UTC compares as text; ties keep the later item.
    if (latest == nullptr || t >= latest_time) {
      latest = &e;
      latest_time = t;
    }
  }
  if (latest == nullptr) return "";
  return absl::StrCat(Str(*latest, "reason"), ": ", Str(*latest, "message"));
}

}  // namespace kubernetes
}  // namespace kiln
