#include "kube/pod_shape.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace {

bool IsAlnum(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c));
}

// [A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?, at most 63 characters.
bool IsQualifiedNamePart(absl::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool IsDnsLabel(absl::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return false;
    }
  }
  return s.front() != '-' && s.back() != '-';
}

bool IsDnsSubdomain(absl::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    absl::string_view part =
        s.substr(start, dot == absl::string_view::npos ? s.npos : dot - start);
    if (!IsDnsLabel(part)) return false;
    if (dot == absl::string_view::npos) return true;
    start = dot + 1;
  }
}

absl::Status Invalid(absl::string_view what, absl::string_view value,
                     absl::string_view rule) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " '", value, "' is invalid: ", rule));
}

absl::Status Prefixed(absl::string_view field, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", s.message()));
}

}  // namespace

absl::Status ValidateLabelKey(absl::string_view key) {
  absl::string_view name = key;
  size_t slash = key.find('/');
  if (slash != absl::string_view::npos) {
    absl::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (!IsDnsSubdomain(prefix)) {
      return Invalid("key", key,
                     "the prefix before '/' must be a lowercase DNS "
                     "subdomain of at most 253 characters");
    }
  }
  if (!IsQualifiedNamePart(name)) {
    return Invalid("key", key,
                   "the name must be 1-63 characters of [-_.A-Za-z0-9], "
                   "alphanumeric at both ends");
  }
  return absl::OkStatus();
}

absl::Status ValidateLabelValue(absl::string_view value) {
  if (value.empty() || IsQualifiedNamePart(value)) return absl::OkStatus();
  return Invalid("value", value,
                 "must be empty or 1-63 characters of [-_.A-Za-z0-9], "
                 "alphanumeric at both ends");
}

absl::Status ValidateUserLabelKey(absl::string_view key) {
  if (absl::Status s = ValidateLabelKey(key); !s.ok()) return s;
  if (absl::StartsWith(key, "kiln.dev/") ||
      key == "app.kubernetes.io/managed-by") {
    return Invalid("key", key, "kiln sets this key itself");
  }
  return absl::OkStatus();
}

absl::Status ValidateDnsSubdomain(absl::string_view name) {
  if (IsDnsSubdomain(name)) return absl::OkStatus();
  return Invalid("name", name,
                 "must be a lowercase DNS subdomain ([a-z0-9-] labels "
                 "separated by '.', at most 253 characters)");
}

absl::Status ValidateResourceName(absl::string_view name) {
  if (name == "cpu" || name == "memory" || name == "ephemeral-storage") {
    return absl::OkStatus();
  }
  if (absl::StartsWith(name, "hugepages-") &&
      ValidateQuantity(name.substr(10)).ok()) {
    return absl::OkStatus();
  }
  size_t slash = name.find('/');
  if (slash != absl::string_view::npos && ValidateLabelKey(name).ok()) {
    return absl::OkStatus();
  }
  return Invalid("resource", name,
                 "must be cpu, memory, ephemeral-storage, hugepages-<size> "
                 "or a domain-qualified name (example.com/gpu)");
}

absl::Status ValidateQuantity(absl::string_view q) {
  // [+]?(digits[.digits]|.digits)(suffix)?; suffix: Ki..Ei, n u m k M G T
  // P E, or an exponent e[+-]digits.
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < q.size() &&
           absl::ascii_isdigit(static_cast<unsigned char>(q[i])))
      ++i;
    return i - start;
  };
  auto bad = [&] {
    return Invalid("quantity", q,
                   "must be a non-negative number with an optional suffix "
                   "(m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, e<exp>)");
  };
  if (q.empty() || q.size() > 64) return bad();
  if (q[i] == '+') ++i;
  size_t whole = digits();
  size_t frac = 0;
  if (i < q.size() && q[i] == '.') {
    ++i;
    frac = digits();
  }
  if (whole + frac == 0) return bad();
  absl::string_view suffix = q.substr(i);
  if (suffix.empty()) return absl::OkStatus();
  static const char* const kSuffixes[] = {"Ki", "Mi", "Gi", "Ti", "Pi",
                                          "Ei", "n",  "u",  "m",  "k",
                                          "M",  "G",  "T",  "P",  "E"};
  for (const char* s : kSuffixes) {
    if (suffix == s) return absl::OkStatus();
  }
  if (suffix[0] == 'e' || suffix[0] == 'E') {
    i += 1;
    if (i < q.size() && (q[i] == '+' || q[i] == '-')) ++i;
    if (digits() > 0 && i == q.size()) return absl::OkStatus();
  }
  return bad();
}

