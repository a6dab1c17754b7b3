#include "kube/testing/rollout.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kiln::kube::testing {
namespace {

using json = nlohmann::json;

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

const json& Meta(const json& obj) {
  static const json empty = json::object();
  return obj.contains("metadata") && obj["metadata"].is_object()
             ? obj["metadata"]
             : empty;
}

const json& Template(const json& obj) {
  static const json empty = json::object();
  if (obj.contains("spec") && obj["spec"].is_object() &&
      obj["spec"].contains("template") && obj["spec"]["template"].is_object()) {
    return obj["spec"]["template"];
  }
  return empty;
}

bool AnnotatedFail(const json& meta) {
  return meta.contains("annotations") && meta["annotations"].is_object() &&
         meta["annotations"].value("kiln.dev/test-rollout", "") == "fail";
}

bool ShouldFail(const json& obj) {
  if (AnnotatedFail(Meta(obj)) || AnnotatedFail(Meta(Template(obj)))) {
    return true;
  }
  const json& tmpl = Template(obj);
  if (!tmpl.contains("spec") || !tmpl["spec"].contains("containers")) {
    return false;
  }
  for (const json& c : tmpl["spec"]["containers"]) {
    if (c.is_object() && c.contains("image") && c["image"].is_string() &&
        absl::StrContains(c["image"].get<std::string>(),
                          "kiln-test-crashloop")) {
      return true;
    }
  }
  return false;
}

std::string PathOf(const std::string& group_prefix, const std::string& plural,
                   const json& obj) {
  return absl::StrCat(group_prefix, "/namespaces/",
                      Meta(obj).value("namespace", ""), "/", plural, "/",
                      Meta(obj).value("name", ""));
}

json Condition(const std::string& type, const std::string& status,
               const std::string& reason, const std::string& message,
               absl::Time now) {
  return {{"type", type},
          {"status", status},
          {"reason", reason},
          {"message", message},
          {"lastUpdateTime", Rfc3339(now)},
          {"lastTransitionTime", Rfc3339(now)}};
}

// A stable short hash of the pod template, as a ReplicaSet's name carries.
std::string TemplateHash(const json& obj) {
  size_t h = std::hash<std::string>()(Template(obj).dump());
  return absl::StrCat(absl::Hex(h % 0xffffffffu));
}

}  // namespace

std::unique_ptr<RolloutController> RolloutController::Start(
    FakeApiServer* server, RolloutOptions options) {
  std::unique_ptr<RolloutController> c(new RolloutController(server, options));
  c->thread_ = std::thread([p = c.get()] { p->Loop(); });
  return c;
}

RolloutController::~RolloutController() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void RolloutController::Loop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.tick)) Tick();
}

void RolloutController::Tick() {
  for (const char* plural : {"deployments", "statefulsets", "daemonsets"}) {
    auto objs = server_->ListObjects(absl::StrCat("/apis/apps/v1/", plural));
    if (!objs.ok()) continue;
    for (const json& o : *objs) Workload(plural, o);
  }
  auto jobs = server_->ListObjects("/apis/batch/v1/jobs");
  if (jobs.ok()) {
    for (const json& j : *jobs) Job(j);
  }
}

void RolloutController::CrashingPod(const json& owner,
                                    const std::string& pod_name,
                                    const json& extra_labels) {
  const std::string ns = Meta(owner).value("namespace", "");
  const json& tmpl = Template(owner);
  json labels = Meta(tmpl).value("labels", json::object());
  for (const auto& [k, v] : extra_labels.items()) labels[k] = v;
  std::string container = "app", image = "unknown";
  if (tmpl.contains("spec") && tmpl["spec"].contains("containers") &&
      !tmpl["spec"]["containers"].empty()) {
    container = tmpl["spec"]["containers"][0].value("name", container);
    image = tmpl["spec"]["containers"][0].value("image", image);
  }
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", pod_name}, {"labels", labels}}},
              {"spec",
               {{"restartPolicy", "Always"},
                {"containers", {{{"name", container}, {"image", image}}}}}}};
  auto made = server_->CreateObject(
      absl::StrCat("/api/v1/namespaces/", ns, "/pods"), pod);
  if (!made.ok()) return;
  absl::Time now = absl::Now();
  (void)server_->MutatePod(ns, pod_name, [&](json& p) {
    p["spec"]["nodeName"] = "node-1";
    p["status"]["phase"] = "Running";
    p["status"]["containerStatuses"] = {
        {{"name", container},
         {"image", image},
         {"ready", false},
         {"restartCount", 3},
         {"state",
          {{"waiting",
            {{"reason", "CrashLoopBackOff"},
             {"message",
              absl::StrCat("back-off 40s restarting failed container=",
                           container, " pod=", pod_name)}}}}},
         {"lastState",
          {{"terminated",
            {{"exitCode", 1},
             {"reason", "Error"},
             {"finishedAt", Rfc3339(now)}}}}}}};
  });
  server_->AppendLog(ns, pod_name, container, kCrashLogLine, now);
  server_->EndLog(ns, pod_name, container);
  server_->RecordEvent(ns, pod_name, "Warning", "BackOff",
                       absl::StrCat("Back-off restarting failed container ",
                                    container, " in pod ", pod_name));
}

