// YAML -> kiln.v1.Factory, one function per message.
#include "engine/factory/decode.h"

#include "absl/strings/str_cat.h"

namespace kiln::factory::internal {
namespace {

using pipeline::Field;
using pipeline::Index;
using pipeline::internal::DecodeList;
using pipeline::internal::Decoder;
using pipeline::internal::DecodeString;
using pipeline::internal::EnumNames;
using pipeline::internal::Fields;
using yaml::Node;

// `key: {name: value, ...}` into a proto map; each value recorded at
// PATH.key.name. A repeated name is already refused by the YAML parser.
void DecodeMap(Decoder* d, const Fields& f, absl::string_view key,
               google::protobuf::Map<std::string, std::string>* out) {
  const Node* n = f.Get(key);
  if (n == nullptr) return;
  std::string path = f.PathOf(key);
  if (!d->ExpectMapping(*n, path)) return;
  for (const auto& [k, v] : n->entries()) {
    std::string item = Field(path, k.value());
    std::string value;
    if (d->String(v, item, &value)) (*out)[k.value()] = value;
  }
}

// A sequence of mappings, each decoded by `one`.
template <typename T, typename Fn>
void DecodeEach(Decoder* d, const Fields& f, absl::string_view key,
                google::protobuf::RepeatedPtrField<T>* out, Fn one) {
  const Node* n = f.Get(key);
  if (n == nullptr) return;
  std::string path = f.PathOf(key);
  if (!d->ExpectSequence(*n, path)) return;
  for (size_t i = 0; i < n->items().size(); ++i) {
    one(n->items()[i], Index(path, i), out->Add());
  }
}

void DecodeRule(Decoder* d, const Node& node, const std::string& path,
                v1::FactoryPolicyRule* out) {
  Fields f(d, node, path,
           {"api_groups", "resources", "verbs", "resource_names"});
  DecodeList(d, f, "api_groups", out->mutable_api_groups());
  DecodeList(d, f, "resources", out->mutable_resources());
  DecodeList(d, f, "verbs", out->mutable_verbs());
  DecodeList(d, f, "resource_names", out->mutable_resource_names());
}

void DecodeRole(Decoder* d, const Node& n, const std::string& p,
                v1::FactoryRole* role) {
  Fields r(d, n, p, {"name", "rules"});
  DecodeString(d, r, "name", role->mutable_name());
  DecodeEach(d, r, "rules", role->mutable_rules(),
             [d](const Node& rn, const std::string& rp,
                 v1::FactoryPolicyRule* rule) { DecodeRule(d, rn, rp, rule); });
}

void DecodeRoleBinding(Decoder* d, const Node& n, const std::string& p,
                       v1::FactoryRoleBinding* b) {
  Fields r(d, n, p, {"name", "role", "service_accounts"});
  DecodeString(d, r, "name", b->mutable_name());
  DecodeString(d, r, "role", b->mutable_role());
  DecodeList(d, r, "service_accounts", b->mutable_service_accounts());
}

// A namespace declaration, or (`preview`) the preview template: the same
// fields but the suffix and kind.
void DecodeNamespace(Decoder* d, const Node& node, const std::string& path,
                     bool preview, v1::FactoryNamespace* out) {
  std::vector<std::string> fields = {
      "labels", "quota",         "limits",      "network", "service_accounts",
      "roles",  "role_bindings", "config_maps", "secrets"};
  if (!preview) fields.insert(fields.begin(), {"suffix", "kind"});
  Fields f(d, node, path, fields);
  DecodeString(d, f, "suffix", out->mutable_suffix());
  if (const Node* n = f.Get("kind")) {
    static const auto* kinds =
        new EnumNames{{"plain", v1::FactoryNamespace::KIND_UNSPECIFIED},
                      {"permanent", v1::FactoryNamespace::PERMANENT}};
    int kind = 0;
    if (d->Enum(*n, f.PathOf("kind"), *kinds, "namespace kind", &kind)) {
      out->set_kind(static_cast<v1::FactoryNamespace::Kind>(kind));
    }
  }
  DecodeMap(d, f, "labels", out->mutable_labels());
  if (const Node* n = f.Get("quota")) {
    Fields q(d, *n, f.PathOf("quota"), {"hard"});
    DecodeMap(d, q, "hard", out->mutable_quota()->mutable_hard());
  }
  if (const Node* n = f.Get("limits")) {
    Fields l(d, *n, f.PathOf("limits"),
             {"default", "default_request", "max", "min"});
    v1::FactoryLimits* limits = out->mutable_limits();
    DecodeMap(d, l, "default", limits->mutable_default_());
    DecodeMap(d, l, "default_request", limits->mutable_default_request());
    DecodeMap(d, l, "max", limits->mutable_max());
    DecodeMap(d, l, "min", limits->mutable_min());
  }
  if (const Node* n = f.Get("network")) {
    Fields w(d, *n, f.PathOf("network"),
             {"allow_same_namespace", "allow_from", "allow_from_labels"});
    v1::FactoryNetwork* network = out->mutable_network();
    pipeline::internal::DecodeBool(
        d, w, "allow_same_namespace",
        [network](bool v) { network->set_allow_same_namespace(v); });
    DecodeList(d, w, "allow_from", network->mutable_allow_from());
    DecodeMap(d, w, "allow_from_labels", network->mutable_allow_from_labels());
  }
  DecodeEach(
      d, f, "service_accounts", out->mutable_service_accounts(),
      [d](const Node& n, const std::string& p, v1::FactoryServiceAccount* sa) {
        if (n.IsScalar()) {  // shorthand: a bare name
          d->String(n, Field(p, "name"), sa->mutable_name());
          return;
        }
        Fields s(d, n, p, {"name"});
        DecodeString(d, s, "name", sa->mutable_name());
      });
  DecodeEach(d, f, "roles", out->mutable_roles(),
             [d](const Node& n, const std::string& p, v1::FactoryRole* role) {
               DecodeRole(d, n, p, role);
             });
  DecodeEach(d, f, "role_bindings", out->mutable_role_bindings(),
             [d](const Node& n, const std::string& p,
                 v1::FactoryRoleBinding* b) { DecodeRoleBinding(d, n, p, b); });
  DecodeEach(
      d, f, "config_maps", out->mutable_config_maps(),
      [d](const Node& n, const std::string& p, v1::FactoryConfigMap* cm) {
        Fields r(d, n, p, {"name", "data"});
        DecodeString(d, r, "name", cm->mutable_name());
        DecodeMap(d, r, "data", cm->mutable_data());
      });
  DecodeEach(d, f, "secrets", out->mutable_secrets(),
             [d](const Node& n, const std::string& p, v1::FactorySecret* s) {
               Fields r(d, n, p, {"name", "type", "data"});
               DecodeString(d, r, "name", s->mutable_name());
               DecodeString(d, r, "type", s->mutable_type());
               DecodeMap(d, r, "data", s->mutable_data());
             });
}

}  // namespace

void DecodeFactory(Decoder* d, const Node& node, const std::string& path,
                   v1::Factory* out) {
  Fields f(d, node, path,
           {"name", "namespaces", "previews", "cluster_roles",
            "cluster_role_bindings", "factories"});
  DecodeString(d, f, "name", out->mutable_name());
  DecodeEach(
      d, f, "namespaces", out->mutable_namespaces(),
      [d](const Node& n, const std::string& p, v1::FactoryNamespace* ns) {
        DecodeNamespace(d, n, p, /*preview=*/false, ns);
      });
  if (const Node* n = f.Get("previews")) {
    DecodeNamespace(d, *n, f.PathOf("previews"), /*preview=*/true,
                    out->mutable_previews());
  }
  DecodeEach(d, f, "cluster_roles", out->mutable_cluster_roles(),
             [d](const Node& n, const std::string& p, v1::FactoryRole* role) {
               DecodeRole(d, n, p, role);
             });
  DecodeEach(d, f, "cluster_role_bindings",
             out->mutable_cluster_role_bindings(),
             [d](const Node& n, const std::string& p,
                 v1::FactoryRoleBinding* b) { DecodeRoleBinding(d, n, p, b); });
  DecodeEach(d, f, "factories", out->mutable_factories(),
             [d](const Node& n, const std::string& p, v1::Factory* child) {
               DecodeFactory(d, n, p, child);
             });
}

}  // namespace kiln::factory::internal
