#include "engine/render/resource.h"

#include <algorithm>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace kiln::render {

std::string Resource::Group() const {
  std::string av = ApiVersion();
  size_t slash = av.find('/');
  return slash == std::string::npos ? "" : av.substr(0, slash);
}

std::string Resource::Version() const {
  std::string av = ApiVersion();
  size_t slash = av.find('/');
  return slash == std::string::npos ? av : av.substr(slash + 1);
}

void Resource::SetName(const std::string& name) {
  std::string old = Name();
  if (old == name) return;
  previous_names.push_back(old);
  obj.At("metadata").At("name") = Value::Str(name);
}

void Resource::SetNamespace(const std::string& ns) {
  std::string old = Namespace();
  if (old == ns) return;
  previous_namespaces.push_back(old);
  obj.At("metadata").At("namespace") = Value::Str(ns);
}

bool Resource::HadName(absl::string_view name) const {
  if (Name() == name) return true;
  return std::find(previous_names.begin(), previous_names.end(), name) !=
         previous_names.end();
}

bool Resource::HadNamespace(absl::string_view ns) const {
  if (Namespace() == ns) return true;
  return std::find(previous_namespaces.begin(), previous_namespaces.end(),
                   ns) != previous_namespaces.end();
}

std::string Resource::IdString() const {
  std::string g = Group(), v = Version(), k = Kind(), n = Name(),
              ns = Namespace();
  return absl::StrCat(k.empty() ? "[noKind]" : k, ".",
                      v.empty() ? "[noVer]" : v, ".", g.empty() ? "[noGrp]" : g,
                      "/", n, ".", ns.empty() ? "[noNs]" : ns);
}

bool IsClusterScopedKind(absl::string_view kind) {
  static const auto* kinds = new absl::flat_hash_set<std::string>{
      "APIService",
      "CSIDriver",
      "CSINode",
      "CertificateSigningRequest",
      "ClusterRole",
      "ClusterRoleBinding",
      "ComponentStatus",
      "CustomResourceDefinition",
      "FlowSchema",
      "IngressClass",
      "MutatingWebhookConfiguration",
      "Namespace",
      "Node",
      "PersistentVolume",
      "PodSecurityPolicy",
      "PriorityClass",
      "PriorityLevelConfiguration",
      "RuntimeClass",
      "SelfSubjectAccessReview",
      "SelfSubjectRulesReview",
      "StorageClass",
      "SubjectAccessReview",
      "TokenReview",
      "ValidatingAdmissionPolicy",
      "ValidatingAdmissionPolicyBinding",
      "ValidatingWebhookConfiguration",
      "VolumeAttachment",
  };
  return kinds->contains(kind);
}

bool IsBuiltinKind(absl::string_view kind) {
  static const auto* kinds = new absl::flat_hash_set<std::string>{
      "ConfigMap",
      "CronJob",
      "DaemonSet",
      "Deployment",
      "Endpoints",
      "HorizontalPodAutoscaler",
      "Ingress",
      "Job",
      "LimitRange",
      "Namespace",
      "NetworkPolicy",
      "PersistentVolume",
      "PersistentVolumeClaim",
      "Pod",
      "PodDisruptionBudget",
      "PodTemplate",
      "ReplicaSet",
      "ReplicationController",
      "ResourceQuota",
      "Role",
      "RoleBinding",
      "ClusterRole",
      "ClusterRoleBinding",
      "Secret",
      "Service",
      "ServiceAccount",
      "StatefulSet",
      "StorageClass",
  };
  return kinds->contains(kind);
}

namespace {

int KindRank(const std::string& kind) {
  static const auto* ranks = [] {
    auto* m = new absl::flat_hash_map<std::string, int>();
    const char* first[] = {"Namespace",
                           "ResourceQuota",
                           "StorageClass",
                           "CustomResourceDefinition",
                           "ServiceAccount",
                           "PodSecurityPolicy",
                           "Role",
                           "ClusterRole",
                           "RoleBinding",
                           "ClusterRoleBinding",
                           "ConfigMap",
                           "Secret",
                           "Endpoints",
                           "Service",
                           "LimitRange",
                           "PriorityClass",
                           "PersistentVolume",
                           "PersistentVolumeClaim",
                           "Deployment",
                           "StatefulSet",
                           "CronJob",
                           "PodDisruptionBudget"};
    int n = sizeof(first) / sizeof(first[0]);
    for (int i = 0; i < n; ++i) (*m)[first[i]] = -n + i;
    (*m)["MutatingWebhookConfiguration"] = 1;
    (*m)["ValidatingWebhookConfiguration"] = 2;
    return m;
  }();
  auto it = ranks->find(kind);
  return it == ranks->end() ? 0 : it->second;
}

struct SortKey {
  int rank;
  std::string gvk;  // group_version_kind with ~G/~V/~K for empty parts
  std::string id;   // Kind.version.group|namespace|name
};

SortKey KeyOf(const Resource& r) {
  std::string g = r.Group(), v = r.Version(), k = r.Kind();
  std::string ns = r.Namespace(), n = r.Name();
  SortKey key;
  key.rank = KindRank(k);
  key.gvk = absl::StrCat(g.empty() ? "~G" : g, "_", v.empty() ? "~V" : v, "_",
                         k.empty() ? "~K" : k);
  key.id =
      absl::StrCat(k.empty() ? "[noKind]" : k, ".", v.empty() ? "[noVer]" : v,
                   ".", g.empty() ? "[noGrp]" : g, "|", ns.empty() ? "~X" : ns,
                   "|", n.empty() ? "~N" : n);
  return key;
}

}  // namespace

void SortLegacy(std::vector<Resource>* resources) {
  std::vector<std::pair<SortKey, size_t>> keys;
  keys.reserve(resources->size());
  for (size_t i = 0; i < resources->size(); ++i) {
    keys.emplace_back(KeyOf((*resources)[i]), i);
  }
  std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
    if (a.first.gvk != b.first.gvk) {
      if (a.first.rank != b.first.rank) return a.first.rank < b.first.rank;
      return a.first.gvk < b.first.gvk;
    }
    return a.first.id < b.first.id;
  });
  std::vector<Resource> sorted;
  sorted.reserve(resources->size());
  for (auto& k : keys) sorted.push_back(std::move((*resources)[k.second]));
  *resources = std::move(sorted);
}

}  // namespace kiln::render
