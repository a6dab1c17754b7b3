#include "engine/factory/apply.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kiln::factory {
namespace {

using nlohmann::json;

absl::Status Named(const Change& c, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(c.Describe(), ": ", s.message()));
}

absl::Status Write(kube::Client& client, const Change& c) {
  const std::string path = ObjectPath(*c.kind, c.ns, c.name);
  if (c.action == Action::kCreate) {
    absl::StatusOr<json> r =
        client.Create(CollectionPath(*c.kind, c.ns), c.desired);
    return r.ok() ? absl::OkStatus() : r.status();
  }
  // Update: write the factory's fields over the live object (keeping its
  // resourceVersion); on a conflict re-read once and retry.
  absl::Status last;
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<json> live = client.Get(path);
    if (!live.ok()) return live.status();
    absl::StatusOr<json> r =
        client.Replace(path, MergeDesired(*c.kind, *live, c.desired));
    if (r.ok()) return absl::OkStatus();
    last = r.status();
    if (kube::ApiReason(last) != "Conflict") return last;
  }
  return last;
}

}  // namespace

bool IsPermanentNamespace(const json& ns,
                          const std::set<std::string>& declared) {
  const json& metadata = ns.contains("metadata") ? ns["metadata"] : json();
  std::string name = metadata.is_object() ? metadata.value("name", "") : "";
  if (name.empty()) return true;  // unreadable: never delete
  if (declared.count(name)) return true;
  if (metadata.contains("labels") && metadata["labels"].is_object() &&
      metadata["labels"].value(kEnvironmentKindLabel, "") == "permanent") {
    return true;
  }
  for (const char* suffix : {"-test", "-stage", "-prod"}) {
    if (absl::EndsWith(name, suffix)) return true;
  }
  return false;
}

absl::Status DeleteNamespaceGuarded(kube::Client& client,
                                    const std::string& name,
                                    const std::set<std::string>& declared) {
  absl::StatusOr<json> live = client.Get(ObjectPath(NamespaceKind(), "", name));
  if (!live.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("refusing to delete namespace ", name,
                     ": cannot read it: ", live.status().message()));
  }
  if (IsPermanentNamespace(*live, declared)) {
    return absl::FailedPreconditionError(
        absl::StrCat("refusing to delete namespace ", name,
                     ": it is a permanent environment"));
  }
  return client.Delete(ObjectPath(NamespaceKind(), "", name));
}

absl::Status ApplyPlan(kube::Client& client, const Plan& plan,
                       const std::function<void(const std::string&)>& report) {
  for (const Change& c : plan.changes) {
    if (c.action != Action::kCreate && c.action != Action::kUpdate) continue;
    absl::Status s = Write(client, c);
    if (!s.ok()) return Named(c, s);
    report(absl::StrCat(c.action == Action::kCreate ? "created " : "updated ",
                        c.Describe()));
  }
  // Namespaced objects first, then namespaces (the plan lists them so).
  for (const Change& c : plan.changes) {
    if (c.action != Action::kDelete) continue;
    absl::Status s =
        IsNamespace(*c.kind)
            ? DeleteNamespaceGuarded(client, c.name, plan.permanent_namespaces)
            : client.Delete(ObjectPath(*c.kind, c.ns, c.name));
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
      return Named(c, s);
    }
    report(absl::StrCat("deleted ", c.Describe()));
  }
  return absl::OkStatus();
}

}  // namespace kiln::factory
