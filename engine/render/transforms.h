// Kustomize's built-in transformers over a resource list, each applying one
// kustomization field the way kustomize v5.5.0 does, with its default field
// specs (which paths of which kinds hold names, labels, selectors, images).
// Pure functions over the list; thread-compatible.
#ifndef KILN_ENGINE_RENDER_TRANSFORMS_H_
#define KILN_ENGINE_RENDER_TRANSFORMS_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "engine/render/resource.h"

namespace kiln::render {

using StringPairs = std::vector<std::pair<std::string, std::string>>;

// Calls fn on each value at a '/'-separated path; lists met on the way are
// entered element by element. create: missing maps on the way (and the last
// one) are created.
void VisitPath(Value* v, const std::string& path, bool create,
               const std::function<void(Value*)>& fn);

// `namespace:` — sets metadata.namespace of namespaced objects, renames a
// Namespace object, moves RoleBinding subjects of ServiceAccounts that were
// in the old namespace (and any named `default`).
void SetNamespace(const std::string& ns, std::vector<Resource>* resources);

// `namePrefix:` / `nameSuffix:` (CRDs, APIService and Namespace excluded).
void AddNameAffixes(const std::string& prefix, const std::string& suffix,
                    std::vector<Resource>* resources);

// `commonLabels:` (selectors=true, templates=true) or one `labels:` entry.
void AddLabels(const StringPairs& labels, bool selectors, bool templates,
               std::vector<Resource>* resources);

// `commonAnnotations:`.
void AddAnnotations(const StringPairs& annotations,
                    std::vector<Resource>* resources);

struct ImageRule {
  std::string name, new_name, new_tag, digest;
  bool has_tag = false;  // newTag given (even "")
};
// One `images:` entry over containers and initContainers of every kind.
// Returns how many container images the rule matched.
int SetImage(const ImageRule& rule, std::vector<Resource>* resources);

// One `replicas:` entry (name matches current or earlier names).
void SetReplicas(const std::string& name, const Value& count,
                 std::vector<Resource>* resources);

// Points every reference (volumes, envFrom, env valueFrom, serviceAccountName,
// roleRef, subjects, ingress backends, ...) at the current name of the
// ConfigMap/Secret/ServiceAccount/... it named before renames (see
// name_reference.cc for the rules). Fails when a reference is ambiguous.
absl::Status FixNameReferences(std::vector<Resource>* resources);

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_TRANSFORMS_H_