absl::Status ValidateToleration(const v1::PodToleration& t) {
  const std::string& op = t.operator_();
  if (op != "" && op != "Equal" && op != "Exists") {
    return Invalid("operator", op, "must be Exists or Equal");
  }
  const std::string& effect = t.effect();
  if (effect != "" && effect != "NoSchedule" && effect != "PreferNoSchedule" &&
      effect != "NoExecute") {
    return Invalid("effect", effect,
                   "must be NoSchedule, PreferNoSchedule or NoExecute");
  }
  if (t.key().empty()) {
    if (op != "Exists") {
      return absl::InvalidArgumentError(
          "a toleration without a key must have operator Exists");
    }
  } else if (absl::Status s = ValidateLabelKey(t.key()); !s.ok()) {
    return s;
  }
  if (op == "Exists" && !t.value().empty()) {
    return absl::InvalidArgumentError(
        "a toleration with operator Exists must not have a value");
  }
  if (absl::Status s = ValidateLabelValue(t.value()); !s.ok()) return s;
  if (t.has_toleration_seconds() && effect != "NoExecute") {
    return absl::InvalidArgumentError(
        "toleration_seconds needs effect NoExecute");
  }
  return absl::OkStatus();
}

absl::Status ValidateAffinityJson(absl::string_view json) {
  nlohmann::json parsed =
      nlohmann::json::parse(json.begin(), json.end(), nullptr,
                            /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return absl::InvalidArgumentError("affinity must be a mapping");
  }
  for (const auto& [key, value] : parsed.items()) {
    if (key != "nodeAffinity" && key != "podAffinity" &&
        key != "podAntiAffinity") {
      return absl::InvalidArgumentError(absl::StrCat(
          "affinity: unknown field '", key,
          "' (known: nodeAffinity, podAffinity, podAntiAffinity)"));
    }
    if (!value.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("affinity: ", key, " must be a mapping"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePodShape(const v1::PodShape& shape) {
  for (const auto& [k, v] : shape.node_selector()) {
    if (absl::Status s = ValidateLabelKey(k); !s.ok())
      return Prefixed("node_selector", s);
    if (absl::Status s = ValidateLabelValue(v); !s.ok())
      return Prefixed("node_selector", s);
  }
  for (int i = 0; i < shape.tolerations_size(); ++i) {
    if (absl::Status s = ValidateToleration(shape.tolerations(i)); !s.ok())
      return Prefixed(absl::StrCat("tolerations[", i, "]"), s);
  }
  if (!shape.affinity_json().empty()) {
    if (absl::Status s = ValidateAffinityJson(shape.affinity_json()); !s.ok())
      return s;
  }
  if (!shape.service_account().empty()) {
    if (absl::Status s = ValidateDnsSubdomain(shape.service_account()); !s.ok())
      return Prefixed("service_account", s);
  }
  for (const auto& name : shape.image_pull_secrets()) {
    if (absl::Status s = ValidateDnsSubdomain(name); !s.ok())
      return Prefixed("image_pull_secrets", s);
  }
  for (const auto& [k, v] : shape.labels()) {
    if (absl::Status s = ValidateUserLabelKey(k); !s.ok())
      return Prefixed("labels", s);
    if (absl::Status s = ValidateLabelValue(v); !s.ok())
      return Prefixed("labels", s);
  }
  for (const auto& [k, v] : shape.annotations()) {
    if (absl::Status s = ValidateUserLabelKey(k); !s.ok())
      return Prefixed("annotations", s);
    if (v.size() > 64 * 1024) {
      return absl::InvalidArgumentError(absl::StrCat(
          "annotations: value of '", k, "' is longer than 65536 bytes"));
    }
  }
  for (const auto* map : {&shape.requests(), &shape.limits()}) {
    const char* field = map == &shape.requests() ? "requests" : "limits";
    for (const auto& [k, v] : *map) {
      if (absl::Status s = ValidateResourceName(k); !s.ok())
        return Prefixed(field, s);
      if (absl::Status s = ValidateQuantity(v); !s.ok())
        return Prefixed(field, s);
    }
  }
  if (!shape.runtime_class().empty()) {
    if (absl::Status s = ValidateDnsSubdomain(shape.runtime_class()); !s.ok())
      return Prefixed("runtime_class", s);
  }
  return absl::OkStatus();
}

v1::PodShape MergePodShapes(const v1::PodShape& base,
                            const v1::PodShape& overlay) {
  v1::PodShape out = base;
  for (const auto& [k, v] : overlay.node_selector())
    (*out.mutable_node_selector())[k] = v;
  for (const auto& t : overlay.tolerations()) *out.add_tolerations() = t;
  if (!overlay.affinity_json().empty())
    out.set_affinity_json(overlay.affinity_json());
  if (!overlay.service_account().empty())
    out.set_service_account(overlay.service_account());
  for (const auto& s : overlay.image_pull_secrets()) {
    bool seen = false;
    for (const auto& have : out.image_pull_secrets()) seen |= have == s;
    if (!seen) out.add_image_pull_secrets(s);
  }
  for (const auto& [k, v] : overlay.labels()) (*out.mutable_labels())[k] = v;
  for (const auto& [k, v] : overlay.annotations())
    (*out.mutable_annotations())[k] = v;
  for (const auto& [k, v] : overlay.requests())
    (*out.mutable_requests())[k] = v;
  for (const auto& [k, v] : overlay.limits()) (*out.mutable_limits())[k] = v;
  if (!overlay.runtime_class().empty())
    out.set_runtime_class(overlay.runtime_class());
  return out;
}

}  // namespace kiln
