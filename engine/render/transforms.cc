#include "engine/render/transforms.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"

namespace kiln::render {
namespace {

void Visit(Value* v, const std::vector<std::string>& segs, size_t i,
           bool create, const std::function<void(Value*)>& fn) {
  if (i == segs.size()) {
    fn(v);
    return;
  }
  if (v->IsList()) {
    for (Value& item : v->list) Visit(&item, segs, i, create, fn);
    return;
  }
  if (!v->IsMap()) {
    if (!(create && v->IsNull())) return;
  }
  Value* next = v->GetMutable(segs[i]);
  if (next == nullptr || next->IsNull()) {
    if (!create) return;
    next = &v->At(segs[i]);
    *next = Value::EmptyMap();
  }
  Visit(next, segs, i + 1, create, fn);
}

struct FieldSpec {
  const char* kind;  // "" for any kind
  const char* path;
  bool create;
};

const std::vector<FieldSpec>& SelectorSpecs() {
  static const auto* specs = new std::vector<FieldSpec>{
      {"Service", "spec/selector", true},
      {"ReplicationController", "spec/selector", true},
      {"Deployment", "spec/selector/matchLabels", true},
      {"ReplicaSet", "spec/selector/matchLabels", true},
      {"DaemonSet", "spec/selector/matchLabels", true},
      {"StatefulSet", "spec/selector/matchLabels", true},
      {"Job", "spec/selector/matchLabels", false},
      {"CronJob", "spec/jobTemplate/spec/selector/matchLabels", false},
      {"PodDisruptionBudget", "spec/selector/matchLabels", false},
      {"NetworkPolicy", "spec/podSelector/matchLabels", false},
      {"NetworkPolicy", "spec/ingress/from/podSelector/matchLabels", false},
      {"NetworkPolicy", "spec/egress/to/podSelector/matchLabels", false},
  };
  return *specs;
}

const std::vector<FieldSpec>& TemplateSpecs() {
  static const auto* specs = new std::vector<FieldSpec>{
      {"ReplicationController", "spec/template/metadata/labels", true},
      {"Deployment", "spec/template/metadata/labels", true},
      {"ReplicaSet", "spec/template/metadata/labels", true},
      {"DaemonSet", "spec/template/metadata/labels", true},
      {"StatefulSet", "spec/template/metadata/labels", true},
      {"StatefulSet", "spec/volumeClaimTemplates/metadata/labels", true},
      {"Job", "spec/template/metadata/labels", true},
      {"CronJob", "spec/jobTemplate/metadata/labels", true},
      {"CronJob", "spec/jobTemplate/spec/template/metadata/labels", true},
  };
  return *specs;
}

const std::vector<FieldSpec>& AffinitySpecs() {
  static const auto* specs = [] {
    auto* s = new std::vector<FieldSpec>();
    for (const char* kind :
         {"Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"}) {
      for (const char* path :
           {"spec/template/spec/affinity/podAffinity/"
            "preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/"
            "labelSelector/matchLabels",
            "spec/template/spec/affinity/podAffinity/"
            "requiredDuringSchedulingIgnoredDuringExecution/labelSelector/"
            "matchLabels",
            "spec/template/spec/affinity/podAntiAffinity/"
            "preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/"
            "labelSelector/matchLabels",
            "spec/template/spec/affinity/podAntiAffinity/"
            "requiredDuringSchedulingIgnoredDuringExecution/labelSelector/"
            "matchLabels",
            "spec/template/spec/topologySpreadConstraints/labelSelector/"
            "matchLabels"}) {
        s->push_back({kind, path, false});
      }
    }
    return s;
  }();
  return *specs;
}

void SetPairs(const StringPairs& pairs, Value* target) {
  if (!target->IsMap()) *target = Value::EmptyMap();
  for (const auto& [k, v] : pairs) target->map[k] = Value::Str(v);
}

void ApplySpecs(const std::vector<FieldSpec>& specs, const StringPairs& pairs,
                Resource* r) {
  std::string kind = r->Kind();
  for (const FieldSpec& spec : specs) {
    if (spec.kind[0] != '\0' && kind != spec.kind) continue;
    VisitPath(&r->obj, spec.path, spec.create,
              [&](Value* v) { SetPairs(pairs, v); });
  }
}

// Like Visit, but also passes the concrete path (list items as "#N").
void VisitConcrete(
    Value* v, const std::vector<std::string>& segs, size_t i, bool create,
    std::vector<std::string>* at,
    const std::function<void(Value*, const std::vector<std::string>&)>& fn) {
  if (i == segs.size()) {
    fn(v, *at);
    return;
  }
  if (v->IsList()) {
    for (size_t n = 0; n < v->list.size(); ++n) {
      at->push_back("#" + std::to_string(n));
      VisitConcrete(&v->list[n], segs, i, create, at, fn);
      at->pop_back();
    }
    return;
  }
  if (!v->IsMap()) {
    if (!(create && v->IsNull())) return;
  }
  Value* next = v->GetMutable(segs[i]);
  if (next == nullptr || next->IsNull()) {
    if (!create) return;
    next = &v->At(segs[i]);
    *next = Value::EmptyMap();
  }
  at->push_back(segs[i]);
  VisitConcrete(next, segs, i + 1, create, at, fn);
  at->pop_back();
}

Value* AtConcrete(Value* v, const std::vector<std::string>& path) {
  for (const std::string& seg : path) {
    if (v == nullptr) return nullptr;
    if (seg[0] == '#') {
      size_t n = std::stoul(seg.substr(1));
      if (!v->IsList() || n >= v->list.size()) return nullptr;
      v = &v->list[n];
    } else {
      v = v->GetMutable(seg);
    }
  }
  return v;
}

// One label key of a resource, set at several places by one transformer
// run. kustomize (kyaml) writes one shared value node to every place a run
// creates the key, and a later run that finds the key present overwrites
// that node in place: so a later `labels:`/`commonLabels:` value for the key
// reaches every place the earlier run wrote it (selectors and templates
// too), whatever the later run's own field specs. A JSON patch on the
// resource re-creates its nodes and ends the sharing.
void SetLabel(const std::string& key, const std::string& value,
              const std::vector<std::string>& map_path, Resource* r,
              LabelShare* fresh) {
  Value* map = AtConcrete(&r->obj, map_path);
  if (map == nullptr) return;
  if (!map->IsMap()) *map = Value::EmptyMap();
  Value* existing = map->GetMutable(key);
  if (existing == nullptr) {
    map->map[key] = Value::Str(value);
    fresh->paths.push_back(map_path);
    return;
  }
  Value old = *existing;
  *existing = Value::Str(value);
  for (const LabelShare& share : r->label_shares) {
    if (share.key != key) continue;
    bool member = false;
    for (const auto& p : share.paths) member = member || p == map_path;
    if (!member) continue;
    for (const auto& p : share.paths) {
      Value* other = AtConcrete(&r->obj, p);
      if (other == nullptr || !other->IsMap()) continue;
      Value* v = other->GetMutable(key);
      if (v != nullptr && *v == old) *v = Value::Str(value);
    }
  }
}

void ApplyLabelSpecs(const std::vector<FieldSpec>& specs,
                     const std::string& key, const std::string& value,
                     Resource* r, LabelShare* fresh) {
  std::string kind = r->Kind();
  for (const FieldSpec& spec : specs) {
    if (spec.kind[0] != '\0' && kind != spec.kind) continue;
    std::vector<std::string> segs = absl::StrSplit(spec.path, '/');
    std::vector<std::string> at;
    std::vector<std::vector<std::string>> found;
    VisitConcrete(
        &r->obj, segs, 0, spec.create, &at,
        [&](Value*, const std::vector<std::string>& p) { found.push_back(p); });
    for (const auto& p : found) SetLabel(key, value, p, r, fresh);
  }
}

bool Unaffixed(const std::string& kind) {
  return kind == "CustomResourceDefinition" || kind == "APIService" ||
         kind == "Namespace";
}

// "name[:tag][@digest]" split into its parts.
void SplitImage(const std::string& image, std::string* name, std::string* tag,
                std::string* digest) {
  std::string rest = image;
  size_t at = rest.find('@');
  *digest = at == std::string::npos ? "" : rest.substr(at + 1);
  if (at != std::string::npos) rest = rest.substr(0, at);
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos &&
      (slash == std::string::npos || colon > slash)) {
    *tag = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
  } else {
    tag->clear();
  }
  *name = rest;
}

bool UpdateImage(const ImageRule& rule, Value* image) {
  if (!image->IsString()) return false;
  std::string name, tag, digest;
  SplitImage(image->text, &name, &tag, &digest);
  if (name != rule.name) return false;
  if (!rule.new_name.empty()) name = rule.new_name;
  if (rule.has_tag) {
    tag = rule.new_tag;
    digest.clear();
  }
  if (!rule.digest.empty()) {
    digest = rule.digest;
    if (!rule.has_tag) tag.clear();
  }
  std::string out = name;
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  image->text = out;
  return true;
}

}  // namespace

