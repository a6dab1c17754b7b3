#include "engine/environments/guard.h"

#include "absl/strings/str_cat.h"
#include "engine/environments/target.h"

namespace kiln::environments {
namespace {

std::string Label(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains("metadata")) return "";
  const nlohmann::json& meta = obj["metadata"];
  if (!meta.is_object() || !meta.contains("labels")) return "";
  const nlohmann::json& labels = meta["labels"];
  if (!labels.is_object() || !labels.contains(key)) return "";
  return labels[key].is_string() ? labels[key].get<std::string>() : "";
}

}  // namespace

PermanentGuard::PermanentGuard(const v1::Pipeline& pipeline) {
  for (const char* ns :
       {"default", "kube-system", "kube-public", "kube-node-lease"}) {
    protected_[ns] = "a namespace of the cluster itself";
  }
  for (const v1::Environment& env : pipeline.environments()) {
    if (env.kind() != v1::PERMANENT) continue;
    const std::string& ns =
        env.namespace_().empty() ? env.name() : env.namespace_();
    protected_[ns] = absl::StrCat("permanent environment '", env.name(),
                                  "' of pipeline '", pipeline.name(), "'");
  }
}

void PermanentGuard::Protect(const std::string& ns, const std::string& why) {
  protected_.emplace(ns, why);
}

absl::Status PermanentGuard::CheckNotProtected(const std::string& ns) const {
  auto it = protected_.find(ns);
  if (it == protected_.end()) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("refusing to delete namespace '", ns, "': it is ",
                   it->second, " (permanent environments are never deleted)"));
}

absl::Status PermanentGuard::CheckDeletable(const std::string& ns,
                                            const std::string& app,
                                            const nlohmann::json* live) const {
  if (absl::Status s = CheckNotProtected(ns); !s.ok()) return s;
  if (live == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(
        "refusing to delete namespace '", ns, "' unseen (its labels decide)"));
  }
  std::string kind = Label(*live, kKindLabel);
  if (kind == "permanent") {
    return absl::PermissionDeniedError(absl::StrCat(
        "refusing to delete namespace '", ns, "': it is labelled ", kKindLabel,
        "=permanent (environment '", Label(*live, kEnvironmentLabel), "')"));
  }
  if (kind != "preview") {
    return absl::PermissionDeniedError(
        absl::StrCat("refusing to delete namespace '", ns,
                     "': kiln did not create it as a preview environment (no ",
                     kKindLabel, "=preview label)"));
  }
  std::string owner = Label(*live, kAppLabel);
  if (owner != LabelValue(app)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "refusing to delete namespace '", ns, "': it is a preview of app '",
        owner, "', not of '", app, "'"));
  }
  return absl::OkStatus();
}

}  // namespace kiln::environments
