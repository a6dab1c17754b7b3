#include "engine/deploy/deployer.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "kube/names.h"

namespace kiln::deploy {
namespace {

using json = nlohmann::json;

constexpr int kMaxEvents = 10;    // latest Warning events shown per object
constexpr int kMaxPods = 5;       // pods examined per failing workload
constexpr int kMaxLogLines = 20;  // last log lines of a failing pod

int64_t Int(const json& obj, const char* key, int64_t def = 0) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_number_integer()) {
    return def;
  }
  return obj[key].get<int64_t>();
}

const json& Field(const json& obj, const char* key) {
  static const json empty = json::object();
  return obj.is_object() && obj.contains(key) && obj[key].is_object() ? obj[key]
                                                                      : empty;
}

const json* FindCondition(const json& live, const std::string& type) {
  const json& status = Field(live, "status");
  if (!status.contains("conditions") || !status["conditions"].is_array()) {
    return nullptr;
  }
  for (const json& c : status["conditions"]) {
    if (c.is_object() && c.value("type", "") == type) return &c;
  }
  return nullptr;
}

std::string Describe(const AppliedObject& o) {
  return absl::StrCat(o.kind, "/", o.name);
}

std::string LabelSelector(const json& match_labels) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : match_labels.items()) {
    if (v.is_string())
      parts.push_back(absl::StrCat(k, "=", v.get<std::string>()));
  }
  return absl::StrJoin(parts, ",");
}

}  // namespace

void NoteLiveState(const json& live, AppliedObject* o) {
  const json& meta = Field(live, "metadata");
  o->uid = meta.value("uid", "");
  o->resource_version = meta.value("resourceVersion", "");
  o->generation = Int(meta, "generation", 0);
}

RolloutState CheckRollout(const json& live) {
  RolloutState s;
  const std::string kind = live.value("kind", "");
  const json& meta = Field(live, "metadata");
  const json& spec = Field(live, "spec");
  const json& status = Field(live, "status");
  if (kind == "Job") {
    const json* failed = FindCondition(live, "Failed");
    if (failed != nullptr && failed->value("status", "") == "True") {
      s.failed = true;
      s.detail = absl::StrCat("the Job failed: ", failed->value("reason", ""),
                              ": ", failed->value("message", ""));
      return s;
    }
    const json* complete = FindCondition(live, "Complete");
    s.done = complete != nullptr && complete->value("status", "") == "True";
    s.detail = absl::StrCat(Int(status, "succeeded"), " of ",
                            Int(spec, "completions", 1), " completions");
    return s;
  }
  const int64_t generation = Int(meta, "generation", 0);
  const int64_t observed = Int(status, "observedGeneration", 0);
  if (observed < generation) {
    s.detail = absl::StrCat("waiting for the controller to observe generation ",
                            generation, " (observed ", observed, ")");
    return s;
  }
  if (kind == "Deployment") {
    const json* progressing = FindCondition(live, "Progressing");
    if (progressing != nullptr &&
        progressing->value("reason", "") == "ProgressDeadlineExceeded") {
      s.failed = true;
      s.detail = absl::StrCat("rollout failed: ProgressDeadlineExceeded: ",
                              progressing->value("message", ""));
      return s;
    }
  }
  int64_t desired, updated, ready, available;
  if (kind == "DaemonSet") {
    desired = Int(status, "desiredNumberScheduled");
    updated = Int(status, "updatedNumberScheduled");
    ready = Int(status, "numberReady");
    available = Int(status, "numberAvailable");
  } else {
    desired = Int(spec, "replicas", 1);
    updated = Int(status, "updatedReplicas");
    ready = Int(status, "readyReplicas");
    available = kind == "StatefulSet" && !status.contains("availableReplicas")
                    ? ready
                    : Int(status, "availableReplicas");
  }
  s.done = updated >= desired && ready >= desired && available >= desired;
  s.detail = absl::StrCat(updated, " of ", desired, " updated, ", ready,
                          " ready, ", available, " available");
  return s;
}