void VisitPath(Value* v, const std::string& path, bool create,
               const std::function<void(Value*)>& fn) {
  std::vector<std::string> segs = absl::StrSplit(path, '/');
  Visit(v, segs, 0, create, fn);
}

void SetNamespace(const std::string& ns, std::vector<Resource>* resources) {
  if (ns.empty()) return;
  for (Resource& r : *resources) {
    std::string kind = r.Kind();
    if (kind == "Namespace") {
      r.SetName(ns);
      continue;
    }
    if (!IsClusterScopedKind(kind)) r.SetNamespace(ns);
    // (Cluster)RoleBinding subjects: only those named `default` move here;
    // the others follow their ServiceAccount by name reference.
    if (kind == "RoleBinding" || kind == "ClusterRoleBinding") {
      Value* subjects = r.obj.GetMutable("subjects");
      if (subjects == nullptr || !subjects->IsList()) continue;
      for (Value& s : subjects->list) {
        if (!s.IsMap() || s.StringAt({"name"}) != "default") continue;
        s.At("namespace") = Value::Str(ns);
      }
    }
  }
}

void AddNameAffixes(const std::string& prefix, const std::string& suffix,
                    std::vector<Resource>* resources) {
  if (prefix.empty() && suffix.empty()) return;
  for (Resource& r : *resources) {
    if (Unaffixed(r.Kind())) continue;
    r.SetName(prefix + r.Name() + suffix);
    if (!prefix.empty()) r.prefixes.push_back(prefix);
    if (!suffix.empty()) r.suffixes.push_back(suffix);
  }
}

