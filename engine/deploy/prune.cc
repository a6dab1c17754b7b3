#include "engine/deploy/prune.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "kube/resources.h"

namespace kiln::deploy {
namespace {

using json = nlohmann::json;

// A Kubernetes label value: <= 63 of [A-Za-z0-9-_.], alphanumeric at both
// ends (or empty, which a selector could not tell from "no value").
bool IsLabelValue(const std::string& v) {
  if (v.empty() || v.size() > 63) return false;
  if (!absl::ascii_isalnum(static_cast<unsigned char>(v.front())) ||
      !absl::ascii_isalnum(static_cast<unsigned char>(v.back()))) {
    return false;
  }
  for (char c : v) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' &&
        c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

const json& Meta(const json& obj) {
  static const json empty = json::object();
  return obj.is_object() && obj.contains("metadata") &&
                 obj["metadata"].is_object()
             ? obj["metadata"]
             : empty;
}

bool OwnedByAnother(const json& meta) {
  return meta.contains("ownerReferences") &&
         meta["ownerReferences"].is_array() && !meta["ownerReferences"].empty();
}

}  // namespace

const std::vector<PrunedKind>& PrunedKinds() {
  // Roughly apply order; pruning walks it backwards (workloads first).
  static const auto* kinds = new std::vector<PrunedKind>{
      {"v1", "ServiceAccount"},
      {"rbac.authorization.k8s.io/v1", "Role"},
      {"rbac.authorization.k8s.io/v1", "RoleBinding"},
      {"v1", "ConfigMap"},
      {"v1", "Secret"},
      {"v1", "Service"},
      {"networking.k8s.io/v1", "Ingress"},
      {"networking.k8s.io/v1", "NetworkPolicy"},
      {"policy/v1", "PodDisruptionBudget"},
      {"autoscaling/v2", "HorizontalPodAutoscaler"},
      {"apps/v1", "Deployment"},
      {"apps/v1", "StatefulSet"},
      {"apps/v1", "DaemonSet"},
      {"batch/v1", "Job"},
      {"batch/v1", "CronJob"},
  };
  return *kinds;
}

absl::StatusOr<std::vector<AppliedObject>> Prune(
    kube::Client* client, const DeployTarget& target,
    const std::vector<AppliedObject>& applied, const LogFn& log) {
  if (!IsLabelValue(target.environment)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "environment \"", target.environment,
        "\" is not a label value; kiln cannot select its objects to prune"));
  }
  if (target.namespace_name.empty()) {
    return absl::InvalidArgumentError("pruning needs the namespace");
  }
  kube::ResourceMapper mapper(client);
  // The resources to look at: the applied kinds, then the fixed list.
  std::vector<kube::ApiResource> resources;
  std::set<std::string> seen;  // collection paths
  auto add = [&](const kube::ApiResource& r) {
    if (!r.namespaced) return;  // never a cluster-scoped object
    if (seen.insert(r.CollectionPath(target.namespace_name)).second) {
      resources.push_back(r);
    }
  };
  std::set<std::string> keep;  // object paths this deploy applied
  for (const AppliedObject& o : applied) {
    keep.insert(o.path);
    if (o.namespace_name.empty()) continue;
    absl::StatusOr<kube::ApiResource> r = mapper.Find(o.api_version, o.kind);
    if (!r.ok()) return r.status();
    add(*r);
  }
  for (const PrunedKind& k : PrunedKinds()) {
    absl::StatusOr<kube::ApiResource> r = mapper.Find(k.api_version, k.kind);
    if (absl::IsNotFound(r.status())) continue;  // the cluster serves none
    if (!r.ok()) return r.status();
    add(*r);
  }

  kube::ListOptions list;
  list.label_selector = absl::StrCat(kEnvironmentLabel, "=", target.environment,
                                     ",", kManagedByLabel, "=kiln");
  std::vector<AppliedObject> doomed;
  for (auto it = resources.rbegin(); it != resources.rend(); ++it) {
    const kube::ApiResource& r = *it;
    absl::StatusOr<json> items =
        client->List(r.CollectionPath(target.namespace_name), list);
    if (!items.ok()) {
      return absl::Status(items.status().code(),
                          absl::StrCat("listing ", r.kind, " to prune: ",
                                       items.status().message()));
    }
    if (!items->contains("items") || !(*items)["items"].is_array()) continue;
    for (const json& item : (*items)["items"]) {
      const json& meta = Meta(item);
      const std::string name = meta.value("name", "");
      if (name.empty() ||
          meta.value("namespace", "") != target.namespace_name ||
          meta.contains("deletionTimestamp") || OwnedByAnother(meta) ||
          !kube::AppliedBy(meta, kFieldManager)) {
        continue;
      }
      AppliedObject o;
      o.api_version = r.api_version;
      o.kind = r.kind;
      o.name = name;
      o.namespace_name = target.namespace_name;
      o.path = r.ObjectPath(target.namespace_name, name);
      if (keep.count(o.path) != 0) continue;
      doomed.push_back(std::move(o));
      if (doomed.size() > kMaxPrunedObjects) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "more than ", kMaxPrunedObjects, " objects of environment \"",
            target.environment, "\" in namespace ", target.namespace_name,
            " are no longer in the manifests; refusing to prune them all"));
      }
    }
  }
  std::vector<AppliedObject> deleted;
  kube::DeleteOptions del;
  del.propagation_policy = "Background";  // what it owns goes too
  for (AppliedObject& o : doomed) {
    absl::Status s = client->Delete(o.path, del);
    if (absl::IsNotFound(s)) continue;  // gone meanwhile
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("pruning ", o.kind, "/",
                                                 o.name, ": ", s.message()));
    }
    log(absl::StrCat(o.kind, "/", o.name,
                     " pruned (no longer in the manifests; namespace ",
                     o.namespace_name, ")"));
    deleted.push_back(std::move(o));
  }
  return deleted;
}

}  // namespace kiln::deploy
