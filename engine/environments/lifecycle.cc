#include "engine/environments/lifecycle.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kube/names.h"

namespace kiln::environments {
namespace {

using nlohmann::json;

absl::Time Now(const LifecycleOptions& o) {
  return o.now == absl::InfinitePast() ? absl::Now() : o.now;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

bool Terminating(const json& ns) {
  return (ns.contains("metadata") &&
          ns["metadata"].contains("deletionTimestamp")) ||
         (ns.contains("status") && ns["status"].is_object() &&
          ns["status"].value("phase", "") == "Terminating");
}

std::string Annotation(const json& obj, const char* key) {
  if (!obj.contains("metadata") || !obj["metadata"].contains("annotations"))
    return "";
  const json& a = obj["metadata"]["annotations"];
  return a.is_object() && a.contains(key) && a[key].is_string()
             ? a[key].get<std::string>()
             : "";
}

std::string LabelOf(const json& obj, const char* key) {
  if (!obj.contains("metadata") || !obj["metadata"].contains("labels"))
    return "";
  const json& l = obj["metadata"]["labels"];
  return l.is_object() && l.contains(key) && l[key].is_string()
             ? l[key].get<std::string>()
             : "";
}

json Metadata(const Target& target, const LifecycleOptions& options) {
  json meta = {{"labels", json::object()}};
  for (const auto& [k, v] : target.Labels()) meta["labels"][k] = v;
  if (!target.permanent()) {
    meta["annotations"] = {
        {kExpiresAnnotation, Rfc3339(Now(options) + target.ttl)}};
  }
  return meta;
}

// Deletes `ns` (after the guard) and waits until it is gone.
absl::StatusOr<DestroyResult> DeleteAndWait(kube::Client& client,
                                            const std::string& ns,
                                            const std::string& app,
                                            const PermanentGuard& guard,
                                            const LifecycleOptions& options) {
  const std::string path = kube::NamespacePath(ns);
  absl::StatusOr<json> live = client.Get(path);
  if (absl::IsNotFound(live.status())) return DestroyResult::kAbsent;
  if (!live.ok()) return live.status();
  if (absl::Status s = guard.CheckDeletable(ns, app, &*live); !s.ok()) {
    return s;
  }
  if (!Terminating(*live)) {
    kube::DeleteOptions del;
    del.propagation_policy = "Background";
    absl::Status s = client.Delete(path, del);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  }
  const absl::Time deadline = absl::Now() + options.destroy_timeout;
  while (true) {
    absl::StatusOr<json> now = client.Get(path);
    if (absl::IsNotFound(now.status())) return DestroyResult::kDeleted;
    if (!now.ok()) return now.status();
    if (options.cancelled && options.cancelled()) {
      return absl::CancelledError(absl::StrCat(
          "stopped waiting for namespace '", ns, "' to go (it is deleting)"));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("namespace '", ns, "' is still ",
                       (*now)["status"].value("phase", "present"), " after ",
                       absl::FormatDuration(options.destroy_timeout)));
    }
    absl::SleepFor(options.poll_interval);
  }
}

}  // namespace

absl::StatusOr<json> EnsureNamespace(kube::Client& client, const Target& target,
                                     const PermanentGuard& guard,
                                     const LifecycleOptions& options) {
  const std::string& ns = target.namespace_name;
  if (!target.permanent()) {
    // A preview never takes over a protected namespace.
    if (absl::Status s = guard.CheckNotProtected(ns); !s.ok()) {
      return absl::PermissionDeniedError(
          absl::StrCat("preview environment '", target.environment,
                       "' resolves to namespace '", ns, "': ", s.message()));
    }
  }
  json meta = Metadata(target, options);
  absl::StatusOr<json> live = client.Get(kube::NamespacePath(ns));
  if (absl::IsNotFound(live.status())) {
    json body = {
        {"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", meta}};
    body["metadata"]["name"] = ns;
    absl::StatusOr<json> created = client.Create(kube::NamespacesPath(), body);
    if (created.ok() || !absl::IsAlreadyExists(created.status())) {
      return created;
    }
    live = client.Get(kube::NamespacePath(ns));  // created meanwhile
  }
  if (!live.ok()) return live.status();
  if (Terminating(*live)) {
    return absl::UnavailableError(
        absl::StrCat("namespace '", ns,
                     "' is being deleted (Terminating); deploy again once it "
                     "is gone"));
  }
  if (!target.permanent()) {
    // Only a preview kiln created for this app is refreshed: the same check
    // that allows deleting it.
    if (absl::Status s = guard.CheckDeletable(ns, target.app, &*live);
        !s.ok()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "preview environment '", target.environment,
          "' cannot use existing namespace '", ns, "': ", s.message()));
    }
  }
  return client.Patch(kube::NamespacePath(ns), json{{"metadata", meta}},
                      kube::PatchType::kMerge);
}