void RolloutController::Workload(const std::string& plural, const json& obj) {
  const json& meta = Meta(obj);
  const int64_t generation = meta.value("generation", int64_t{1});
  const std::string key = absl::StrCat(meta.value("uid", ""), "/", generation);
  const absl::Time now = absl::Now();
  auto [it, fresh] = seen_.emplace(key, now);
  const bool due = now - it->second >= options_.ready_after;
  const bool fail = ShouldFail(obj);
  int64_t desired = 1;
  if (plural != "daemonsets" && obj.contains("spec") &&
      obj["spec"].contains("replicas") &&
      obj["spec"]["replicas"].is_number_integer()) {
    desired = obj["spec"]["replicas"].get<int64_t>();
  }
  const std::string hash = TemplateHash(obj);
  const std::string name = meta.value("name", "");
  if (due && fail && !pod_made_[key]) {
    pod_made_[key] = true;
    CrashingPod(obj, absl::StrCat(name, "-", hash, "-crash"),
                json{{"pod-template-hash", hash}});
  }
  const int64_t ready = due && !fail ? desired : 0;
  const int64_t updated = due ? desired : 0;
  json status = json::object();
  status["observedGeneration"] = generation;
  if (plural == "daemonsets") {
    status["desiredNumberScheduled"] = desired;
    status["currentNumberScheduled"] = desired;
    status["updatedNumberScheduled"] = updated;
    status["numberReady"] = ready;
    status["numberAvailable"] = ready;
    if (ready < desired) status["numberUnavailable"] = desired - ready;
  } else {
    status["replicas"] = desired;
    status["updatedReplicas"] = updated;
    status["readyReplicas"] = ready;
    status["availableReplicas"] = ready;
    if (plural == "statefulsets") status["currentReplicas"] = updated;
    if (ready < desired) status["unavailableReplicas"] = desired - ready;
  }
  if (plural == "deployments") {
    const std::string rs = absl::StrCat("ReplicaSet \"", name, "-", hash, "\"");
    json available =
        ready >= desired
            ? Condition("Available", "True", "MinimumReplicasAvailable",
                        "Deployment has minimum availability.", now)
            : Condition("Available", "False", "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.", now);
    json progressing =
        !due ? Condition("Progressing", "True", "ReplicaSetUpdated",
                         absl::StrCat(rs, " is progressing."), now)
        : fail
            ? Condition("Progressing", "False", "ProgressDeadlineExceeded",
                        absl::StrCat(rs, " has timed out progressing."), now)
            : Condition("Progressing", "True", "NewReplicaSetAvailable",
                        absl::StrCat(rs, " has successfully progressed."), now);
    status["conditions"] = {available, progressing};
  }
  (void)server_->MutateObject(
      PathOf("/apis/apps/v1", plural, obj), [&](json& cur) {
        // Keep the earlier transition times when nothing changed.
        if (cur.contains("status") && cur["status"].contains("conditions") &&
            status.contains("conditions")) {
          for (json& c : status["conditions"]) {
            for (const json& old : cur["status"]["conditions"]) {
              if (old.value("type", "") == c["type"] &&
                  old.value("status", "") == c["status"] &&
                  old.value("reason", "") == c["reason"]) {
                c = old;
              }
            }
          }
        }
        if (Meta(cur).value("generation", int64_t{1}) == generation) {
          cur["status"] = status;
        }
      });
}

void RolloutController::Job(const json& obj) {
  const json& meta = Meta(obj);
  const std::string key = absl::StrCat(meta.value("uid", ""), "/job");
  const absl::Time now = absl::Now();
  auto [it, fresh] = seen_.emplace(key, now);
  if (!fresh && pod_made_[key]) return;  // finished
  const bool due = now - it->second >= options_.ready_after;
  json status = {{"startTime", Rfc3339(it->second)}, {"active", 1}};
  if (due) {
    pod_made_[key] = true;
    status.erase("active");
    if (ShouldFail(obj)) {
      std::string name = meta.value("name", "");
      CrashingPod(obj, absl::StrCat(name, "-crash"), json{{"job-name", name}});
      int64_t limit = 6;
      if (obj.contains("spec") && obj["spec"].contains("backoffLimit") &&
          obj["spec"]["backoffLimit"].is_number_integer()) {
        limit = obj["spec"]["backoffLimit"].get<int64_t>();
      }
      status["failed"] = limit + 1;
      status["conditions"] =
          json::array({Condition("Failed", "True", "BackoffLimitExceeded",
                                 "Job has reached the specified "
                                 "backoff limit",
                                 now)});
    } else {
      int64_t completions = 1;
      if (obj.contains("spec") && obj["spec"].contains("completions") &&
          obj["spec"]["completions"].is_number_integer()) {
        completions = obj["spec"]["completions"].get<int64_t>();
      }
      status["succeeded"] = completions;
      status["completionTime"] = Rfc3339(now);
      status["conditions"] =
          json::array({Condition("Complete", "True", "", "", now)});
    }
  }
  (void)server_->MutateObject(PathOf("/apis/batch/v1", "jobs", obj),
                              [&](json& cur) { cur["status"] = status; });
}

}  // namespace kiln::kube::testing
