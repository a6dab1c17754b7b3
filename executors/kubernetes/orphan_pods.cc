#include "executors/kubernetes/orphan_pods.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "executors/kubernetes/pod_names.h"
#include "kube/client.h"
#include "kube/names.h"

namespace kiln {

using json = nlohmann::json;

absl::StatusOr<OrphanSweep> DeleteOrphanedPods(kube::Client& client,
                                               const std::string& ns,
                                               const std::string& instance,
                                               const RunIsLive& run_is_live) {
  if (instance.empty()) {
    return absl::InvalidArgumentError(
        "orphan sweep: no instance label (it would match every kiln's pods)");
  }
  kube::ListOptions options;
  options.label_selector =
      absl::StrCat(kubernetes::kLabelManagedBy, "=kiln,",
                   kubernetes::kLabelInstance, "=", instance);
  absl::StatusOr<json> pods = client.List(kube::PodsPath(ns), options);
  if (!pods.ok()) return pods.status();
  OrphanSweep sweep;
  // One question per run, however many pods it has.
  std::map<std::string, bool> live;
  for (const json& pod : pods->value("items", json::array())) {
    const json metadata = pod.value("metadata", json::object());
    const std::string name = metadata.value("name", "");
    const json annotations = metadata.value("annotations", json::object());
    if (name.empty() || !annotations.is_object() ||
        !annotations.contains(kubernetes::kAnnotationRunId) ||
        !annotations[kubernetes::kAnnotationRunId].is_string()) {
      continue;
    }
    if (metadata.contains("deletionTimestamp") &&
        !metadata["deletionTimestamp"].is_null()) {
      continue;
    }
    const std::string run_id =
        annotations[kubernetes::kAnnotationRunId].get<std::string>();
    auto it = live.find(run_id);
    if (it == live.end()) {
      absl::StatusOr<bool> is_live = run_is_live(run_id);
      if (!is_live.ok()) {
        return absl::Status(is_live.status().code(),
                            absl::StrCat("orphan sweep: run ", run_id, ": ",
                                         is_live.status().message()));
      }
      it = live.emplace(run_id, *is_live).first;
    }
    if (it->second) {
      sweep.kept.push_back(name);
      continue;
    }
    kube::DeleteOptions del;
    del.grace_period_seconds = 0;
    absl::Status s = client.Delete(kube::PodPath(ns, name), del);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
    sweep.deleted.push_back(name);
  }
  return sweep;
}

}  // namespace kiln
