#include "engine/deploy/drift.h"

#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "kube/names.h"
#include "kube/resources.h"

namespace kiln::deploy {
namespace {

using json = nlohmann::json;

// How many deployments of (environment, namespace) are read to find the
// latest one of the kube context.
constexpr int kRecordsScanned = 50;

using ObjectKey = std::tuple<std::string, std::string, std::string>;

const json& Sub(const json& obj, const char* key) {
  static const json empty = json::object();
  return obj.is_object() && obj.contains(key) && obj[key].is_object() ? obj[key]
                                                                      : empty;
}

int64_t Generation(const json& meta) {
  return meta.contains("generation") && meta["generation"].is_number_integer()
             ? meta["generation"].get<int64_t>()
             : 0;
}

std::string Describe(const std::string& kind, const std::string& name) {
  return absl::StrCat(kind, "/", name);
}

// Every entry of `want` (a manifest's labels or annotations) holds in
// `have` (the live object's); names the first that does not.
std::string MissingEntry(const json& want, const json& have, const char* what) {
  for (const auto& [key, value] : want.items()) {
    if (key == kEnvironmentLabel || key == kManagedByLabel) continue;
    if (!have.contains(key)) return absl::StrCat(what, " ", key, " removed");
    if (have[key] != value) return absl::StrCat(what, " ", key, " changed");
  }
  return "";
}

// An object kiln applied in the namespace that the recorded deployment does
// not hold: the deploy would prune it.
bool WouldBePruned(const json& meta) {
  bool owned = meta.contains("ownerReferences") &&
               meta["ownerReferences"].is_array() &&
               !meta["ownerReferences"].empty();
  return !owned && !meta.contains("deletionTimestamp") &&
         kube::AppliedBy(meta, kFieldManager) &&
         Sub(meta, "labels").value(kManagedByLabel, "") == "kiln";
}

std::string ListError(const std::string& what, const absl::Status& s) {
  return absl::StrCat(what, ": ", s.message());
}

}  // namespace

std::string RecordMismatch(const store::DeploymentRecord& last,
                           const DeployIntent& now,
                           const std::vector<Manifest>& manifests) {
  const std::string which = absl::StrCat("deployment ", last.id);
  if (!last.succeeded) return absl::StrCat(which, " failed");
  if (last.rollback_to != 0) {
    return absl::StrCat(which, " was a rollback (it pruned nothing)");
  }
  if (last.environment != now.environment ||
      last.namespace_name != now.namespace_name ||
      last.kube_context != now.kube_context) {
    return absl::StrCat(which, " went elsewhere");
  }
  if (last.manifests_digest != now.manifests_digest) {
    return absl::StrCat("the manifests changed (", which, " applied ",
                        last.manifests_digest, ")");
  }
  if (last.images != ImagesOf(manifests)) {
    return absl::StrCat("the images differ from ", which, "'s");
  }
  if (last.force != now.force) {
    return absl::StrCat("force is ", now.force ? "on" : "off", ", ", which,
                        " had it ", last.force ? "on" : "off");
  }
  std::multiset<ObjectKey> recorded, wanted;
  for (const store::DeployedObject& o : last.objects) {
    if (o.uid.empty()) {
      return absl::StrCat(which, " has no live state of ",
                          Describe(o.kind, o.name),
                          " (recorded before it "
                          "was kept)");
    }
    recorded.insert({o.api_version, o.kind, o.name});
  }
  for (const Manifest& m : manifests) {
    wanted.insert({m.api_version, m.kind, m.name});
  }
  if (recorded != wanted) {
    return absl::StrCat("the objects differ from ", which, "'s");
  }
  if (recorded.empty()) return absl::StrCat(which, " applied no object");
  return "";
}

std::string ObjectDrift(const store::DeployedObject& recorded, const json* live,
                        const Manifest* manifest,
                        const std::string& environment, bool wait) {
  const std::string what = Describe(recorded.kind, recorded.name) + ": ";
  if (live == nullptr) {
    return what + "not found (deleted, or kiln's labels removed)";
  }
  const json& meta = Sub(*live, "metadata");
  if (meta.value("uid", "") != recorded.uid) {
    return what + "recreated (another uid)";
  }
  if (meta.contains("deletionTimestamp")) return what + "being deleted";
  const int64_t generation = Generation(meta);
  if (recorded.generation > 0 || generation > 0) {
    if (generation != recorded.generation) {
      return absl::StrCat(what, "generation ", generation, ", recorded ",
                          recorded.generation);
    }
  } else if (meta.value("resourceVersion", "") != recorded.resource_version) {
    return absl::StrCat(what, "resourceVersion ",
                        meta.value("resourceVersion", ""), ", recorded ",
                        recorded.resource_version);
  }
  const json& labels = Sub(meta, "labels");
  if (labels.value(kEnvironmentLabel, "") != environment ||
      labels.value(kManagedByLabel, "") != "kiln") {
    return what + "kiln's labels changed";
  }
  if (manifest != nullptr) {
    const json& want = Sub(manifest->object, "metadata");
    std::string missing = MissingEntry(Sub(want, "labels"), labels, "label");
    if (missing.empty()) {
      missing = MissingEntry(Sub(want, "annotations"), Sub(meta, "annotations"),
                             "annotation");
    }
    if (!missing.empty()) return what + missing;
  }
  if (wait && IsWorkload(recorded.kind)) {
    RolloutState state = CheckRollout(*live);
    if (!state.done) return what + "not rolled out (" + state.detail + ")";
  }
  return "";
}

absl::optional<Unchanged> FindUnchanged(
    kube::Client* client, store::RunStore* runs, const DeployTarget& target,
    const std::string& context, const std::string& manifests_digest,
    const std::vector<Manifest>& manifests, const LogFn& log) {
  if (runs == nullptr) return absl::nullopt;  // no records to compare with
  auto apply = [&log](const std::string& why) {
    log(absl::StrCat("applying: ", why));
    return absl::nullopt;
  };
  auto check_failed = [&apply](const std::string& why) {
    return apply(absl::StrCat("the drift check failed (", why, ")"));
  };

  store::DeploymentFilter filter;
  filter.environment = target.environment;
  filter.namespace_name = target.namespace_name;
  filter.limit = kRecordsScanned;
  auto records = runs->ListDeployments(filter);
  if (!records.ok())
    return check_failed(std::string(records.status().message()));
  const store::DeploymentRecord* last = nullptr;
  for (const store::DeploymentRecord& r : *records) {
    if (r.environment == target.environment &&
        r.namespace_name == target.namespace_name &&
        r.kube_context == context) {
      last = &r;
      break;
    }
  }
  if (last == nullptr) return apply("no earlier deployment to compare with");
  DeployIntent now{target.environment, target.namespace_name, context,
                   manifests_digest,   target.force,          target.wait};
  std::string mismatch = RecordMismatch(*last, now, manifests);
  if (!mismatch.empty()) return apply(mismatch);

  // The namespace.
  absl::StatusOr<json> ns =
      client->Get(kube::NamespacePath(target.namespace_name));
  if (absl::IsNotFound(ns.status())) {
    return apply(
        absl::StrCat("namespace ", target.namespace_name, " no longer exists"));
  }
  if (!ns.ok()) return check_failed(ListError("namespace", ns.status()));
  if (Sub(*ns, "status").value("phase", "") == "Terminating") {
    return apply(
        absl::StrCat("namespace ", target.namespace_name, " is being deleted"));
  }

  // The live objects: one LIST per kind in the namespace with kiln's
  // environment label; a cluster-scoped object (the namespace) by GET.
  std::map<ObjectKey, const Manifest*> by_key;
  for (const Manifest& m : manifests) {
    by_key[{m.api_version, m.kind, m.name}] = &m;
  }
  kube::ResourceMapper mapper(client);
  kube::ListOptions list;
  list.label_selector =
      absl::StrCat(kEnvironmentLabel, "=", target.environment);
  std::map<std::pair<std::string, std::string>, std::map<std::string, json>>
      listed;  // (apiVersion, kind) -> name -> live object
  std::set<std::string> recorded_names;  // "apiVersion kind name"
  for (const store::DeployedObject& o : last->objects) {
    recorded_names.insert(
        absl::StrCat(o.api_version, " ", o.kind, " ", o.name));
  }
  for (const store::DeployedObject& o : last->objects) {
    absl::StatusOr<kube::ApiResource> res = mapper.Find(o.api_version, o.kind);
    if (!res.ok()) return check_failed(ListError(o.kind, res.status()));
    json live;
    bool found = false;
    if (o.namespace_name.empty() || !res->namespaced) {
      absl::StatusOr<json> got = client->Get(res->ObjectPath("", o.name));
      if (got.ok()) {
        live = *std::move(got);
        found = true;
      } else if (!absl::IsNotFound(got.status())) {
        return check_failed(ListError(Describe(o.kind, o.name), got.status()));
      }
    } else {
      if (o.namespace_name != target.namespace_name) {
        return apply(absl::StrCat(Describe(o.kind, o.name),
                                  ": recorded in namespace ",
                                  o.namespace_name));
      }
      auto key = std::make_pair(o.api_version, o.kind);
      auto it = listed.find(key);
      if (it == listed.end()) {
        absl::StatusOr<json> items =
            client->List(res->CollectionPath(target.namespace_name), list);
        if (!items.ok()) {
          return check_failed(
              ListError(absl::StrCat("listing ", o.kind), items.status()));
        }
        std::map<std::string, json> names;
        if (items->contains("items") && (*items)["items"].is_array()) {
          for (json& item : (*items)["items"]) {
            const json& meta = Sub(item, "metadata");
            std::string name = meta.value("name", "");
            if (meta.value("namespace", "") != target.namespace_name) continue;
            if (recorded_names.count(
                    absl::StrCat(o.api_version, " ", o.kind, " ", name)) == 0) {
              if (WouldBePruned(meta)) {
                return apply(
                    absl::StrCat(Describe(o.kind, name),
                                 ": applied by kiln but not in deployment ",
                                 last->id, " (a deploy prunes it)"));
              }
              continue;
            }
            names[name] = std::move(item);
          }
        }
        it = listed.emplace(key, std::move(names)).first;
      }
      auto named = it->second.find(o.name);
      if (named != it->second.end()) {
        live = named->second;
        found = true;
      }
    }
    auto manifest = by_key.find({o.api_version, o.kind, o.name});
    std::string drift =
        ObjectDrift(o, found ? &live : nullptr,
                    manifest == by_key.end() ? nullptr : manifest->second,
                    target.environment, target.wait);
    if (!drift.empty()) return apply(drift);
  }

  // Nothing drifted. A declared environment still gets its namespace
  // refreshed (a preview's expiry), as a deploy would.
  if (target.ensure_namespace) {
    absl::Status s = target.ensure_namespace();
    if (!s.ok()) return check_failed(ListError("namespace", s));
  }
  Unchanged u;
  u.deployment_id = last->id;
  u.run_id = last->run_id;
  u.objects = last->objects.size();
  u.message = absl::StrCat("unchanged since deployment ", last->id, " (run ",
                           last->run_id, "): ", u.objects,
                           " objects match, not re-applied");
  log(u.message);
  return u;
}

}  // namespace kiln::deploy
