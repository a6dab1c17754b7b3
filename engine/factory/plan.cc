#include "engine/factory/plan.h"

#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/factory/apply.h"
#include "engine/factory/quantity.h"

namespace kiln::factory {
namespace {

using nlohmann::json;

// How one kind's fields compare.
struct Rules {
  const ObjectKind& kind;
  // Maps owned whole: a key the file dropped is a change (and is removed).
  bool Exact(const std::string& path) const {
    return path == "data" || path == "spec.hard";
  }
  // Keys of an object the server never fills in, so that one the file
  // dropped is a change (a LimitRange item's default and defaultRequest
  // are defaulted from max, so only these count).
  std::vector<std::string> NotDefaulted(const std::string& path) const {
    if (std::string(kind.kind) == "LimitRange" &&
        path.rfind("spec.limits[", 0) == 0 && path.back() == ']') {
      return {"max", "min"};
    }
    return {};
  }
  bool Quantities() const {
    return std::string(kind.kind) == "ResourceQuota" ||
           std::string(kind.kind) == "LimitRange";
  }
  bool SecretValue(const std::string& path) const {
    return kind.secret && (path == "data" || path.rfind("data.", 0) == 0);
  }
};

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : absl::StrCat(path, ".", key);
}

std::string Show(const json* v) {
  if (v == nullptr || v->is_null()) return "(none)";
  return v->dump();
}

bool SameScalar(const Rules& rules, const json& want, const json& have) {
  if (want == have) return true;
  return rules.Quantities() && want.is_string() && have.is_string() &&
         SameQuantity(want.get<std::string>(), have.get<std::string>());
}

void Diff(const Rules& rules, const json& want, const json* have,
          const std::string& path, std::vector<FieldChange>* out) {
  auto change = [&](const json* before, const json* after) {
    if (rules.SecretValue(path)) {
      out->push_back({path, "",
                      after == nullptr    ? "(secret key removed)"
                      : before == nullptr ? "(secret value added)"
                                          : "(secret value changed)"});
      return;
    }
    out->push_back({path, Show(before), after ? Show(after) : "(removed)"});
  };
  // The server omits an empty map or list: absent equals empty.
  if ((want.is_object() || want.is_array()) && want.empty() &&
      (have == nullptr || have->is_null())) {
    return;
  }
  if (want.is_object()) {
    if (have == nullptr || !have->is_object()) {
      if (rules.SecretValue(path)) {
        // Per key, so that no value is shown.
        for (const auto& [k, v] : want.items()) {
          Diff(rules, v, nullptr, Join(path, k), out);
        }
        return;
      }
      change(have, &want);
      return;
    }
    for (const auto& [k, v] : want.items()) {
      auto it = have->find(k);
      Diff(rules, v, it == have->end() ? nullptr : &*it, Join(path, k), out);
    }
    for (const std::string& k : rules.NotDefaulted(path)) {
      if (!want.contains(k) && have->contains(k)) {
        out->push_back({Join(path, k), Show(&(*have)[k]), "(removed)"});
      }
    }
    if (rules.Exact(path)) {
      for (const auto& [k, v] : have->items()) {
        if (!want.contains(k)) {
          std::string p = Join(path, k);
          if (rules.SecretValue(p)) {
            out->push_back({p, "", "(secret key removed)"});
          } else {
            out->push_back({p, Show(&v), "(removed)"});
          }
        }
      }
    }
    return;
  }
  if (want.is_array()) {
    if (have == nullptr || !have->is_array() || have->size() != want.size()) {
      change(have, &want);
      return;
    }
    for (size_t i = 0; i < want.size(); ++i) {
      Diff(rules, want[i], &(*have)[i], absl::StrCat(path, "[", i, "]"), out);
    }
    return;
  }
  if (have == nullptr || !SameScalar(rules, want, *have)) change(have, &want);
}

// The part of a manifest the factory owns: everything but apiVersion, kind
// and metadata other than labels and annotations.
json Owned(const json& manifest) {
  json out = manifest;
  out.erase("apiVersion");
  out.erase("kind");
  const json& metadata = manifest["metadata"];
  out["metadata"] = {
      {"labels", metadata.value("labels", json::object())},
      {"annotations", metadata.value("annotations", json::object())}};
  return out;
}

// Labels the file set before (the live kiln.dev/labels annotation) and no
// longer sets.
std::vector<std::string> DroppedLabels(const json& desired, const json& live) {
  std::vector<std::string> out;
  const json& metadata = live["metadata"];
  if (!metadata.contains("annotations") || !metadata.contains("labels")) {
    return out;
  }
  std::string before = metadata["annotations"].value(kLabelsAnnotation, "");
  const json want = desired["metadata"].value("labels", json::object());
  for (absl::string_view key : absl::StrSplit(before, ',', absl::SkipEmpty())) {
    std::string k(key);
    if (!want.contains(k) && metadata["labels"].contains(k)) out.push_back(k);
  }
  return out;
}

void MergeInto(const Rules& rules, json& live, const json& want,
               const std::string& path) {
  for (const auto& [k, v] : want.items()) {
    std::string p = Join(path, k);
    if (v.is_object() && !rules.Exact(p) && live.contains(k) &&
        live[k].is_object()) {
      MergeInto(rules, live[k], v, p);
    } else {
      live[k] = v;
    }
  }
}

std::string Key(const ObjectKind& kind, const std::string& ns,
                const std::string& name) {
  return absl::StrCat(kind.kind, "\n", ns, "\n", name);
}

// Deletion requested (a namespace in phase Terminating, an object held by
// finalizers): nothing more to do for it.
bool Terminating(const json& object) {
  return object.contains("metadata") &&
         object["metadata"].contains("deletionTimestamp") &&
         !object["metadata"]["deletionTimestamp"].is_null();
}

std::string LabelSelector(const char* label, const std::string& value) {
  return absl::StrCat(label, "=", value);
}

}  // namespace

