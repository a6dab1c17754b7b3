#include "engine/factory/desired.h"

#include <algorithm>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/factory/loader.h"

namespace kiln::factory {
namespace {

using nlohmann::json;

constexpr char kRbac[] = "rbac.authorization.k8s.io";

json StringMap(const google::protobuf::Map<std::string, std::string>& m) {
  json out = json::object();
  for (const auto& [k, v] : m) out[k] = v;
  return out;
}

const ObjectKind& KindNamed(absl::string_view kind) {
  for (const ObjectKind& k : ManagedKinds()) {
    if (kind == k.kind) return k;
  }
  std::abort();  // only called with the kinds listed
}

class Builder {
 public:
  explicit Builder(const source::Secrets& secrets) : secrets_(secrets) {}

  absl::Status Factory(const v1::Factory& f, const std::string& parent) {
    for (const v1::FactoryNamespace& ns : f.namespaces()) {
      absl::Status s = Namespace(f, parent, ns);
      if (!s.ok()) return s;
    }
    ClusterRbac(f, parent);
    for (const v1::Factory& child : f.factories()) {
      absl::Status s = Factory(child, f.name());
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  std::vector<DesiredObject> Take() {
    std::stable_sort(objects_.begin(), objects_.end(),
                     [](const DesiredObject& a, const DesiredObject& b) {
                       return a.kind < b.kind;  // ManagedKinds() order
                     });
    return std::move(objects_);
  }

  // The preview template's objects in namespace `name` (no Namespace
  // object: the environment lifecycle makes it).
  absl::Status Preview(const v1::Factory& f, const std::string& parent,
                       const std::string& name) {
    return Contents(f, parent, name, f.previews());
  }

 private:
  json Labels(const v1::Factory& f, const std::string& parent) {
    json labels = {{kFactoryLabel, f.name()}, {kManagedByLabel, "kiln"}};
    if (!parent.empty()) labels[kParentLabel] = parent;
    return labels;
  }

  void Add(const v1::Factory& f, const std::string& parent,
           absl::string_view kind_name, const std::string& ns,
           const std::string& name, json body) {
    const ObjectKind& kind = KindNamed(kind_name);
    DesiredObject o;
    o.kind = &kind;
    o.ns = kind.namespaced ? ns : "";
    o.name = name;
    o.factory = f.name();
    json metadata = {{"name", name}, {"labels", Labels(f, parent)}};
    if (kind.namespaced) metadata["namespace"] = ns;
    o.manifest = {{"apiVersion", kind.api_version},
                  {"kind", kind.kind},
                  {"metadata", metadata}};
    for (auto& [k, v] : body.items()) o.manifest[k] = v;
    objects_.push_back(std::move(o));
  }

  absl::Status Namespace(const v1::Factory& f, const std::string& parent,
                         const v1::FactoryNamespace& ns) {
    const std::string name = NamespaceName(f, ns);
    Add(f, parent, "Namespace", "", name, json::object());
    json& labels = objects_.back().manifest["metadata"]["labels"];
    std::vector<std::string> keys;
    for (const auto& [k, v] : ns.labels()) {
      labels[k] = v;
      keys.push_back(k);
    }
    std::sort(keys.begin(), keys.end());
    objects_.back().manifest["metadata"]["annotations"] = {
        {kLabelsAnnotation, absl::StrJoin(keys, ",")}};
    if (ns.kind() == v1::FactoryNamespace::PERMANENT) {
      labels[kEnvironmentKindLabel] = "permanent";
    }
    return Contents(f, parent, name, ns);
  }

  // Namespace `name`'s objects as `ns` declares them.
  absl::Status Contents(const v1::Factory& f, const std::string& parent,
                        const std::string& name,
                        const v1::FactoryNamespace& ns) {
    for (const v1::FactoryServiceAccount& sa : ns.service_accounts()) {
      Add(f, parent, "ServiceAccount", name, sa.name(), json::object());
    }
    for (const v1::FactoryRole& role : ns.roles()) {
      Add(f, parent, "Role", name, role.name(), {{"rules", Rules(role)}});
    }
    for (const v1::FactoryRoleBinding& b : ns.role_bindings()) {
      Add(f, parent, "RoleBinding", name, b.name(),
          Binding(f, name, b, "Role"));
    }
    if (ns.quota().hard_size() > 0) {
      Add(f, parent, "ResourceQuota", name, "kiln-quota",
          {{"spec", {{"hard", StringMap(ns.quota().hard())}}}});
    }
    const v1::FactoryLimits& l = ns.limits();
    if (l.default__size() + l.default_request_size() + l.max_size() +
            l.min_size() >
        0) {
      json item = {{"type", "Container"}};
      if (l.default__size() > 0) item["default"] = StringMap(l.default_());
      if (l.default_request_size() > 0) {
        item["defaultRequest"] = StringMap(l.default_request());
      }
      if (l.max_size() > 0) item["max"] = StringMap(l.max());
      if (l.min_size() > 0) item["min"] = StringMap(l.min());
      Add(f, parent, "LimitRange", name, "kiln-limits",
          {{"spec", {{"limits", json::array({item})}}}});
    }
    if (ns.has_network()) {
      const v1::FactoryNetwork& n = ns.network();
      Add(f, parent, "NetworkPolicy", name, "kiln-default-deny",
          {{"spec",
            {{"podSelector", json::object()},
             {"policyTypes", json::array({"Ingress"})}}}});
      json from = json::array();
      if (n.allow_same_namespace()) {
        from.push_back({{"podSelector", json::object()}});
      }
      for (const std::string& suffix : n.allow_from()) {
        from.push_back({{"namespaceSelector",
                         {{"matchLabels",
                           {{"kubernetes.io/metadata.name",
                             absl::StrCat(f.name(), "-", suffix)}}}}}});
      }
      if (n.allow_from_labels_size() > 0) {
        from.push_back({{"namespaceSelector",
                         {{"matchLabels", StringMap(n.allow_from_labels())}}}});
      }
      if (!from.empty()) {
        Add(f, parent, "NetworkPolicy", name, "kiln-allow",
            {{"spec",
              {{"podSelector", json::object()},
               {"policyTypes", json::array({"Ingress"})},
               {"ingress", json::array({{{"from", from}}})}}}});
      }
    }
    for (const v1::FactoryConfigMap& cm : ns.config_maps()) {
      Add(f, parent, "ConfigMap", name, cm.name(),
          {{"data", StringMap(cm.data())}});
    }
    for (const v1::FactorySecret& s : ns.secrets()) {
      json data = json::object();
      for (const auto& [key, secret_name] : s.data()) {
        absl::StatusOr<std::string> value = secrets_.Get(secret_name);
        if (!value.ok()) {
          return absl::NotFoundError(absl::StrCat(
              "Secret ", name, "/", s.name(), " key '", key,
              "': no kiln secret named '", secret_name, "' (--secrets-dir)"));
        }
        data[key] = absl::Base64Escape(*value);
      }
      Add(f, parent, "Secret", name, s.name(),
          {{"type", s.type().empty() ? "Opaque" : s.type()}, {"data", data}});
    }
    return absl::OkStatus();
  }

  static json Rules(const v1::FactoryRole& role) {
    json rules = json::array();
    for (const v1::FactoryPolicyRule& r : role.rules()) {
      json rule = {{"apiGroups", r.api_groups()},
                   {"resources", r.resources()},
                   {"verbs", r.verbs()}};
      if (r.resource_names_size() > 0) {
        rule["resourceNames"] = r.resource_names();
      }
      rules.push_back(rule);
    }
    return rules;
  }

  // roleRef and subjects; a subject "SUFFIX/NAME" is in namespace
  // FACTORY-SUFFIX, a bare "NAME" in `ns`.
  static json Binding(const v1::Factory& f, const std::string& ns,
                      const v1::FactoryRoleBinding& b, const char* role_kind) {
    json subjects = json::array();
    for (const std::string& ref : b.service_accounts()) {
      std::vector<std::string> parts = absl::StrSplit(ref, '/');
      std::string sa_ns = ns, sa = ref;
      if (parts.size() == 2) {
        sa_ns = absl::StrCat(f.name(), "-", parts[0]);
        sa = parts[1];
      }
      subjects.push_back(
          {{"kind", "ServiceAccount"}, {"name", sa}, {"namespace", sa_ns}});
    }
    return {{"roleRef",
             {{"apiGroup", kRbac}, {"kind", role_kind}, {"name", b.role()}}},
            {"subjects", subjects}};
  }

  void ClusterRbac(const v1::Factory& f, const std::string& parent) {
    for (const v1::FactoryRole& role : f.cluster_roles()) {
      Add(f, parent, "ClusterRole", "", role.name(), {{"rules", Rules(role)}});
    }
    for (const v1::FactoryRoleBinding& b : f.cluster_role_bindings()) {
      Add(f, parent, "ClusterRoleBinding", "", b.name(),
          Binding(f, "", b, "ClusterRole"));
    }
  }

  const source::Secrets& secrets_;
  std::vector<DesiredObject> objects_;
};

const v1::Factory* FindIn(const v1::Factory& f, const std::string& parent,
                          absl::string_view name, std::string* parent_out) {
  if (f.name() == name) {
    *parent_out = parent;
    return &f;
  }
  for (const v1::Factory& child : f.factories()) {
    const v1::Factory* found = FindIn(child, f.name(), name, parent_out);
    if (found != nullptr) return found;
  }
  return nullptr;
}

void CollectScopes(const v1::Factory& f, const std::string& parent,
                   std::vector<FactoryScope>* out) {
  FactoryScope scope;
  scope.name = f.name();
  scope.parent = parent;
  for (const v1::Factory& child : f.factories()) {
    scope.children.push_back(child.name());
  }
  out->push_back(std::move(scope));
  for (const v1::Factory& child : f.factories()) {
    CollectScopes(child, f.name(), out);
  }
}

}  // namespace

const std::vector<ObjectKind>& ManagedKinds() {
  static const auto* kinds = new std::vector<ObjectKind>{
      {"Namespace", "v1", "namespaces", false, false},
      {"ServiceAccount", "v1", "serviceaccounts", true, false},
      {"Role", "rbac.authorization.k8s.io/v1", "roles", true, false},
      {"RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings", true,
       false},
      {"ResourceQuota", "v1", "resourcequotas", true, false},
      {"LimitRange", "v1", "limitranges", true, false},
      {"NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", true, false},
      {"ConfigMap", "v1", "configmaps", true, false},
      {"Secret", "v1", "secrets", true, true},
      {"ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", false,
       false},
      {"ClusterRoleBinding", "rbac.authorization.k8s.io/v1",
       "clusterrolebindings", false, false},
  };
  return *kinds;
}

const ObjectKind& NamespaceKind() { return ManagedKinds().front(); }

std::string CollectionPath(const ObjectKind& kind, const std::string& ns) {
  std::string api_version = kind.api_version;
  std::string prefix = api_version.find('/') == std::string::npos
                           ? absl::StrCat("/api/", api_version)
                           : absl::StrCat("/apis/", api_version);
  if (!kind.namespaced) return absl::StrCat(prefix, "/", kind.plural);
  return absl::StrCat(prefix, "/namespaces/", ns, "/", kind.plural);
}

std::string ObjectPath(const ObjectKind& kind, const std::string& ns,
                       const std::string& name) {
  return absl::StrCat(CollectionPath(kind, ns), "/", name);
}

bool IsNamespace(const ObjectKind& kind) { return &kind == &NamespaceKind(); }

std::string DesiredObject::Describe() const {
  return kind->namespaced ? absl::StrCat(kind->kind, " ", ns, "/", name)
                          : absl::StrCat(kind->kind, " ", name);
}

std::vector<FactoryScope> FactoryScopes(const v1::Factory& root) {
  std::vector<FactoryScope> out;
  CollectScopes(root, "", &out);
  return out;
}

absl::StatusOr<std::vector<DesiredObject>> BuildDesired(
    const v1::Factory& root, const source::Secrets& secrets) {
  Builder builder(secrets);
  absl::Status s = builder.Factory(root, "");
  if (!s.ok()) return s;
  return builder.Take();
}

const v1::Factory* FindFactory(const v1::Factory& root, absl::string_view name,
                               std::string* parent) {
  std::string unused;
  return FindIn(root, "", name, parent != nullptr ? parent : &unused);
}

absl::StatusOr<std::vector<DesiredObject>> BuildPreviewObjects(
    const v1::Factory& root, absl::string_view factory, const std::string& ns,
    const source::Secrets& secrets) {
  std::string parent;
  const v1::Factory* f = FindFactory(root, factory, &parent);
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("no factory '", factory, "'"));
  }
  if (!f->has_previews()) {
    return absl::FailedPreconditionError(
        absl::StrCat("factory '", factory, "' declares no previews"));
  }
  Builder builder(secrets);
  absl::Status s = builder.Preview(*f, parent, ns);
  if (!s.ok()) return s;
  return builder.Take();
}

}  // namespace kiln::factory
