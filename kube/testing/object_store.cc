// The API server double's storage: objects by resource, one global
// resourceVersion, create/update rules, the watch history and its events,
// and in-process object access.

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "kube/testing/api_tables.h"
#include "kube/testing/fake_api_server_impl.h"
#include "kube/testing/object_rules.h"
#include "kube/testing/server_side_apply.h"

namespace kiln::kube::testing {

using fake_api::Conflict;
using fake_api::DefaultPod;
using fake_api::Err;
using fake_api::FindResource;
using fake_api::Invalid;
using fake_api::IsDnsLabel;
using fake_api::IsDnsSubdomain;
using fake_api::MetaString;
using fake_api::MutablePodSpec;
using fake_api::NamespacesResource;
using fake_api::NewUid;
using fake_api::NotFound;
using fake_api::ParseTarget;
using fake_api::RandomSuffix;
using fake_api::Resources;
using fake_api::RvOf;
using fake_api::SecretWithStringData;
using fake_api::ToTable;
using fake_api::ValidatePod;

// ---- Storage. ----
json* FakeApiServer::Impl::Find(const Resource& r, const std::string& ns,
                                const std::string& name) {
  auto& b = Bucket(r);
  auto it = b.find(Key(ns, name));
  return it == b.end() ? nullptr : &it->second;
}

bool FakeApiServer::Impl::NamespaceExists(const std::string& ns) {
  return Find(NamespacesResource(), "", ns) != nullptr;
}

Reply FakeApiServer::Impl::StoreNew(const Resource& r, const std::string& ns,
                                    json obj, bool dry_run, json* stored) {
  if (!obj.is_object()) return Err(400, "the body must be a JSON object");
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) {
    obj["metadata"] = json::object();
  }
  json& meta = obj["metadata"];
  std::string kind = obj.value("kind", "");
  std::string av = obj.value("apiVersion", "");
  if ((!kind.empty() && kind != r.kind) ||
      (!av.empty() && av != r.api_version())) {
    return Err(400, absl::StrCat("the API version in the data (", av, " ", kind,
                                 ") does not match the expected API version (",
                                 r.api_version(), " ", r.kind, ")"));
  }
  obj["kind"] = r.kind;
  obj["apiVersion"] = r.api_version();
  if (r.namespaced) {
    std::string body_ns = MetaString(obj, "namespace");
    if (!body_ns.empty() && body_ns != ns) {
      return Err(400,
                 "the namespace of the provided object does not match "
                 "the namespace sent on the request");
    }
    meta["namespace"] = ns;
    if (!NamespaceExists(ns)) {
      return NotFound(NamespacesResource(), ns);
    }
    if (IsNamespaceTerminating(*Find(NamespacesResource(), "", ns))) {
      Reply refused;
      refused.code = 403;
      refused.body = NamespaceTerminatingStatus(r.plural, r.group,
                                                MetaString(obj, "name"), ns);
      return refused;
    }
  } else {
    meta.erase("namespace");
  }
  std::string name = MetaString(obj, "name");
  if (name.empty()) {
    std::string gen = MetaString(obj, "generateName");
    if (gen.empty()) {
      return Invalid(r, "",
                     {{"metadata.name",
                       "Required value: name or generateName is "
                       "required"}});
    }
    do {
      name = gen + RandomSuffix(5);
    } while (Find(r, ns, name) != nullptr);
    meta["name"] = name;
  }
  bool name_ok =
      r.plural == "namespaces" ? IsDnsLabel(name) : IsDnsSubdomain(name);
  if (!name_ok) {
    return Invalid(
        r, name,
        {{"metadata.name",
          absl::StrCat("Invalid value: \"", name, "\": a lowercase RFC 1123 ",
                       r.plural == "namespaces" ? "label" : "subdomain")}});
  }
  if (Find(r, ns, name) != nullptr) {
    std::string group = r.group.empty() ? "" : "." + r.group;
    return Err(409,
               absl::StrCat(r.plural, group, " \"", name, "\" already exists"),
               "AlreadyExists", json{{"name", name}, {"kind", r.plural}});
  }
  if (r.plural == "pods") {
    auto causes = ValidatePod(obj);
    if (!causes.empty()) return Invalid(r, name, causes);
    DefaultPod(obj);
  } else if (r.plural == "secrets") {
    std::string error;
    obj = SecretWithStringData(std::move(obj), &error);
    if (!error.empty()) return Invalid(r, name, {{"data", error}});
  } else if (r.plural == "namespaces") {
    obj["spec"] = {{"finalizers", {"kubernetes"}}};
    obj["status"] = {{"phase", "Active"}};
    if (!obj["metadata"].contains("labels")) {
      obj["metadata"]["labels"] = json::object();
    }
    obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
  } else if (r.has_status && !obj.contains("status")) {
    obj["status"] = json::object();
  }
  json& m = obj["metadata"];
  m["uid"] = NewUid();
  m["creationTimestamp"] = FormatTimeSeconds(absl::Now());
  m.erase("deletionTimestamp");
  m.erase("deletionGracePeriodSeconds");
  if (r.has_generation) {
    m["generation"] = 1;
  } else {
    m.erase("generation");
  }
  if (dry_run) {
    *stored = obj;
    Reply rep;
    rep.code = 201;
    rep.body = obj;
    return rep;
  }
  ++rv_;
  m["resourceVersion"] = absl::StrCat(rv_);
  Bucket(r)[Key(ns, name)] = obj;
  Emit(r, ns, "ADDED", obj, json());
  if (r.plural == "namespaces") {
    // The service-account controller's work.
    json sa;
    StoreNew(*FindResource("", "v1", "serviceaccounts"), name,
             json{{"metadata", {{"name", "default"}}}}, false, &sa);
  }
  *stored = obj;
  Reply rep;
  rep.code = 201;
  rep.body = obj;
  return rep;
}

