// One Kubernetes object being rendered, with the identity kustomize tracks
// for it (group/version/kind, name, namespace, and every earlier name so
// patches and references written against old names still find it).
#ifndef KILN_ENGINE_RENDER_RESOURCE_H_
#define KILN_ENGINE_RENDER_RESOURCE_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/render/value.h"

namespace kiln::render {

// Places (paths to label maps; list items as "#N") where one transformer
// run wrote one label key: kustomize shares the value among them (see
// AddLabels in transforms.cc).
struct LabelShare {
  std::string key;
  std::vector<std::vector<std::string>> paths;
};

struct Resource {
  Value obj;
  std::string origin;  // file (or generator) it came from, for messages
  // Earlier names, oldest first (the original name is names.front()).
  std::vector<std::string> previous_names;
  std::vector<std::string> previous_namespaces;
  bool generated = false;      // by configMapGenerator / secretGenerator
  bool needs_hash = false;     // generated and the name suffix is pending
  std::string hash_base_name;  // the generator's name, before prefix/suffix
  // namePrefix / nameSuffix values applied, innermost kustomization first
  // (kustomize uses them to pick among same-named referral candidates).
  std::vector<std::string> prefixes, suffixes;
  std::vector<LabelShare> label_shares;

  std::string ApiVersion() const { return obj.StringAt({"apiVersion"}); }
  std::string Kind() const { return obj.StringAt({"kind"}); }
  std::string Group() const;
  std::string Version() const;
  std::string Name() const { return obj.StringAt({"metadata", "name"}); }
  std::string Namespace() const {
    return obj.StringAt({"metadata", "namespace"});
  }
  // Renames, remembering the old name.
  void SetName(const std::string& name);
  void SetNamespace(const std::string& ns);
  // True if `name` is the current or any earlier name.
  bool HadName(absl::string_view name) const;
  bool HadNamespace(absl::string_view ns) const;
  // "Kind.version.group/name.namespace" in kustomize's style, for messages.
  std::string IdString() const;
};

// True for kinds known to be cluster-scoped (Namespace, ClusterRole, CRDs...).
bool IsClusterScopedKind(absl::string_view kind);

// True for built-in Kubernetes kinds whose lists merge by key in a strategic
// merge patch (custom resources replace lists wholesale).
bool IsBuiltinKind(absl::string_view kind);

// Sorts like kustomize's default (legacy) order: a fixed kind order first
// (Namespace, ..., Deployment, ...), then group_version_kind, namespace, name.
void SortLegacy(std::vector<Resource>* resources);

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_RESOURCE_H_
