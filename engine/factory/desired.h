// The objects a factory file declares, as Kubernetes manifests: every one
// labelled kiln.dev/factory=<its factory> and app.kubernetes.io/managed-by=
// kiln (a nested factory's also kiln.dev/parent-factory=<parent>), permanent
// namespaces kiln.dev/environment-kind=permanent. Secret values are read
// from kiln secrets here and live only in these manifests (never in a
// message).
#ifndef KILN_ENGINE_FACTORY_DESIRED_H_
#define KILN_ENGINE_FACTORY_DESIRED_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/source/secrets.h"
#include "kiln/v1/factory.pb.h"
#include "nlohmann/json.hpp"

namespace kiln::factory {

inline constexpr char kFactoryLabel[] = "kiln.dev/factory";
inline constexpr char kParentLabel[] = "kiln.dev/parent-factory";
inline constexpr char kManagedByLabel[] = "app.kubernetes.io/managed-by";
inline constexpr char kEnvironmentKindLabel[] = "kiln.dev/environment-kind";
// On a namespace: the keys of the labels the file sets (comma-separated,
// sorted), so that a label dropped from the file is removed from the
// namespace while labels others set are left alone.
inline constexpr char kLabelsAnnotation[] = "kiln.dev/labels";

// A resource kind a factory manages, in apply order (namespaces first).
struct ObjectKind {
  const char* kind;
  const char* api_version;
  const char* plural;
  bool namespaced;
  // Holds values that must not be printed (Secret).
  bool secret;
};
const std::vector<ObjectKind>& ManagedKinds();
const ObjectKind& NamespaceKind();
// The Namespace kind (the other cluster-scoped kinds are ClusterRole and
// ClusterRoleBinding).
bool IsNamespace(const ObjectKind& kind);

// The collection ("/api/v1/namespaces/NS/configmaps") and object paths.
std::string CollectionPath(const ObjectKind& kind, const std::string& ns);
std::string ObjectPath(const ObjectKind& kind, const std::string& ns,
                       const std::string& name);

struct DesiredObject {
  const ObjectKind* kind = nullptr;
  std::string ns;  // "" for a namespace
  std::string name;
  std::string factory;
  nlohmann::json manifest;
  // "kind ns/name" (or "Namespace name"), for messages and plans.
  std::string Describe() const;
};

// One factory of the file's tree.
struct FactoryScope {
  std::string name;
  std::string parent;                 // "" for the file's top factory
  std::vector<std::string> children;  // declared child factories
};

// Every factory of the tree, parents before children.
std::vector<FactoryScope> FactoryScopes(const v1::Factory& root);

// Every declared object, in apply order: namespaces, then the other kinds in
// ManagedKinds() order. The factory must have loaded cleanly (loader.h);
// NotFound naming a secret (never its value) if one has vanished since.
absl::StatusOr<std::vector<DesiredObject>> BuildDesired(
    const v1::Factory& root, const source::Secrets& secrets);

// The factory named `name` in `root`'s tree (null if none); *parent gets
// its parent's name ("" for the root).
const v1::Factory* FindFactory(const v1::Factory& root, absl::string_view name,
                               std::string* parent);

// The `previews` template of factory `factory` (of `root`'s tree) as the
// objects of preview namespace `ns`, in ManagedKinds() order, labelled as
// that factory's; no Namespace object. NotFound for an unknown factory,
// FailedPrecondition for one without previews, NotFound naming a missing
// secret (never a value).
absl::StatusOr<std::vector<DesiredObject>> BuildPreviewObjects(
    const v1::Factory& root, absl::string_view factory, const std::string& ns,
    const source::Secrets& secrets);

}  // namespace kiln::factory

#endif  // KILN_ENGINE_FACTORY_DESIRED_H_
