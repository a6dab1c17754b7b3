// FixNameReferences (transforms.h): kustomize's nameReference field specs.
#include <string>
#include <vector>

#include "engine/render/transforms.h"

namespace kiln::render {
namespace {

struct Reference {
  const char* referral_kind;  // the kind being named
  const char* referrer_kind;  // "" = any workload (path is under pod spec)
  const char* path;
};

const std::vector<Reference>& References() {
  static const auto* refs = new std::vector<Reference>{
      {"ConfigMap", "", "volumes/configMap/name"},
      {"ConfigMap", "", "volumes/projected/sources/configMap/name"},
      {"ConfigMap", "", "containers/env/valueFrom/configMapKeyRef/name"},
      {"ConfigMap", "", "initContainers/env/valueFrom/configMapKeyRef/name"},
      {"ConfigMap", "", "containers/envFrom/configMapRef/name"},
      {"ConfigMap", "", "initContainers/envFrom/configMapRef/name"},
      {"Secret", "", "volumes/secret/secretName"},
      {"Secret", "", "volumes/projected/sources/secret/name"},
      {"Secret", "", "containers/env/valueFrom/secretKeyRef/name"},
      {"Secret", "", "initContainers/env/valueFrom/secretKeyRef/name"},
      {"Secret", "", "containers/envFrom/secretRef/name"},
      {"Secret", "", "initContainers/envFrom/secretRef/name"},
      {"Secret", "", "imagePullSecrets/name"},
      {"Secret", "Ingress", "spec/tls/secretName"},
      {"ServiceAccount", "", "serviceAccountName"},
      {"PersistentVolumeClaim", "", "volumes/persistentVolumeClaim/claimName"},
      {"Service", "Ingress", "spec/rules/http/paths/backend/service/name"},
      {"Service", "Ingress", "spec/defaultBackend/service/name"},
      {"Service", "StatefulSet", "spec/serviceName"},
      {"PersistentVolume", "PersistentVolumeClaim", "spec/volumeName"},
      {"StorageClass", "PersistentVolumeClaim", "spec/storageClassName"},
      {"StorageClass", "StatefulSet",
       "spec/volumeClaimTemplates/spec/storageClassName"},
  };
  return *refs;
}

const char* PodSpecPath(const std::string& kind) {
  if (kind == "Pod") return "spec";
  if (kind == "Deployment" || kind == "ReplicaSet" || kind == "DaemonSet" ||
      kind == "StatefulSet" || kind == "Job" ||
      kind == "ReplicationController") {
    return "spec/template/spec";
  }
  if (kind == "CronJob") return "spec/jobTemplate/spec/template/spec";
  return nullptr;
}

// The current name of the `kind` object once called `old_name` in `ns`.
const Resource* FindReferral(const std::vector<Resource>& resources,
                             const std::string& kind,
                             const std::string& old_name,
                             const std::string& ns) {
  const Resource* found = nullptr;
  bool cluster = IsClusterScopedKind(kind);
  for (const Resource& r : resources) {
    if (r.Kind() != kind || !r.HadName(old_name)) continue;
    if (!cluster && !(r.Namespace() == ns || r.HadNamespace(ns))) continue;
    if (found != nullptr && found->Name() != r.Name()) {
      if (r.Namespace() == ns && found->Namespace() != ns) found = &r;
      continue;
    }
    if (found == nullptr) found = &r;
  }
  return found;
}

void Rename(const std::vector<Resource>& resources, const std::string& kind,
            const std::string& ns, Value* field) {
  if (!field->IsString()) return;
  const Resource* r = FindReferral(resources, kind, field->text, ns);
  if (r != nullptr) field->text = r->Name();
}

}  // namespace

void FixNameReferences(std::vector<Resource>* resources) {
  const std::vector<Resource> snapshot = *resources;
  for (Resource& r : *resources) {
    std::string kind = r.Kind();
    std::string ns = r.Namespace();
    const char* pod = PodSpecPath(kind);
    for (const Reference& ref : References()) {
      std::string path;
      if (ref.referrer_kind[0] == '\0') {
        if (pod == nullptr) continue;
        path = std::string(pod) + "/" + ref.path;
      } else {
        if (kind != ref.referrer_kind) continue;
        path = ref.path;
      }
      VisitPath(&r.obj, path, false,
                [&](Value* v) { Rename(snapshot, ref.referral_kind, ns, v); });
    }
    if (kind == "RoleBinding" || kind == "ClusterRoleBinding") {
      Value* role = r.obj.GetMutable("roleRef");
      if (role != nullptr && role->IsMap()) {
        std::string role_kind = role->StringAt({"kind"});
        Value* name = role->GetMutable("name");
        if (name != nullptr &&
            (role_kind == "Role" || role_kind == "ClusterRole")) {
          Rename(snapshot, role_kind, ns, name);
        }
      }
      Value* subjects = r.obj.GetMutable("subjects");
      if (subjects != nullptr && subjects->IsList()) {
        for (Value& s : subjects->list) {
          std::string sk = s.StringAt({"kind"});
          if (sk != "ServiceAccount" && sk != "User") continue;
          Value* name = s.GetMutable("name");
          if (name == nullptr) continue;
          std::string sns = s.StringAt({"namespace"});
          Rename(snapshot, "ServiceAccount", sns, name);
        }
      }
    }
    if (kind == "HorizontalPodAutoscaler") {
      Value* target = r.obj.PathMutable({"spec", "scaleTargetRef"});
      if (target != nullptr && target->IsMap()) {
        std::string tk = target->StringAt({"kind"});
        Value* name = target->GetMutable("name");
        if (name != nullptr &&
            (tk == "Deployment" || tk == "StatefulSet" || tk == "ReplicaSet")) {
          Rename(snapshot, tk, ns, name);
        }
      }
    }
  }
}

}  // namespace kiln::render