Reply FakeApiServer::Impl::StoreUpdate(const Resource& r, const std::string& ns,
                                       const std::string& name,
                                       const std::string& sub, json obj,
                                       bool dry_run, json* stored) {
  json* cur = Find(r, ns, name);
  if (cur == nullptr) return NotFound(r, name);
  if (!obj.is_object()) return Err(400, "the body must be a JSON object");
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) {
    obj["metadata"] = json::object();
  }
  std::string body_name = MetaString(obj, "name");
  if (!body_name.empty() && body_name != name) {
    return Err(
        400, absl::StrCat("the name of the object (", body_name,
                          ") does not match the name on the URL (", name, ")"));
  }
  int64_t want = RvOf(obj);
  if (want < 0) return Err(400, "metadata.resourceVersion is not a number");
  if (want != 0 && want != RvOf(*cur)) return Conflict(r, name);
  json next = obj;
  const json& old = *cur;
  if (!sub.empty()) {
    // /status: only the status changes.
    next = old;
    next["status"] = obj.contains("status") ? obj["status"] : json::object();
  } else {
    // Immutable and server-owned metadata.
    for (const char* f :
         {"uid", "creationTimestamp", "namespace", "deletionTimestamp",
          "deletionGracePeriodSeconds", "generation"}) {
      if (old["metadata"].contains(f)) {
        next["metadata"][f] = old["metadata"][f];
      } else {
        next["metadata"].erase(f);
      }
    }
    next["metadata"]["name"] = name;
    if (r.has_status) {
      if (old.contains("status")) {
        next["status"] = old["status"];
      } else {
        next.erase("status");
      }
    }
    if (r.plural == "secrets") {
      std::string error;
      next = SecretWithStringData(std::move(next), &error);
      if (!error.empty()) return Invalid(r, name, {{"data", error}});
    }
    if (r.plural == "pods") {
      auto causes = ValidatePod(next);
      if (!causes.empty()) return Invalid(r, name, causes);
      if (MutablePodSpec(next["spec"]) != MutablePodSpec(old["spec"])) {
        return Invalid(
            r, name,
            {{"spec",
              "Forbidden: pod updates may not change fields other than "
              "`spec.containers[*].image`, `spec.initContainers[*].image`, "
              "`spec.activeDeadlineSeconds`, `spec.tolerations` (only "
              "additions to existing tolerations), "
              "`spec.terminationGracePeriodSeconds`"}});
      }
    }
    if (r.has_generation && old.contains("spec") &&
        next.value("spec", json()) != old["spec"]) {
      next["metadata"]["generation"] =
          old["metadata"].value("generation", 0) + 1;
    }
  }
  next["kind"] = r.kind;
  next["apiVersion"] = r.api_version();
  next["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"];
  if (next == old) {
    // No change: no new resourceVersion, no event (as the real server).
    *stored = old;
    Reply rep;
    rep.body = old;
    return rep;
  }
  if (dry_run) {
    *stored = next;
    Reply rep;
    rep.body = next;
    return rep;
  }
  ++rv_;
  next["metadata"]["resourceVersion"] = absl::StrCat(rv_);
  json prev = old;
  // A finalizer removed from an object being deleted may complete it.
  bool finish = next["metadata"].contains("deletionTimestamp") &&
                (!next["metadata"].contains("finalizers") ||
                 next["metadata"]["finalizers"].empty()) &&
                !(r.plural == "pods" &&
                  next["metadata"].value("deletionGracePeriodSeconds", 0) > 0);
  *cur = next;
  Emit(r, ns, "MODIFIED", next, prev);
  if (finish) Remove(r, ns, name);
  *stored = next;
  Reply rep;
  rep.body = next;
  return rep;
}