absl::Status Deployer::EnsureNamespace(const DeployTarget& target) {
  absl::StatusOr<json> ns =
      client_->Get(kube::NamespacePath(target.namespace_name));
  if (ns.ok()) {
    const json& status = Field(*ns, "status");
    if (status.value("phase", "") == "Terminating") {
      return absl::FailedPreconditionError(
          absl::StrCat("namespace \"", target.namespace_name,
                       "\" is being deleted; deploy again once it is gone"));
    }
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(ns.status())) return ns.status();
  if (!target.create_namespace) {
    return absl::FailedPreconditionError(absl::StrCat(
        "namespace \"", target.namespace_name, "\" of permanent environment \"",
        target.environment,
        "\" does not exist (kiln creates only preview environments' "
        "namespaces)"));
  }
  json obj = {{"apiVersion", "v1"},
              {"kind", "Namespace"},
              {"metadata",
               {{"name", target.namespace_name},
                {"labels",
                 {{kEnvironmentLabel, target.environment},
                  {kManagedByLabel, "kiln"}}}}}};
  absl::StatusOr<json> made = client_->Apply(
      kube::NamespacePath(target.namespace_name), obj, {kFieldManager, false});
  if (!made.ok()) return made.status();
  log_(absl::StrCat("created namespace ", target.namespace_name));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AppliedObject>> Deployer::Apply(
    std::vector<Manifest> manifests, const DeployTarget& target) {
  applied_.clear();
  if (!kube::IsDnsLabel(target.namespace_name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", target.namespace_name,
                     "\" is not a namespace name (a DNS-1123 label)"));
  }
  OrderForApply(&manifests);
  // Place and resolve everything before the first write: a bad object
  // fails the deploy with nothing applied.
  std::vector<AppliedObject> plan;
  std::set<std::string> paths;
  for (Manifest& m : manifests) {
    absl::StatusOr<kube::ApiResource> res = mapper_.Find(m.api_version, m.kind);
    if (!res.ok()) {
      return absl::Status(res.status().code(),
                          absl::StrCat(m.source, ": ", res.status().message()));
    }
    absl::Status s =
        res->namespaced
            ? PrepareNamespaced(&m, target.namespace_name, target.environment)
            : PrepareClusterScoped(&m, target.namespace_name,
                                   target.environment);
    if (!s.ok()) return s;
    AppliedObject o;
    o.api_version = m.api_version;
    o.kind = m.kind;
    o.name = m.name;
    o.namespace_name = res->namespaced ? target.namespace_name : "";
    o.path = res->ObjectPath(o.namespace_name, m.name);
    if (!paths.insert(o.path).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          m.source, ": ", m.kind, " \"", m.name, "\" appears twice"));
    }
    plan.push_back(std::move(o));
  }
  absl::Status ns = target.ensure_namespace ? target.ensure_namespace()
                                            : EnsureNamespace(target);
  if (!ns.ok()) return ns;
  for (size_t i = 0; i < manifests.size(); ++i) {
    const AppliedObject& o = plan[i];
    absl::StatusOr<json> applied = client_->Apply(
        o.path, manifests[i].object, {kFieldManager, target.force});
    if (!applied.ok()) {
      std::string why(applied.status().message());
      if (kube::ApiReason(applied.status()) == "Conflict") {
        return absl::AbortedError(absl::StrCat(
            "applying ", Describe(o), ": ", why,
            " (another field manager owns these fields; set `force: true` "
            "on the deploy task to take them over)"));
      }
      return absl::Status(applied.status().code(),
                          absl::StrCat("applying ", Describe(o), ": ", why));
    }
    applied_.push_back(o);
    NoteLiveState(*applied, &applied_.back());
    log_(absl::StrCat(
        Describe(o), " serverside-applied",
        o.namespace_name.empty()
            ? ""
            : absl::StrCat(" (namespace ", o.namespace_name, ")")));
  }
  return applied_;
}

absl::Status Deployer::Wait(const std::vector<AppliedObject>& objects,
                            const DeployTarget& target) {
  const absl::Time deadline = absl::Now() + target.timeout;
  for (const AppliedObject& o : objects) {
    if (!IsWorkload(o.kind)) continue;
    std::string last_detail;
    for (;;) {
      if (cancelled_ && cancelled_()) {
        return absl::CancelledError("the deploy was cancelled while waiting");
      }
      absl::StatusOr<json> live = client_->Get(o.path);
      if (!live.ok()) {
        return absl::Status(live.status().code(),
                            absl::StrCat("waiting for ", Describe(o), ": ",
                                         live.status().message()));
      }
      RolloutState st = CheckRollout(*live);
      if (st.detail != last_detail) {
        log_(absl::StrCat(Describe(o), ": ", st.detail));
        last_detail = st.detail;
      }
      if (st.done) {
        // The record keeps the rolled-out state, not the apply's answer.
        for (AppliedObject& a : applied_) {
          if (a.path == o.path) NoteLiveState(*live, &a);
        }
        break;
      }
      if (st.failed) {
        Diagnose(o, *live);
        return absl::FailedPreconditionError(
            absl::StrCat(Describe(o), ": ", st.detail));
      }
      if (absl::Now() >= deadline) {
        Diagnose(o, *live);
        return absl::DeadlineExceededError(absl::StrCat(
            Describe(o), " was not ready within ",
            absl::FormatDuration(target.timeout), " (", st.detail, ")"));
      }
      absl::SleepFor(std::min(target.poll, deadline - absl::Now()));
    }
    log_(absl::StrCat(Describe(o), " is ready"));
  }
  return absl::OkStatus();
}

