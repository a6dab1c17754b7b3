#include "kube/resources.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kiln::kube {

namespace {
std::string Prefix(const std::string& api_version) {
  return absl::StrContains(api_version, '/') ? "/apis/" + api_version
                                             : "/api/" + api_version;
}
}  // namespace

std::string ApiResource::CollectionPath(const std::string& ns) const {
  if (!namespaced || ns.empty())
    return absl::StrCat(Prefix(api_version), "/", plural);
  return absl::StrCat(Prefix(api_version), "/namespaces/", ns, "/", plural);
}

std::string ApiResource::ObjectPath(const std::string& ns,
                                    const std::string& name) const {
  return absl::StrCat(CollectionPath(ns), "/", name);
}

absl::StatusOr<ApiResource> ResourceMapper::Find(const std::string& api_version,
                                                 const std::string& kind) {
  if (api_version.empty() || kind.empty()) {
    return absl::InvalidArgumentError("an object needs apiVersion and kind");
  }
  {
    MutexLock l(&mu_);
    auto gv = known_.find(api_version);
    if (gv != known_.end()) {
      auto it = gv->second.find(kind);
      if (it == gv->second.end()) {
        return absl::NotFoundError(absl::StrCat("the cluster serves no kind ",
                                                kind, " in ", api_version));
      }
      return it->second;
    }
  }
  absl::StatusOr<nlohmann::json> list = client_->Get(Prefix(api_version));
  if (!list.ok()) {
    if (absl::IsNotFound(list.status())) {
      return absl::NotFoundError(absl::StrCat(
          "the cluster serves no API ", api_version, " (for kind ", kind, ")"));
    }
    return list.status();
  }
  std::map<std::string, ApiResource> kinds;
  if (list->contains("resources") && (*list)["resources"].is_array()) {
    for (const nlohmann::json& r : (*list)["resources"]) {
      std::string name = r.value("name", "");
      if (name.empty() || absl::StrContains(name, '/'))
        continue;  // subresources
      ApiResource res;
      res.api_version = api_version;
      res.kind = r.value("kind", "");
      res.plural = name;
      res.namespaced = r.value("namespaced", true);
      kinds.emplace(res.kind, res);
    }
  }
  MutexLock l(&mu_);
  auto& slot = known_[api_version];
  slot = std::move(kinds);
  auto it = slot.find(kind);
  if (it == slot.end()) {
    return absl::NotFoundError(
        absl::StrCat("the cluster serves no kind ", kind, " in ", api_version));
  }
  return it->second;
}

}  // namespace kiln::kube
