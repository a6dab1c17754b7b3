// FixNameReferences (transforms.h): kustomize's nameReference transformer.
//
// A table of field specs says, for each kind that can be named (the
// referral: ConfigMap, Secret, ServiceAccount, ...), which fields of which
// kinds (the referrers) hold such a name. Once every rename of a build is
// done (prefix/suffix at every level, generator hashes), each such field is
// pointed at the current name of the object it named, chosen like kustomize:
//   1. candidates: objects the referrer can see (same current namespace,
//      cluster-scoped ones, or any if the referrer is cluster-scoped; a
//      (Cluster)RoleBinding also sees its subjects' namespaces);
//   2. of the referral's kind (and group), that had the old name;
//   3. for roleRef/name, of the roleRef's kind and apiGroup;
//   4. in the referrer's current namespace (ServiceAccounts and
//      cluster-scoped objects pass);
//   5. if several remain, those whose prefixes and suffixes end like the
//      referrer's (blue/green overlays of one base);
//   6. if still several with different names: an error.
// A field that is a map (subjects, webhook service, Node configSource) is
// matched by name and namespace, and both are written back.
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/render/transforms.h"

namespace kiln::render {
namespace {

struct Spec {
  const char* referral_kind;   // the kind being named
  const char* referral_group;  // its API group ("" = core)
  const char* referrer_kind;
  const char* referrer_group;  // nullptr = any group
  std::vector<std::string> path;
};

// Where a pod spec sits in each workload kind.
struct PodSpecAt {
  const char* kind;
  const char* group;
  std::vector<std::string> prefix;
};

const std::vector<PodSpecAt>& Workloads() {
  static const auto* w = new std::vector<PodSpecAt>{
      {"Pod", "", {"spec"}},
      {"Deployment", nullptr, {"spec", "template", "spec"}},
      {"ReplicaSet", nullptr, {"spec", "template", "spec"}},
      {"DaemonSet", nullptr, {"spec", "template", "spec"}},
      {"StatefulSet", nullptr, {"spec", "template", "spec"}},
      {"Job", nullptr, {"spec", "template", "spec"}},
      {"CronJob", nullptr, {"spec", "jobTemplate", "spec", "template", "spec"}},
      {"ReplicationController", nullptr, {"spec", "template", "spec"}},
      {"PodTemplate", nullptr, {"template", "spec"}},
  };
  return *w;
}

std::vector<std::string> Split(const char* path) {
  return absl::StrSplit(path, '/');
}

std::vector<std::string> Concat(std::vector<std::string> a,
                                const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<Spec>& Specs() {
  static const auto* specs = [] {
    auto* s = new std::vector<Spec>();
    auto pod = [&](const char* referral, const char* rgroup,
                   std::initializer_list<const char*> kinds,
                   std::initializer_list<const char*> paths) {
      for (const char* kind : kinds) {
        for (const PodSpecAt& w : Workloads()) {
          if (std::string(w.kind) != kind) continue;
          for (const char* p : paths) {
            s->push_back({referral, rgroup, w.kind, w.group,
                          Concat(w.prefix, Split(p))});
          }
        }
      }
    };
    auto one = [&](const char* referral, const char* rgroup, const char* kind,
                   const char* group, const char* path) {
      s->push_back({referral, rgroup, kind, group, Split(path)});
    };
    for (const char* k :
         {"Deployment", "ReplicationController", "ReplicaSet", "StatefulSet"}) {
      one(k, nullptr, "HorizontalPodAutoscaler", nullptr,
          "spec/scaleTargetRef/name");
    }
    // ConfigMaps: not from ReplicationControllers.
    pod("ConfigMap", "",
        {"Pod", "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job",
         "CronJob", "PodTemplate"},
        {"volumes/configMap/name",
         "containers/env/valueFrom/configMapKeyRef/name",
         "initContainers/env/valueFrom/configMapKeyRef/name",
         "containers/envFrom/configMapRef/name",
         "initContainers/envFrom/configMapRef/name",
         "volumes/projected/sources/configMap/name"});
    one("ConfigMap", "", "Node", "", "spec/configSource/configMap");
    one("ConfigMap", "", "Role", "rbac.authorization.k8s.io",
        "rules/resourceNames");
    one("ConfigMap", "", "ClusterRole", "rbac.authorization.k8s.io",
        "rules/resourceNames");
    s->push_back({"ConfigMap",
                  "",
                  "Ingress",
                  nullptr,
                  {"metadata", "annotations",
                   "nginx.ingress.kubernetes.io/fastcgi-params-configmap"}});
    // Secrets: not from ReplicationControllers or PodTemplates.
    pod("Secret", "",
        {"Pod", "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job",
         "CronJob"},
        {"volumes/secret/secretName",
         "containers/env/valueFrom/secretKeyRef/name",
         "initContainers/env/valueFrom/secretKeyRef/name",
         "containers/envFrom/secretRef/name",
         "initContainers/envFrom/secretRef/name", "imagePullSecrets/name",
         "volumes/projected/sources/secret/name"});
    one("Secret", "", "Ingress", nullptr, "spec/tls/secretName");
    for (const char* a : {"ingress.kubernetes.io/auth-secret",
                          "nginx.ingress.kubernetes.io/auth-secret",
                          "nginx.ingress.kubernetes.io/auth-tls-secret"}) {
      s->push_back(
          {"Secret", "", "Ingress", nullptr, {"metadata", "annotations", a}});
    }
    one("Secret", "", "ServiceAccount", "", "imagePullSecrets/name");
    for (const char* p :
         {"parameters/secretName", "parameters/adminSecretName",
          "parameters/userSecretName", "parameters/secretRef"}) {
      one("Secret", "", "StorageClass", "storage.k8s.io", p);
    }
    one("Secret", "", "Role", "rbac.authorization.k8s.io",
        "rules/resourceNames");
    one("Secret", "", "ClusterRole", "rbac.authorization.k8s.io",
        "rules/resourceNames");
    one("Secret", "", "Service", "serving.knative.dev",
        "spec/template/spec/containers/env/valueFrom/secretKeyRef/name");
    one("Secret", "", "PersistentVolume", "", "spec/azureFile/secretName");
    // Services.
    one("Service", "", "StatefulSet", "apps", "spec/serviceName");
    for (const char* p : {"spec/rules/http/paths/backend/serviceName",
                          "spec/backend/serviceName",
                          "spec/rules/http/paths/backend/service/name",
                          "spec/defaultBackend/service/name"}) {
      one("Service", "", "Ingress", nullptr, p);
    }
    one("Service", "", "APIService", "apiregistration.k8s.io",
        "spec/service/name");
    one("Service", "", "ValidatingWebhookConfiguration",
        "admissionregistration.k8s.io", "webhooks/clientConfig/service");
    one("Service", "", "MutatingWebhookConfiguration",
        "admissionregistration.k8s.io", "webhooks/clientConfig/service");
    // RBAC.
    one("Role", "rbac.authorization.k8s.io", "RoleBinding",
        "rbac.authorization.k8s.io", "roleRef/name");
    one("ClusterRole", "rbac.authorization.k8s.io", "RoleBinding",
        "rbac.authorization.k8s.io", "roleRef/name");
    one("ClusterRole", "rbac.authorization.k8s.io", "ClusterRoleBinding",
        "rbac.authorization.k8s.io", "roleRef/name");
    one("ServiceAccount", "", "RoleBinding", "rbac.authorization.k8s.io",
        "subjects");
    one("ServiceAccount", "", "ClusterRoleBinding", "rbac.authorization.k8s.io",
        "subjects");
    // ServiceAccounts, claims and priority classes: not from ReplicaSets
    // or PodTemplates.
    pod("ServiceAccount", "",
        {"Pod", "StatefulSet", "Deployment", "ReplicationController", "CronJob",
         "Job", "DaemonSet"},
        {"serviceAccountName"});
    pod("PersistentVolumeClaim", "",
        {"Pod", "StatefulSet", "Deployment", "ReplicationController", "CronJob",
         "Job", "DaemonSet"},
        {"volumes/persistentVolumeClaim/claimName"});
    pod("PriorityClass", "scheduling.k8s.io",
        {"Pod", "StatefulSet", "Deployment", "ReplicationController", "CronJob",
         "Job", "DaemonSet"},
        {"priorityClassName"});
    one("PersistentVolume", "", "PersistentVolumeClaim", "", "spec/volumeName");
    one("PersistentVolume", "", "ClusterRole", "rbac.authorization.k8s.io",
        "rules/resourceNames");
    one("StorageClass", "storage.k8s.io", "PersistentVolume", "",
        "spec/storageClassName");
    one("StorageClass", "storage.k8s.io", "PersistentVolumeClaim", "",
        "spec/storageClassName");
    one("StorageClass", "storage.k8s.io", "StatefulSet", nullptr,
        "spec/volumeClaimTemplates/spec/storageClassName");
    return s;
  }();
  return *specs;
}

std::string EffectiveNamespace(const Resource& r, const std::string& ns) {
  if (IsClusterScopedKind(r.Kind())) return "";
  return ns.empty() ? "default" : ns;
}

std::string OriginalNamespace(const Resource& r) {
  return r.previous_namespaces.empty() ? r.Namespace()
                                       : r.previous_namespaces.front();
}

// True if the shorter list is the end of the longer (both empty: true).
bool SameEnding(const std::vector<std::string>& a,
                const std::vector<std::string>& b) {
  const auto& shorter = a.size() <= b.size() ? a : b;
  const auto& longer = a.size() <= b.size() ? b : a;
  if (shorter.empty()) return longer.empty();
  size_t diff = longer.size() - shorter.size();
  for (size_t i = 0; i < shorter.size(); ++i) {
    if (longer[i + diff] != shorter[i]) return false;
  }
  return true;
}

// What the selection needs of each resource, computed once.
struct Info {
  std::string kind, group, ns, effective_ns, original_effective_ns;
  bool cluster = false;
};

class Fixer {
 public:
  explicit Fixer(const std::vector<Resource>& snapshot) : all_(snapshot) {
    info_.reserve(all_.size());
    for (const Resource& r : all_) {
      Info i;
      i.kind = r.Kind();
      i.group = r.Group();
      i.ns = r.Namespace();
      i.cluster = IsClusterScopedKind(i.kind);
      i.effective_ns = EffectiveNamespace(r, i.ns);
      i.original_effective_ns = EffectiveNamespace(r, OriginalNamespace(r));
      info_.push_back(std::move(i));
    }
  }

  absl::Status Fix(Resource* referrer) {
    std::string kind = referrer->Kind();
    std::string group = referrer->Group();
    referrer_ = referrer;
    visible_.clear();
    bool computed = false;
    for (const Spec& spec : Specs()) {
      if (kind != spec.referrer_kind) continue;
      if (spec.referrer_group != nullptr && group != spec.referrer_group) {
        continue;
      }
      spec_ = &spec;
      computed_ = &computed;
      absl::Status status;
      Walk(&referrer->obj, spec.path, 0, &status);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

 private:
  // kustomize: the resources a referrer could possibly name.
  void ComputeVisible() {
    const Resource& r = *referrer_;
    bool cluster = IsClusterScopedKind(r.Kind());
    if (cluster) {
      for (size_t i = 0; i < all_.size(); ++i) visible_.push_back(i);
      return;
    }
    absl::flat_hash_set<std::string> subject_ns;
    if (r.Kind() == "RoleBinding") {
      if (const Value* subjects = r.obj.Get("subjects");
          subjects != nullptr && subjects->IsList()) {
        for (const Value& s : subjects->list) {
          std::string ns = s.StringAt({"namespace"});
          if (!ns.empty()) subject_ns.insert(ns);
        }
      }
    }
    std::string mine = EffectiveNamespace(r, r.Namespace());
    for (size_t i = 0; i < all_.size(); ++i) {
      const Info& t = info_[i];
      if (t.cluster || t.effective_ns == mine || subject_ns.contains(t.ns)) {
        visible_.push_back(i);
      }
    }
  }

  void Walk(Value* v, const std::vector<std::string>& path, size_t i,
            absl::Status* status) {
    if (!status->ok() || v == nullptr) return;
    if (i == path.size()) {
      Set(v, status);
      return;
    }
    if (v->IsList()) {
      for (Value& item : v->list) Walk(&item, path, i, status);
      return;
    }
    if (!v->IsMap()) return;
    Walk(v->GetMutable(path[i]), path, i + 1, status);
  }

  void Set(Value* v, absl::Status* status) {
    if (!*computed_) {
      ComputeVisible();
      *computed_ = true;
    }
    if (v->IsString()) {
      SetScalar(v, status);
    } else if (v->IsMap()) {
      SetMapping(v, status);
    } else if (v->IsList()) {
      for (Value& item : v->list) {
        if (item.IsString()) SetScalar(&item, status);
        if (item.IsMap()) SetMapping(&item, status);
        if (!status->ok()) return;
      }
    }
  }

  void SetScalar(Value* v, absl::Status* status) {
    absl::StatusOr<const Resource*> r = Select(v->text, visible_, false);
    if (!r.ok()) {
      *status = r.status();
      return;
    }
    if (*r != nullptr) v->text = (*r)->Name();
  }

  void SetMapping(Value* v, absl::Status* status) {
    Value* name = v->GetMutable("name");
    if (name == nullptr || !name->IsString()) return;
    std::vector<size_t> candidates = visible_;
    if (const Value* ns = v->Get("namespace"); ns != nullptr) {
      std::string want = ns->ScalarText();
      std::vector<size_t> by_original, by_current;
      for (size_t i : visible_) {
        if (info_[i].original_effective_ns == want) by_original.push_back(i);
        if (info_[i].effective_ns == want) by_current.push_back(i);
      }
      candidates = by_original.empty() ? by_current : by_original;
    }
    absl::StatusOr<const Resource*> r = Select(name->text, candidates, true);
    if (!r.ok()) {
      *status = r.status();
      return;
    }
    if (*r == nullptr) return;
    std::string new_ns = (*r)->Namespace();
    if ((*r)->Name() == name->text && new_ns.empty()) return;
    name->text = (*r)->Name();
    if (!new_ns.empty()) v->At("namespace") = Value::Str(new_ns);
  }

  absl::StatusOr<const Resource*> Select(const std::string& old_name,
                                         const std::vector<size_t>& from,
                                         bool with_namespace) {
    const Spec& spec = *spec_;
    std::string role_kind, role_group;
    bool role_ref = spec.path.size() == 2 && spec.path[0] == "roleRef";
    if (role_ref) {
      role_kind = referrer_->obj.StringAt({"roleRef", "kind"});
      role_group = referrer_->obj.StringAt({"roleRef", "apiGroup"});
    }
    bool referrer_cluster = IsClusterScopedKind(referrer_->Kind());
    std::string mine = EffectiveNamespace(*referrer_, referrer_->Namespace());
    std::vector<const Resource*> c;
    for (size_t i : from) {
      const Info& t = info_[i];
      if (t.kind != spec.referral_kind || !all_[i].HadName(old_name)) continue;
      if (spec.referral_group != nullptr && t.group != spec.referral_group) {
        continue;
      }
      if (role_ref && (t.kind != role_kind || t.group != role_group)) continue;
      if (!referrer_cluster && !t.cluster && t.kind != "ServiceAccount" &&
          t.effective_ns != mine) {
        continue;
      }
      c.push_back(&all_[i]);
    }
    if (c.size() == 1) return c[0];
    std::vector<const Resource*> same;
    for (const Resource* t : c) {
      if (SameEnding(t->prefixes, referrer_->prefixes) &&
          SameEnding(t->suffixes, referrer_->suffixes)) {
        same.push_back(t);
      }
    }
    if (same.empty()) return nullptr;
    for (const Resource* t : same) {
      if (t->Name() != same[0]->Name() ||
          (with_namespace && t->Namespace() != same[0]->Namespace())) {
        std::vector<std::string> ids;
        for (const Resource* x : same) ids.push_back(x->IdString());
        return absl::InvalidArgumentError(absl::StrCat(
            referrer_->origin, ": ", referrer_->IdString(), " field '",
            absl::StrJoin(spec.path, "/"), "': found multiple possible ",
            "referrals: ", absl::StrJoin(ids, ", ")));
      }
    }
    return same[0];
  }

  const std::vector<Resource>& all_;
  std::vector<Info> info_;
  Resource* referrer_ = nullptr;
  const Spec* spec_ = nullptr;
  bool* computed_ = nullptr;
  std::vector<size_t> visible_;
};

}  // namespace

absl::Status FixNameReferences(std::vector<Resource>* resources) {
  const std::vector<Resource> snapshot = *resources;
  Fixer fixer(snapshot);
  for (Resource& r : *resources) {
    absl::Status s = fixer.Fix(&r);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace kiln::render
