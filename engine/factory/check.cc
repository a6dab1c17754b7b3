// The checks of a decoded factory: what the API server would refuse, and
// what kiln could not reconcile, reported before anything is sent.
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/factory/decode.h"
#include "engine/factory/loader.h"
#include "engine/factory/quantity.h"
#include "kube/names.h"

namespace kiln::factory::internal {
namespace {

using pipeline::Diagnostic;
using pipeline::Field;
using pipeline::Index;
using pipeline::MakeDiagnostic;
using pipeline::SourceMap;

// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
bool IsDnsSubdomain(absl::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (absl::string_view part : absl::StrSplit(name, '.')) {
    if (!kube::IsDnsLabel(part)) return false;
  }
  return true;
}

// A label value: "" or <= 63 of [A-Za-z0-9._-], alphanumeric at both ends.
bool IsLabelValue(absl::string_view v) {
  if (v.empty()) return true;
  if (v.size() > 63 || !isalnum(static_cast<unsigned char>(v.front())) ||
      !isalnum(static_cast<unsigned char>(v.back()))) {
    return false;
  }
  for (char c : v) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' &&
        c != '.') {
      return false;
    }
  }
  return true;
}

// A label key: [PREFIX/]NAME, PREFIX a DNS subdomain, NAME a label value.
bool IsLabelKey(absl::string_view k) {
  size_t slash = k.find('/');
  absl::string_view name = k;
  if (slash != absl::string_view::npos) {
    if (!IsDnsSubdomain(k.substr(0, slash))) return false;
    name = k.substr(slash + 1);
  }
  return !name.empty() && IsLabelValue(name);
}

// A ConfigMap/Secret data key: [-._a-zA-Z0-9]+, at most 253.
bool IsDataKey(absl::string_view k) {
  if (k.empty() || k.size() > 253 || k == "." || k == "..") return false;
  for (char c : k) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' &&
        c != '.') {
      return false;
    }
  }
  return true;
}

class Checker {
 public:
  Checker(const SourceMap* map, const source::Secrets* secrets,
          std::vector<Diagnostic>* errors)
      : map_(map), secrets_(secrets), errors_(errors) {}

  void Factory(const v1::Factory& f, const std::string& path) {
    if (f.name().empty()) {
      Error(path, "a factory needs a name");
    } else if (!kube::IsDnsLabel(f.name())) {
      Error(Field(path, "name"),
            absl::StrCat("factory name '", f.name(),
                         "' is not a DNS-1123 label (lowercase letters, "
                         "digits and '-', at most 63)"));
    } else if (!factories_.insert(f.name()).second) {
      Error(Field(path, "name"),
            absl::StrCat("duplicate factory '", f.name(), "'"));
    }
    std::set<std::string> suffixes;
    for (const v1::FactoryNamespace& ns : f.namespaces()) {
      suffixes.insert(ns.suffix());
    }
    for (int i = 0; i < f.namespaces_size(); ++i) {
      Namespace(f, f.namespaces(i), Index(Field(path, "namespaces"), i),
                suffixes, /*preview=*/false);
    }
    if (f.has_previews()) {
      Namespace(f, f.previews(), Field(path, "previews"), suffixes,
                /*preview=*/true);
    }
    ClusterRbac(f, path, suffixes);
    for (int i = 0; i < f.factories_size(); ++i) {
      Factory(f.factories(i), Index(Field(path, "factories"), i));
    }
  }

 private:
  void Error(const std::string& path, const std::string& message) {
    errors_->push_back(
        MakeDiagnostic(map_, path, absl::StrCat(path, ": ", message)));
  }

  // `name` of an object of `kind` at `path`; a subdomain, unique per kind.
  void ObjectName(const std::string& path, const std::string& kind,
                  const std::string& name, std::set<std::string>* seen) {
    std::string at = Field(path, "name");
    if (name.empty()) {
      Error(path, absl::StrCat("a ", kind, " needs a name"));
    } else if (!IsDnsSubdomain(name)) {
      Error(at, absl::StrCat(kind, " name '", name,
                             "' is not a DNS-1123 subdomain (lowercase "
                             "letters, digits, '-' and '.')"));
    } else if (!seen->insert(name).second) {
      Error(at, absl::StrCat("duplicate ", kind, " '", name, "'"));
    }
  }