absl::StatusOr<Target> PrepareDeploy(
    kube::Client& client, const v1::Pipeline& pipeline,
    const std::string& environment,
    const pipeline::SubstitutionContext& context,
    const LifecycleOptions& options) {
  absl::StatusOr<Target> target =
      ResolveEnvironment(pipeline, environment, context);
  if (!target.ok()) return target.status();
  if (target->permanent()) {
    // kiln creates no permanent namespace: it must be there already.
    absl::StatusOr<json> live =
        client.Get(kube::NamespacePath(target->namespace_name));
    if (absl::IsNotFound(live.status())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "namespace '", target->namespace_name, "' of permanent environment '",
          target->environment,
          "' does not exist; kiln never creates a permanent environment's "
          "namespace (create it, e.g. kubectl create namespace ",
          target->namespace_name, ")"));
    }
    if (!live.ok()) return live.status();
  }
  PermanentGuard guard(pipeline);
  absl::StatusOr<json> ns = EnsureNamespace(client, *target, guard, options);
  if (!ns.ok()) return ns.status();
  return target;
}

absl::StatusOr<DestroyResult> Destroy(kube::Client& client,
                                      const Target& target,
                                      const PermanentGuard& guard,
                                      const LifecycleOptions& options) {
  if (target.permanent()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "refusing to destroy permanent environment '", target.environment,
        "' (namespace '", target.namespace_name,
        "'): permanent environments are never deleted"));
  }
  return DeleteAndWait(client, target.namespace_name, target.app, guard,
                       options);
}

absl::StatusOr<std::vector<GcEntry>> Gc(kube::Client& client,
                                        const std::string& app,
                                        const PermanentGuard& guard,
                                        bool dry_run,
                                        const LifecycleOptions& options) {
  kube::ListOptions list;
  list.label_selector = absl::StrCat(kAppLabel, "=", LabelValue(app), ",",
                                     kKindLabel, "=preview");
  absl::StatusOr<json> namespaces = client.List(kube::NamespacesPath(), list);
  if (!namespaces.ok()) return namespaces.status();
  std::vector<GcEntry> out;
  const absl::Time now = Now(options);
  for (const json& item : (*namespaces)["items"]) {
    GcEntry e;
    e.namespace_name = item["metadata"].value("name", "");
    e.environment = LabelOf(item, kEnvironmentLabel);
    e.branch = LabelOf(item, kBranchLabel);
    if (absl::Status s = guard.CheckDeletable(e.namespace_name, app, &item);
        !s.ok()) {
      e.reason = std::string(s.message());
      out.push_back(std::move(e));
      continue;
    }
    if (Terminating(item)) {
      e.reason = "already being deleted";
      out.push_back(std::move(e));
      continue;
    }
    std::string expires = Annotation(item, kExpiresAnnotation);
    absl::Time at;
    std::string error;
    if (expires.empty() ||
        !absl::ParseTime(absl::RFC3339_full, expires, &at, &error)) {
      e.reason =
          absl::StrCat("no readable ", kExpiresAnnotation, " annotation; kept");
      out.push_back(std::move(e));
      continue;
    }
    if (at > now) {
      e.reason = absl::StrCat("expires ", expires);
      out.push_back(std::move(e));
      continue;
    }
    if (dry_run) {
      e.action = GcEntry::kWouldDelete;
      e.reason = absl::StrCat("expired ", expires);
      out.push_back(std::move(e));
      continue;
    }
    absl::StatusOr<DestroyResult> r =
        DeleteAndWait(client, e.namespace_name, app, guard, options);
    if (r.ok()) {
      e.action = GcEntry::kDeleted;
      e.reason = absl::StrCat("expired ", expires);
    } else {
      e.action = GcEntry::kFailed;
      e.reason = std::string(r.status().message());
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> DestroyBranchPreviews(
    const ClientForContext& client_for, const v1::Pipeline& pipeline,
    const v1::Trigger& trigger, const LifecycleOptions& options) {
  if (pipeline.environments().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pipeline '", pipeline.name(), "' declares no environments"));
  }
  if (trigger.branch().empty()) {
    return absl::InvalidArgumentError("the teardown of a branch needs one");
  }
  pipeline::SubstitutionContext context;
  context.trigger = trigger;
  for (const v1::Param& p : pipeline.params()) {
    if (p.has_default_()) context.params[p.name()] = p.default_();
  }
  PermanentGuard guard(pipeline);
  std::vector<std::string> done;
  std::vector<std::string> errors;
  for (const v1::Environment& env : pipeline.environments()) {
    if (env.kind() != v1::PREVIEW) continue;
    absl::StatusOr<std::string> name =
        pipeline::Substitute(env.name(), context);
    absl::StatusOr<Target> target =
        name.ok() ? ResolveEnvironment(pipeline, *name, context)
                  : absl::StatusOr<Target>(name.status());
    absl::StatusOr<kube::Client*> client =
        target.ok() ? client_for(target->context)
                    : absl::StatusOr<kube::Client*>(target.status());
    absl::StatusOr<DestroyResult> r =
        client.ok() ? Destroy(**client, *target, guard, options)
                    : absl::StatusOr<DestroyResult>(client.status());
    if (!r.ok()) {
      errors.push_back(absl::StrCat("environment '", env.name(),
                                    "': ", r.status().message()));
      continue;
    }
    done.push_back(
        absl::StrCat(*r == DestroyResult::kDeleted ? "destroyed " : "absent ",
                     target->namespace_name));
  }
  if (!errors.empty()) {
    return absl::InternalError(absl::StrJoin(errors, "; "));
  }
  return done;
}

}  // namespace kiln::environments