std::string Change::Describe() const {
  return kind->namespaced ? absl::StrCat(kind->kind, " ", ns, "/", name)
                          : absl::StrCat(kind->kind, " ", name);
}

int Plan::Count(Action action) const {
  int n = 0;
  for (const Change& c : changes) n += c.action == action ? 1 : 0;
  return n;
}

bool Plan::empty() const {
  return Count(Action::kCreate) + Count(Action::kUpdate) +
             Count(Action::kDelete) ==
         0;
}

std::vector<FieldChange> DiffDesired(const ObjectKind& kind,
                                     const json& desired, const json& live) {
  std::vector<FieldChange> out;
  json have = Owned(live);
  Diff(Rules{kind}, Owned(desired), &have, "", &out);
  for (const std::string& k : DroppedLabels(desired, live)) {
    out.push_back({absl::StrCat("metadata.labels.", k),
                   live["metadata"]["labels"][k].dump(), "(removed)"});
  }
  return out;
}

json MergeDesired(const ObjectKind& kind, const json& live,
                  const json& desired) {
  json out = live;
  json want = desired;
  want.erase("status");
  MergeInto(Rules{kind}, out, want, "");
  for (const std::string& k : DroppedLabels(desired, live)) {
    out["metadata"]["labels"].erase(k);
  }
  return out;
}