  void Labels(const std::string& path,
              const google::protobuf::Map<std::string, std::string>& labels) {
    for (const auto& [k, v] : labels) {
      std::string at = Field(path, k);
      if (!IsLabelKey(k)) {
        Error(at, absl::StrCat("'", k, "' is not a label key"));
      } else if (absl::StartsWith(k, "kiln.dev/") ||
                 k == "app.kubernetes.io/managed-by") {
        Error(at, absl::StrCat("label '", k, "' is set by kiln"));
      }
      if (!IsLabelValue(v)) {
        Error(at, absl::StrCat("'", v,
                               "' is not a label value (at most 63 "
                               "of letters, digits, '-', '_', '.')"));
      }
    }
  }

  void Quantities(const std::string& path,
                  const google::protobuf::Map<std::string, std::string>& m) {
    for (const auto& [resource, q] : m) {
      std::string at = Field(path, resource);
      if (!IsLabelKey(resource)) {
        Error(at, absl::StrCat("'", resource, "' is not a resource name"));
      }
      if (!ParseQuantity(q).has_value()) {
        Error(at, absl::StrCat("'", q,
                               "' is not a Kubernetes quantity (e.g. 500m, "
                               "2, 1.5, 512Mi, 2Gi, 1G)"));
      }
    }
  }

  // Cluster roles (names unique in the cluster, i.e. across the tree) and
  // their bindings to "SUFFIX/NAME" service accounts of the factory.
  void ClusterRbac(const v1::Factory& f, const std::string& path,
                   const std::set<std::string>& suffixes) {
    std::set<std::string> roles;
    for (int i = 0; i < f.cluster_roles_size(); ++i) {
      const v1::FactoryRole& role = f.cluster_roles(i);
      std::string p = Index(Field(path, "cluster_roles"), i);
      ObjectName(p, "cluster role", role.name(), &cluster_roles_);
      roles.insert(role.name());
      Rules(p, role);
    }
    for (int i = 0; i < f.cluster_role_bindings_size(); ++i) {
      const v1::FactoryRoleBinding& b = f.cluster_role_bindings(i);
      std::string p = Index(Field(path, "cluster_role_bindings"), i);
      ObjectName(p, "cluster role binding", b.name(), &cluster_bindings_);
      if (roles.count(b.role()) == 0) {
        Error(Field(p, "role"), absl::StrCat("no cluster role '", b.role(),
                                             "' in factory '", f.name(), "'"));
      }
      if (b.service_accounts_size() == 0) {
        Error(p, "a cluster role binding needs service_accounts");
      }
      for (int s = 0; s < b.service_accounts_size(); ++s) {
        const std::string& ref = b.service_accounts(s);
        std::vector<std::string> parts = absl::StrSplit(ref, '/');
        if (parts.size() != 2 || suffixes.count(parts[0]) == 0 ||
            !IsDnsSubdomain(parts[1])) {
          Error(Index(Field(p, "service_accounts"), s),
                absl::StrCat("'", ref,
                             "' is not SUFFIX/NAME of a namespace of "
                             "factory '",
                             f.name(), "'"));
        }
      }
    }
  }

  void Rules(const std::string& p, const v1::FactoryRole& role) {
    if (role.rules_size() == 0) Error(p, "a role needs rules");
    for (int r = 0; r < role.rules_size(); ++r) {
      const v1::FactoryPolicyRule& rule = role.rules(r);
      if (rule.verbs_size() == 0 || rule.resources_size() == 0) {
        Error(Index(Field(p, "rules"), r), "a rule needs verbs and resources");
      }
    }
  }