void Deployer::Diagnose(const AppliedObject& o, const json& live) {
  const json& status = Field(live, "status");
  if (status.contains("conditions") && status["conditions"].is_array()) {
    log_(absl::StrCat("conditions of ", Describe(o), ":"));
    for (const json& c : status["conditions"]) {
      log_(absl::StrCat("  ", c.value("type", "?"), "=", c.value("status", "?"),
                        " ", c.value("reason", ""), ": ",
                        c.value("message", "")));
    }
  }
  auto warnings = [&](const std::string& kind, const std::string& name) {
    kube::ListOptions opts;
    opts.field_selector =
        absl::StrCat("involvedObject.kind=", kind,
                     ",involvedObject.name=", name, ",type=Warning");
    absl::StatusOr<json> events =
        client_->List(kube::EventsPath(o.namespace_name), opts);
    if (!events.ok() || !events->contains("items")) return;
    std::vector<json> items((*events)["items"].begin(),
                            (*events)["items"].end());
    std::stable_sort(
        items.begin(), items.end(), [](const json& a, const json& b) {
          return a.value("lastTimestamp", "") < b.value("lastTimestamp", "");
        });
    size_t from = items.size() > kMaxEvents ? items.size() - kMaxEvents : 0;
    for (size_t i = from; i < items.size(); ++i) {
      log_(absl::StrCat("  Warning ", items[i].value("reason", ""), " ", kind,
                        "/", name, ": ", items[i].value("message", "")));
    }
  };
  log_(absl::StrCat("warning events of ", Describe(o), " and its pods:"));
  warnings(o.kind, o.name);
  // Its pods: by the selector (a Job's pods also carry job-name).
  const json& spec = Field(live, "spec");
  std::string selector =
      LabelSelector(Field(Field(spec, "selector"), "matchLabels"));
  if (selector.empty() && o.kind == "Job") selector = "job-name=" + o.name;
  if (selector.empty()) return;
  kube::ListOptions pod_opts;
  pod_opts.label_selector = selector;
  absl::StatusOr<json> pods =
      client_->List(kube::PodsPath(o.namespace_name), pod_opts);
  if (!pods.ok() || !pods->contains("items")) return;
  int examined = 0;
  bool logged = false;
  for (const json& pod : (*pods)["items"]) {
    if (++examined > kMaxPods) break;
    std::string pod_name = Field(pod, "metadata").value("name", "");
    warnings("Pod", pod_name);
    if (logged) continue;
    // The first container not ready: its waiting reason and last lines.
    const json& pst = Field(pod, "status");
    if (!pst.contains("containerStatuses")) continue;
    for (const json& cs : pst["containerStatuses"]) {
      if (cs.value("ready", false)) continue;
      std::string container = cs.value("name", "");
      const json& waiting = Field(Field(cs, "state"), "waiting");
      log_(absl::StrCat("pod ", pod_name, " container ", container, ": ",
                        waiting.value("reason", "not ready"), " (restarts ",
                        Int(cs, "restartCount"), ")"));
      std::vector<std::string> lines;
      kube::LogOptions lo;
      lo.container = container;
      lo.timestamps = false;
      absl::Status s = client_->StreamLog(
          o.namespace_name, pod_name, lo,
          [&](absl::string_view line) {
            lines.emplace_back(line);
            if (lines.size() > kMaxLogLines) lines.erase(lines.begin());
            return true;
          },
          nullptr);
      log_(absl::StrCat("last log lines of pod ", pod_name, " container ",
                        container, ":"));
      for (const std::string& l : lines) log_("  | " + l);
      if (!s.ok()) log_(absl::StrCat("  (log: ", s.message(), ")"));
      logged = true;
      break;
    }
  }
}

}  // namespace kiln::deploy