absl::StatusOr<Plan> MakePlan(kube::Client& client, const v1::Factory& root,
                              const std::vector<DesiredObject>& desired) {
  Plan plan;
  std::set<std::string> declared;
  // Desired namespaces that exist (their contents are listed for pruning).
  std::map<std::string, std::vector<std::string>> live_namespaces;
  for (const DesiredObject& o : desired) {
    declared.insert(Key(*o.kind, o.ns, o.name));
    if (IsNamespace(*o.kind) && o.manifest["metadata"]["labels"].value(
                                    kEnvironmentKindLabel, "") == "permanent") {
      plan.permanent_namespaces.insert(o.name);
    }
  }
  for (const DesiredObject& o : desired) {
    Change c;
    c.kind = o.kind;
    c.ns = o.ns;
    c.name = o.name;
    c.factory = o.factory;
    c.desired = o.manifest;
    absl::StatusOr<json> live = client.Get(ObjectPath(*o.kind, o.ns, o.name));
    if (!live.ok() && live.status().code() != absl::StatusCode::kNotFound) {
      return live.status();
    }
    if (!live.ok()) {
      c.action = Action::kCreate;
      plan.changes.push_back(std::move(c));
      continue;
    }
    if (IsNamespace(*o.kind)) {
      if (Terminating(*live)) {
        return absl::FailedPreconditionError(absl::StrCat(
            o.Describe(),
            " is being deleted (Terminating); apply again once it is gone"));
      }
      live_namespaces[o.factory].push_back(o.name);
    }
    std::string owner = (*live)["metadata"]
                            .value("labels", json::object())
                            .value(kFactoryLabel, "");
    // A cluster-scoped object is shared by the whole cluster: one the
    // factory did not create (no label) is never taken over.
    bool cluster = !o.kind->namespaced && !IsNamespace(*o.kind);
    if ((cluster || !owner.empty()) && owner != o.factory) {
      return absl::FailedPreconditionError(
          owner.empty()
              ? absl::StrCat(o.Describe(),
                             " exists and was not created by a factory; "
                             "kiln does not take over cluster objects")
              : absl::StrCat(o.Describe(), " belongs to factory '", owner,
                             "', not '", o.factory, "'"));
    }
    c.fields = DiffDesired(*o.kind, o.manifest, *live);
    if (c.fields.empty()) continue;
    c.action = Action::kUpdate;
    plan.changes.push_back(std::move(c));
  }

  // Prune scopes: every factory of the tree, and nested factories that a
  // factory of the tree built but no longer declares (found by their
  // parent label), and theirs in turn.
  std::vector<FactoryScope> scopes = FactoryScopes(root);
  std::set<std::string> in_tree;
  for (const FactoryScope& s : scopes) in_tree.insert(s.name);
  std::vector<std::string> names;
  for (const FactoryScope& s : scopes) names.push_back(s.name);
  std::set<std::string> seen(names.begin(), names.end());
  std::vector<Change> deletes_namespaced, deletes_namespaces, keeps;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string factory = names[i];
    kube::ListOptions by_parent;
    by_parent.label_selector = LabelSelector(kParentLabel, factory);
    absl::StatusOr<json> children =
        client.List(CollectionPath(NamespaceKind(), ""), by_parent);
    if (!children.ok()) return children.status();
    std::vector<json> built = (*children)["items"];
    for (const ObjectKind& kind : ManagedKinds()) {
      if (kind.namespaced || IsNamespace(kind)) continue;
      absl::StatusOr<json> more =
          client.List(CollectionPath(kind, ""), by_parent);
      if (!more.ok()) return more.status();
      for (const json& item : (*more)["items"]) built.push_back(item);
    }
    for (const json& ns : built) {
      std::string child = ns["metadata"]["labels"].value(kFactoryLabel, "");
      if (!child.empty() && seen.insert(child).second) names.push_back(child);
    }
    kube::ListOptions by_factory;
    by_factory.label_selector = LabelSelector(kFactoryLabel, factory);
    absl::StatusOr<json> owned =
        client.List(CollectionPath(NamespaceKind(), ""), by_factory);
    if (!owned.ok()) return owned.status();
    for (const json& ns : (*owned)["items"]) {
      std::string name = ns["metadata"].value("name", "");
      if (declared.count(Key(NamespaceKind(), "", name)) || Terminating(ns)) {
        continue;  // declared, or already on its way out
      }
      Change c;
      c.kind = &NamespaceKind();
      c.name = name;
      c.factory = factory;
      if (IsPermanentNamespace(ns, plan.permanent_namespaces)) {
        c.action = Action::kKeep;
        c.reason = "permanent namespace no longer declared: never deleted";
        keeps.push_back(std::move(c));
      } else {
        c.action = Action::kDelete;
        deletes_namespaces.push_back(std::move(c));
      }
    }
    // Cluster-scoped objects of the factory, found by its label.
    for (const ObjectKind& kind : ManagedKinds()) {
      if (kind.namespaced || IsNamespace(kind)) continue;
      absl::StatusOr<json> items =
          client.List(CollectionPath(kind, ""), by_factory);
      if (!items.ok()) return items.status();
      for (const json& item : (*items)["items"]) {
        std::string name = item["metadata"].value("name", "");
        if (declared.count(Key(kind, "", name)) || Terminating(item)) continue;
        Change c;
        c.action = Action::kDelete;
        c.kind = &kind;
        c.name = name;
        c.factory = factory;
        deletes_namespaced.push_back(std::move(c));
      }
    }
    for (const std::string& ns : live_namespaces[factory]) {
      for (auto kind = ManagedKinds().rbegin(); kind != ManagedKinds().rend();
           ++kind) {
        if (!kind->namespaced) continue;
        absl::StatusOr<json> items =
            client.List(CollectionPath(*kind, ns), by_factory);
        if (!items.ok()) return items.status();
        for (const json& item : (*items)["items"]) {
          std::string name = item["metadata"].value("name", "");
          if (declared.count(Key(*kind, ns, name)) || Terminating(item)) {
            continue;
          }
          Change c;
          c.action = Action::kDelete;
          c.kind = &*kind;
          c.ns = ns;
          c.name = name;
          c.factory = factory;
          deletes_namespaced.push_back(std::move(c));
        }
      }
    }
  }
  for (auto* list : {&deletes_namespaced, &deletes_namespaces, &keeps}) {
    for (Change& c : *list) plan.changes.push_back(std::move(c));
  }
  return plan;
}

std::string FormatPlan(const Plan& plan) {
  std::string out;
  for (const Change& c : plan.changes) {
    switch (c.action) {
      case Action::kCreate:
        absl::StrAppend(&out, "+ create ", c.Describe(), "\n");
        break;
      case Action::kUpdate:
        absl::StrAppend(&out, "~ update ", c.Describe(), "\n");
        for (const FieldChange& f : c.fields) {
          if (f.before.empty()) {
            absl::StrAppend(&out, "    ", f.path, ": ", f.after, "\n");
          } else {
            absl::StrAppend(&out, "    ", f.path, ": ", f.before, " -> ",
                            f.after, "\n");
          }
        }
        break;
      case Action::kDelete:
        absl::StrAppend(&out, "- delete ", c.Describe(), "\n");
        break;
      case Action::kKeep:
        absl::StrAppend(&out, "= keep ", c.Describe(), " (", c.reason, ")\n");
        break;
    }
  }
  if (plan.empty()) {
    absl::StrAppend(&out, "no changes: the cluster matches the factory\n");
  } else {
    absl::StrAppend(&out, "plan: ", plan.Count(Action::kCreate), " to create, ",
                    plan.Count(Action::kUpdate), " to update, ",
                    plan.Count(Action::kDelete), " to delete\n");
  }
  return out;
}

}  // namespace kiln::factory