  // A namespace declaration, or (`preview`) the preview template, which
  // has no suffix or kind and whose bare names refer to the preview itself.
  void Namespace(const v1::Factory& f, const v1::FactoryNamespace& ns,
                 const std::string& path, const std::set<std::string>& suffixes,
                 bool preview) {
    std::string full = NamespaceName(f, ns);
    std::string where = preview ? "the previews template"
                                : absl::StrCat("namespace '", full, "'");
    if (preview) {
      // Decoding refuses suffix and kind in a template.
    } else if (ns.suffix().empty()) {
      Error(path, "a namespace needs a suffix (the namespace is NAME-SUFFIX)");
    } else if (!kube::IsDnsLabel(full)) {
      Error(Field(path, "suffix"),
            absl::StrCat("namespace '", full,
                         "' is not a DNS-1123 label (lowercase letters, "
                         "digits and '-', at most 63)"));
    } else if (!namespaces_.insert(full).second) {
      Error(Field(path, "suffix"),
            absl::StrCat("duplicate namespace '", full, "'"));
    }
    Labels(Field(path, "labels"), ns.labels());
    Quantities(Field(Field(path, "quota"), "hard"), ns.quota().hard());
    std::string limits = Field(path, "limits");
    Quantities(Field(limits, "default"), ns.limits().default_());
    Quantities(Field(limits, "default_request"), ns.limits().default_request());
    Quantities(Field(limits, "max"), ns.limits().max());
    Quantities(Field(limits, "min"), ns.limits().min());

    std::string network = Field(path, "network");
    for (int i = 0; i < ns.network().allow_from_size(); ++i) {
      const std::string& s = ns.network().allow_from(i);
      if (suffixes.count(s) == 0) {
        Error(Index(Field(network, "allow_from"), i),
              absl::StrCat("no namespace with suffix '", s, "' in factory '",
                           f.name(), "'"));
      }
    }
    Labels(Field(network, "allow_from_labels"),
           ns.network().allow_from_labels());

    std::set<std::string> accounts = {"default"};
    std::set<std::string> seen;
    for (int i = 0; i < ns.service_accounts_size(); ++i) {
      std::string p = Index(Field(path, "service_accounts"), i);
      const std::string& name = ns.service_accounts(i).name();
      ObjectName(p, "service account", name, &seen);
      accounts.insert(name);
    }
    seen.clear();
    for (int i = 0; i < ns.roles_size(); ++i) {
      std::string p = Index(Field(path, "roles"), i);
      ObjectName(p, "role", ns.roles(i).name(), &seen);
      Rules(p, ns.roles(i));
    }
    std::set<std::string> roles = seen;
    seen.clear();
    for (int i = 0; i < ns.role_bindings_size(); ++i) {
      const v1::FactoryRoleBinding& b = ns.role_bindings(i);
      std::string p = Index(Field(path, "role_bindings"), i);
      ObjectName(p, "role binding", b.name(), &seen);
      if (roles.count(b.role()) == 0) {
        Error(Field(p, "role"),
              absl::StrCat("no role '", b.role(), "' in ", where));
      }
      if (b.service_accounts_size() == 0) {
        Error(p, "a role binding needs service_accounts");
      }
      for (int s = 0; s < b.service_accounts_size(); ++s) {
        const std::string& ref = b.service_accounts(s);
        std::vector<std::string> parts = absl::StrSplit(ref, '/');
        std::string at = Index(Field(p, "service_accounts"), s);
        if (parts.size() == 1) {
          if (accounts.count(ref) == 0) {
            Error(at,
                  absl::StrCat("no service account '", ref, "' in ", where));
          }
        } else if (parts.size() != 2 || suffixes.count(parts[0]) == 0 ||
                   !IsDnsSubdomain(parts[1])) {
          Error(at, absl::StrCat("'", ref,
                                 "' is neither NAME nor SUFFIX/NAME of a "
                                 "namespace of factory '",
                                 f.name(), "'"));
        }
      }
    }
    seen.clear();
    for (int i = 0; i < ns.config_maps_size(); ++i) {
      std::string p = Index(Field(path, "config_maps"), i);
      ObjectName(p, "config map", ns.config_maps(i).name(), &seen);
      for (const auto& [k, v] : ns.config_maps(i).data()) {
        if (!IsDataKey(k)) {
          Error(Field(Field(p, "data"), k),
                absl::StrCat("'", k, "' is not a config map key"));
        }
      }
    }
    seen.clear();
    for (int i = 0; i < ns.secrets_size(); ++i) {
      std::string p = Index(Field(path, "secrets"), i);
      ObjectName(p, "secret", ns.secrets(i).name(), &seen);
      for (const auto& [k, name] : ns.secrets(i).data()) {
        std::string at = Field(Field(p, "data"), k);
        if (!IsDataKey(k)) {
          Error(at, absl::StrCat("'", k, "' is not a secret key"));
        }
        if (secrets_ != nullptr && !secrets_->Get(name).ok()) {
          Error(at, absl::StrCat("no kiln secret named '", name,
                                 "' (--secrets-dir)"));
        }
      }
    }
  }

  const SourceMap* map_;
  const source::Secrets* secrets_;  // null: names not checked
  std::vector<Diagnostic>* errors_;
  std::set<std::string> factories_;
  std::set<std::string> namespaces_;
  std::set<std::string> cluster_roles_, cluster_bindings_;
};

}  // namespace

void CheckFactory(const v1::Factory& factory, const std::string& path,
                  const SourceMap* map, const source::Secrets* secrets,
                  std::vector<Diagnostic>* errors) {
  Checker(map, secrets, errors).Factory(factory, path);
}

}  // namespace kiln::factory::internal
