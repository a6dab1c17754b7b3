#include "kube/testing/object_rules.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kube/testing/api_protocol.h"

namespace kiln::kube::testing::fake_api {

using nlohmann::json;

void DefaultPod(json& pod) {
  json& spec = pod["spec"];
  if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Always";
  if (!spec.contains("terminationGracePeriodSeconds")) {
    spec["terminationGracePeriodSeconds"] = 30;
  }
  if (!spec.contains("dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
  if (!spec.contains("schedulerName"))
    spec["schedulerName"] = "default-scheduler";
  if (!spec.contains("serviceAccountName"))
    spec["serviceAccountName"] = "default";
  spec["serviceAccount"] = spec["serviceAccountName"];
  if (!spec.contains("securityContext"))
    spec["securityContext"] = json::object();
  if (!spec.contains("enableServiceLinks")) spec["enableServiceLinks"] = true;
  if (!spec.contains("preemptionPolicy")) {
    spec["preemptionPolicy"] = "PreemptLowerPriority";
  }
  if (!spec.contains("priority")) spec["priority"] = 0;
  bool any_resources = false;
  for (const char* list : {"initContainers", "containers"}) {
    if (!spec.contains(list) || !spec[list].is_array()) continue;
    for (json& c : spec[list]) {
      if (!c.is_object()) continue;
      if (!c.contains("terminationMessagePath")) {
        c["terminationMessagePath"] = "/dev/termination-log";
      }
      if (!c.contains("terminationMessagePolicy")) {
        c["terminationMessagePolicy"] = "File";
      }
      if (!c.contains("imagePullPolicy")) {
        std::string image = c.value("image", "");
        size_t slash = image.rfind('/');
        std::string last =
            slash == std::string::npos ? image : image.substr(slash + 1);
        bool latest = last.find('@') == std::string::npos &&
                      (last.find(':') == std::string::npos ||
                       absl::EndsWith(last, ":latest"));
        c["imagePullPolicy"] = latest ? "Always" : "IfNotPresent";
      }
      if (!c.contains("resources")) c["resources"] = json::object();
      if (!c["resources"].empty()) any_resources = true;
    }
  }
  json& status = pod["status"];
  if (!status.is_object()) status = json::object();
  status["phase"] = "Pending";
  status["qosClass"] = any_resources ? "Burstable" : "BestEffort";
}

std::vector<std::pair<std::string, std::string>> ValidatePod(const json& pod) {
  std::vector<std::pair<std::string, std::string>> causes;
  const json& spec = pod.contains("spec") ? pod["spec"] : json();
  if (!spec.is_object()) {
    causes.push_back({"spec", "Required value"});
    return causes;
  }
  if (!spec.contains("containers") || !spec["containers"].is_array() ||
      spec["containers"].empty()) {
    causes.push_back({"spec.containers", "Required value"});
  }
  std::set<std::string> names;
  for (const char* list : {"initContainers", "containers"}) {
    if (!spec.contains(list)) continue;
    if (!spec[list].is_array()) {
      causes.push_back({absl::StrCat("spec.", list), "must be a list"});
      continue;
    }
    for (size_t i = 0; i < spec[list].size(); ++i) {
      const json& c = spec[list][i];
      std::string at = absl::StrCat("spec.", list, "[", i, "]");
      std::string name = c.is_object() ? c.value("name", "") : "";
      if (!IsDnsLabel(name)) {
        causes.push_back(
            {at + ".name", absl::StrCat("Invalid value: \"", name,
                                        "\": a lowercase RFC 1123 label")});
      } else if (!names.insert(name).second) {
        causes.push_back(
            {at + ".name", absl::StrCat("Duplicate value: \"", name, "\"")});
      }
      if (!c.is_object() || c.value("image", "").empty()) {
        causes.push_back({at + ".image", "Required value"});
      }
    }
  }
  std::string rp = spec.value("restartPolicy", "Always");
  if (rp != "Always" && rp != "OnFailure" && rp != "Never") {
    causes.push_back({"spec.restartPolicy",
                      absl::StrCat("Unsupported value: \"", rp, "\"")});
  }
  return causes;
}

json MutablePodSpec(json spec) {
  if (!spec.is_object()) return spec;
  for (const char* list : {"containers", "initContainers"}) {
    if (!spec.contains(list) || !spec[list].is_array()) continue;
    for (json& c : spec[list]) {
      if (c.is_object()) c.erase("image");
    }
  }
  spec.erase("activeDeadlineSeconds");
  spec.erase("tolerations");
  spec.erase("terminationGracePeriodSeconds");
  return spec;
}

json SecretWithStringData(json obj, std::string* error) {
  if (obj.contains("stringData")) {
    if (!obj["stringData"].is_object()) {
      *error = "stringData must be a map";
      return obj;
    }
    if (!obj.contains("data") || !obj["data"].is_object()) {
      obj["data"] = json::object();
    }
    for (auto it = obj["stringData"].begin(); it != obj["stringData"].end();
         ++it) {
      if (!it.value().is_string()) {
        *error = "stringData values must be strings";
        return obj;
      }
      obj["data"][it.key()] = absl::Base64Escape(it.value().get<std::string>());
    }
    obj.erase("stringData");
  }
  if (obj.contains("data")) {
    if (!obj["data"].is_object()) {
      *error = "data must be a map";
      return obj;
    }
    for (auto it = obj["data"].begin(); it != obj["data"].end(); ++it) {
      std::string out;
      if (!it.value().is_string() ||
          !absl::Base64Unescape(it.value().get<std::string>(), &out)) {
        *error = absl::StrCat("data[", it.key(), "]: illegal base64 data");
        return obj;
      }
    }
  }
  if (!obj.contains("type")) obj["type"] = "Opaque";
  return obj;
}

}  // namespace kiln::kube::testing::fake_api