void FakeApiServer::Impl::Remove(const Resource& r, const std::string& ns,
                                 const std::string& name) {
  auto& b = Bucket(r);
  auto it = b.find(Key(ns, name));
  if (it == b.end()) return;
  json obj = std::move(it->second);
  b.erase(it);
  ++rv_;
  obj["metadata"]["resourceVersion"] = absl::StrCat(rv_);
  Emit(r, ns, "DELETED", obj, json());
  if (r.plural == "pods") {
    std::string prefix = LogKey(ns, name, "");
    for (auto l = logs_.lower_bound(prefix);
         l != logs_.end() && absl::StartsWith(l->first, prefix);) {
      l = logs_.erase(l);
    }
  }
  if (r.plural == "namespaces") RemoveNamespaceContents(name);
}

void FakeApiServer::Impl::RemoveNamespaceContents(const std::string& name) {
  for (const Resource& other : Resources()) {
    if (!other.namespaced) continue;
    std::vector<std::string> names;
    for (const auto& [k, v] : Bucket(other)) {
      if (absl::StartsWith(k, name + "/"))
        names.push_back(k.substr(name.size() + 1));
    }
    for (const std::string& n : names) Remove(other, name, n);
  }
}

void FakeApiServer::Impl::Emit(const Resource& r, const std::string& ns,
                               const std::string& type, const json& obj,
                               const json& old) {
  auto c = std::make_shared<Change>();
  c->rv = rv_;
  c->res = &r;
  c->ns = ns;
  c->type = type;
  c->object = obj;
  c->old = old;
  history_.push_back(c);
  while (history_.size() > opts_.history_limit) {
    compacted_rv_ = history_.front()->rv;
    history_.pop_front();
  }
  for (auto& w : watchers_) {
    if (w->res != &r || w->expired || w->dropped) continue;
    if (!w->ns.empty() && w->ns != ns) continue;
    if (w->queue.size() >= opts_.history_limit) {
      // A watcher this far behind is dropped as the real server does.
      w->expired = true;
      w->expired_rv = rv_;
      continue;
    }
    w->queue.push_back(c);
  }
}

