// A task's `pod:` (hints for a pod executor, proto kiln.v1.PodShape): each
// value checked with the Kubernetes API's rules (kube/pod_shape.h) at
// its own position, so a bad label key or toleration effect is
// FILE:LINE:COL before anything runs.
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/pipeline/decode.h"
#include "kube/pod_shape.h"
#include "nlohmann/json.hpp"

namespace kiln::pipeline::internal {
namespace {

// `check` on a scalar at `at`; reports its message there.
bool Check(Decoder* d, const Node& at, const std::string& path,
           const absl::Status& status) {
  if (status.ok()) return true;
  d->Error(at, absl::StrCat(path, ": ", status.message()));
  return false;
}

// {key: value} with each key and value checked.
void DecodeStringMap(
    Decoder* d, const Node& node, const std::string& path,
    const std::function<absl::Status(absl::string_view)>& check_key,
    const std::function<absl::Status(absl::string_view)>& check_value,
    google::protobuf::Map<std::string, std::string>* out) {
  if (!d->ExpectMapping(node, path)) return;
  for (const auto& [key_node, value_node] : node.entries()) {
    std::string key, value;
    if (!d->String(key_node, path, &key)) continue;
    std::string item = Field(path, key);
    if (!d->String(value_node, item, &value)) continue;
    if (!Check(d, key_node, path, check_key(key))) continue;
    if (check_value && !Check(d, value_node, item, check_value(value)))
      continue;
    (*out)[key] = value;
  }
}

// A YAML tree as JSON: plain scalars that read as integers or booleans
// become numbers and booleans (affinity has `weight: 100`).
nlohmann::json ToJson(const Node& node) {
  if (node.IsMapping()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : node.entries()) out[k.value()] = ToJson(v);
    return out;
  }
  if (node.IsSequence()) {
    nlohmann::json out = nlohmann::json::array();
    for (const Node& item : node.items()) out.push_back(ToJson(item));
    return out;
  }
  if (node.IsNull()) return nullptr;
  int64_t n;
  if (!node.quoted()) {
    if (absl::SimpleAtoi(node.value(), &n)) return n;
    if (node.value() == "true") return true;
    if (node.value() == "false") return false;
  }
  return node.value();
}

void DecodeTolerations(Decoder* d, const Node& node, const std::string& path,
                       v1::PodShape* out) {
  if (!d->ExpectSequence(node, path)) return;
  for (size_t i = 0; i < node.items().size(); ++i) {
    std::string item = Index(path, i);
    Fields f(d, node.items()[i], item,
             {"key", "operator", "value", "effect", "toleration_seconds"});
    if (!f.ok()) continue;
    v1::PodToleration t;
    DecodeString(d, f, "key", t.mutable_key());
    DecodeString(d, f, "operator", t.mutable_operator_());
    DecodeString(d, f, "value", t.mutable_value());
    DecodeString(d, f, "effect", t.mutable_effect());
    if (const Node* n = f.Get("toleration_seconds")) {
      uint64_t seconds = 0;
      if (d->Uint(*n, f.PathOf("toleration_seconds"),
                  std::numeric_limits<int32_t>::max(), &seconds)) {
        t.set_toleration_seconds(static_cast<int64_t>(seconds));
      }
    }
    if (Check(d, node.items()[i], item, ValidateToleration(t))) {
      *out->add_tolerations() = t;
    }
  }
}

}  // namespace

void DecodePodShape(Decoder* d, const Node& node, const std::string& path,
                    v1::PodShape* out) {
  Fields f(d, node, path,
           {"node_selector", "tolerations", "affinity", "service_account",
            "image_pull_secrets", "labels", "annotations", "requests", "limits",
            "runtime_class"});
  if (!f.ok()) return;
  if (const Node* n = f.Get("node_selector")) {
    // The architecture changes what a task computes: it belongs to the
    // executor, whose Platform() (and so every cache key) carries it.
    auto key_check = [](absl::string_view key) {
      if (key == "kubernetes.io/arch") {
        return absl::InvalidArgumentError(
            "kubernetes.io/arch is the executor's (it enters the cache key "
            "through its platform): configure it on the executor");
      }
      return ValidateLabelKey(key);
    };
    DecodeStringMap(d, *n, f.PathOf("node_selector"), key_check,
                    ValidateLabelValue, out->mutable_node_selector());
  }
  if (const Node* n = f.Get("tolerations")) {
    DecodeTolerations(d, *n, f.PathOf("tolerations"), out);
  }
  if (const Node* n = f.Get("affinity")) {
    std::string p = f.PathOf("affinity");
    if (d->ExpectMapping(*n, p)) {
      std::string json = ToJson(*n).dump();
      if (Check(d, *n, p, ValidateAffinityJson(json)))
        out->set_affinity_json(json);
    }
  }
  for (const char* key : {"service_account", "runtime_class"}) {
    if (const Node* n = f.Get(key)) {
      std::string value;
      if (d->String(*n, f.PathOf(key), &value) &&
          Check(d, *n, f.PathOf(key), ValidateDnsSubdomain(value))) {
        if (std::string(key) == "service_account") {
          out->set_service_account(value);
        } else {
          out->set_runtime_class(value);
        }
      }
    }
  }
  if (const Node* n = f.Get("image_pull_secrets")) {
    std::string p = f.PathOf("image_pull_secrets");
    if (d->ExpectSequence(*n, p)) {
      for (size_t i = 0; i < n->items().size(); ++i) {
        std::string value;
        const Node& item = n->items()[i];
        if (d->String(item, Index(p, i), &value) &&
            Check(d, item, Index(p, i), ValidateDnsSubdomain(value))) {
          out->add_image_pull_secrets(value);
        }
      }
    }
  }
  if (const Node* n = f.Get("labels")) {
    DecodeStringMap(d, *n, f.PathOf("labels"), ValidateUserLabelKey,
                    ValidateLabelValue, out->mutable_labels());
  }
  if (const Node* n = f.Get("annotations")) {
    DecodeStringMap(d, *n, f.PathOf("annotations"), ValidateUserLabelKey,
                    nullptr, out->mutable_annotations());
  }
  if (const Node* n = f.Get("requests")) {
    DecodeStringMap(d, *n, f.PathOf("requests"), ValidateResourceName,
                    ValidateQuantity, out->mutable_requests());
  }
  if (const Node* n = f.Get("limits")) {
    DecodeStringMap(d, *n, f.PathOf("limits"), ValidateResourceName,
                    ValidateQuantity, out->mutable_limits());
  }
}

}  // namespace kiln::pipeline::internal