void AddLabels(const StringPairs& labels, bool selectors, bool templates,
               std::vector<Resource>* resources) {
  if (labels.empty()) return;
  static const std::vector<FieldSpec> meta = {{"", "metadata/labels", true}};
  for (Resource& r : *resources) {
    for (const auto& [key, value] : labels) {
      LabelShare fresh;
      fresh.key = key;
      ApplyLabelSpecs(meta, key, value, &r, &fresh);
      if (selectors) {
        ApplyLabelSpecs(SelectorSpecs(), key, value, &r, &fresh);
        ApplyLabelSpecs(AffinitySpecs(), key, value, &r, &fresh);
      }
      if (selectors || templates) {
        ApplyLabelSpecs(TemplateSpecs(), key, value, &r, &fresh);
      }
      if (fresh.paths.size() > 1) r.label_shares.push_back(std::move(fresh));
    }
  }
}

void AddAnnotations(const StringPairs& annotations,
                    std::vector<Resource>* resources) {
  if (annotations.empty()) return;
  static const std::vector<FieldSpec> specs = {
      {"", "metadata/annotations", true},
      {"ReplicationController", "spec/template/metadata/annotations", true},
      {"Deployment", "spec/template/metadata/annotations", true},
      {"ReplicaSet", "spec/template/metadata/annotations", true},
      {"DaemonSet", "spec/template/metadata/annotations", true},
      {"StatefulSet", "spec/template/metadata/annotations", true},
      {"Job", "spec/template/metadata/annotations", true},
      {"CronJob", "spec/jobTemplate/metadata/annotations", true},
      {"CronJob", "spec/jobTemplate/spec/template/metadata/annotations", true},
  };
  for (Resource& r : *resources) ApplySpecs(specs, annotations, &r);
}

int SetImage(const ImageRule& rule, std::vector<Resource>* resources) {
  static const char* paths[] = {
      "spec/containers/image",
      "spec/initContainers/image",
      "spec/template/spec/containers/image",
      "spec/template/spec/initContainers/image",
      "spec/jobTemplate/spec/template/spec/containers/image",
      "spec/jobTemplate/spec/template/spec/initContainers/image",
  };
  int matched = 0;
  for (Resource& r : *resources) {
    for (const char* path : paths) {
      VisitPath(&r.obj, path, false,
                [&](Value* v) { matched += UpdateImage(rule, v) ? 1 : 0; });
    }
  }
  return matched;
}

void SetReplicas(const std::string& name, const Value& count,
                 std::vector<Resource>* resources) {
  for (Resource& r : *resources) {
    std::string kind = r.Kind();
    if (kind != "Deployment" && kind != "ReplicationController" &&
        kind != "ReplicaSet" && kind != "StatefulSet") {
      continue;
    }
    if (!r.HadName(name)) continue;
    r.obj.At("spec").At("replicas") = count;
  }
}

}  // namespace kiln::render