bool FakeApiServer::Impl::WatcherSees(const Watcher& w, const json& obj) const {
  if (!obj.is_object()) return false;
  json labels = obj.contains("metadata") && obj["metadata"].contains("labels")
                    ? obj["metadata"]["labels"]
                    : json();
  return w.labels.Matches(labels) && w.fields.Matches(obj);
}

void FakeApiServer::Impl::AppendEvent(Watcher& w, const Change& c,
                                      std::string* out) const {
  bool now = WatcherSees(w, c.object);
  bool before = c.type == "MODIFIED" && WatcherSees(w, c.old);
  std::string type = c.type;
  if (c.type == "MODIFIED") {
    if (now && !before) type = "ADDED";
    if (!now && before) type = "DELETED";
    if (!now && !before) return;
  } else if (!now) {
    return;
  }
  json object = c.object;
  if (w.table) {
    object =
        ToTable(*c.res, {c.object},
                {{"resourceVersion", MetaString(c.object, "resourceVersion")}},
                !w.table_columns_sent, w.include_object);
    w.table_columns_sent = true;
  }
  json ev = {{"type", type}, {"object", object}};
  absl::StrAppend(out, ev.dump(), "\n");
}

// ---- In-process access. ----
absl::StatusOr<json> FakeApiServer::Impl::GetObject(
    const std::string& api_path) {
  Target t;
  std::string why;
  if (!ParseTarget(api_path, &t, &why) || t.name.empty() || !t.sub.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an object path: ", api_path, " ", why));
  }
  Reply r = Get(t);
  if (r.code == 404) {
    return absl::NotFoundError(r.body.value("message", api_path));
  }
  if (r.code != 200) {
    return absl::InvalidArgumentError(r.body.value("message", api_path));
  }
  return r.body;
}

// ---- In-process access for simulated controllers. ----
absl::StatusOr<std::vector<json>> FakeApiServer::Impl::ListObjects(
    const std::string& path) {
  Target t;
  std::string why;
  if (!ParseTarget(path, &t, &why) || !t.name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a collection path: ", path, " ", why));
  }
  MutexLock l(&mu_);
  std::vector<json> out;
  for (const auto& [key, obj] : Bucket(*t.res)) {
    if (!t.ns.empty() && MetaString(obj, "namespace") != t.ns) continue;
    out.push_back(obj);
  }
  return out;
}

absl::Status FakeApiServer::Impl::MutateObject(
    const std::string& api_path, const std::function<void(json&)>& fn) {
  Target t;
  std::string why;
  if (!ParseTarget(api_path, &t, &why) || t.name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an object path: ", api_path, " ", why));
  }
  MutexLock l(&mu_);
  json* cur = Find(*t.res, t.ns, t.name);
  if (cur == nullptr) {
    return absl::NotFoundError(
        absl::StrCat(t.res->plural, " \"", t.name, "\" not found in ", t.ns));
  }
  json prev = *cur;
  fn(*cur);
  json& meta = (*cur)["metadata"];
  for (const char* f : {"name", "namespace", "uid", "creationTimestamp",
                        "resourceVersion", "generation"}) {
    if (prev["metadata"].contains(f)) meta[f] = prev["metadata"][f];
  }
  (*cur)["kind"] = t.res->kind;
  (*cur)["apiVersion"] = t.res->api_version();
  if (*cur == prev) return absl::OkStatus();
  ++rv_;
  meta["resourceVersion"] = absl::StrCat(rv_);
  Emit(*t.res, t.ns, "MODIFIED", *cur, prev);
  return absl::OkStatus();
}

absl::StatusOr<json> FakeApiServer::Impl::CreateObject(const std::string& path,
                                                       json object) {
  Target t;
  std::string why;
  if (!ParseTarget(path, &t, &why) || !t.name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a collection path: ", path, " ", why));
  }
  Reply r = Create(t, std::move(object), false, "");
  if (r.code >= 300) {
    return absl::FailedPreconditionError(r.body.value("message", path));
  }
  return r.body;
}

}  // namespace kiln::kube::testing
