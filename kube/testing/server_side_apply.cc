#include "kube/testing/server_side_apply.h"

#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "yaml-cpp/yaml.h"

namespace kiln::kube::testing {
namespace {

using json = nlohmann::json;
using Path = std::vector<std::string>;  // "f:x", "k:{...}", "."

// metadata fields the server owns or that identify the object: never part
// of a field set.
const std::set<std::string>& ServerMetadata() {
  static const auto* s = new std::set<std::string>{
      "name",         "namespace",         "uid",
      "generation",   "resourceVersion",   "creationTimestamp",
      "selfLink",     "deletionTimestamp", "deletionGracePeriodSeconds",
      "managedFields"};
  return *s;
}

bool IsAssociative(const json& v) {
  if (!v.is_array() || v.empty()) return false;
  for (const json& item : v) {
    if (!item.is_object() || !item.contains("name") ||
        !item["name"].is_string()) {
      return false;
    }
  }
  return true;
}

std::string ItemKey(const json& item) {
  return "k:" + json{{"name", item["name"]}}.dump();
}

json Collect(const json& v, int depth);

json CollectChild(const json& child, int depth) {
  if (child.is_object() && !child.empty()) return Collect(child, depth + 1);
  if (IsAssociative(child)) {
    json items = json::object();
    for (const json& item : child) {
      json node = Collect(item, depth + 1);
      node["."] = json::object();
      items[ItemKey(item)] = node;
    }
    return items;
  }
  return json::object();  // a leaf: scalar, atomic list, empty map
}

// depth 0: the object itself (status and type fields are not owned).
json Collect(const json& v, int depth) {
  json fields = json::object();
  for (const auto& [k, child] : v.items()) {
    // stringData is write-only (folded into data on write).
    if (depth == 0 && (k == "apiVersion" || k == "kind" || k == "status" ||
                       k == "stringData")) {
      continue;
    }
    if (depth == 0 && k == "metadata" && child.is_object()) {
      json meta = json::object();
      for (const auto& [mk, mv] : child.items()) {
        if (ServerMetadata().count(mk)) continue;
        meta["f:" + mk] = CollectChild(mv, depth + 1);
      }
      if (!meta.empty()) fields["f:metadata"] = meta;
      continue;
    }
    fields["f:" + k] = CollectChild(child, depth);
  }
  return fields;
}

void Leaves(const json& fields, Path* prefix, std::vector<Path>* out) {
  for (const auto& [k, child] : fields.items()) {
    prefix->push_back(k);
    if (k == "." || child.empty()) {
      out->push_back(*prefix);
    } else {
      Leaves(child, prefix, out);
    }
    prefix->pop_back();
  }
}

std::vector<Path> LeavesOf(const json& fields) {
  std::vector<Path> out;
  Path prefix;
  if (fields.is_object()) Leaves(fields, &prefix, &out);
  return out;
}

// The value at `path` in an object; null when absent.
const json* Lookup(const json& obj, const Path& path) {
  const json* cur = &obj;
  for (const std::string& pe : path) {
    if (pe == ".") return cur;
    if (absl::StartsWith(pe, "f:")) {
      std::string key = pe.substr(2);
      if (!cur->is_object() || !cur->contains(key)) return nullptr;
      cur = &(*cur)[key];
    } else if (absl::StartsWith(pe, "k:")) {
      if (!cur->is_array()) return nullptr;
      const json* found = nullptr;
      for (const json& item : *cur) {
        if (item.is_object() && item.contains("name") && ItemKey(item) == pe) {
          found = &item;
          break;
        }
      }
      if (found == nullptr) return nullptr;
      cur = found;
    } else {
      return nullptr;
    }
  }
  return cur;
}

// Removes the field or list item at `path` from the object.
void RemoveAt(json* obj, const Path& path) {
  if (path.empty()) return;
  Path parent(path.begin(), path.end() - 1);
  std::string last = path.back();
  if (last == ".") {
    if (parent.empty()) return;
    last = parent.back();
    parent.pop_back();
  }
  json* p = const_cast<json*>(Lookup(*obj, parent));
  if (p == nullptr) return;
  if (absl::StartsWith(last, "f:") && p->is_object()) {
    p->erase(last.substr(2));
  } else if (absl::StartsWith(last, "k:") && p->is_array()) {
    for (size_t i = 0; i < p->size(); ++i) {
      const json& item = (*p)[i];
      if (item.is_object() && item.contains("name") && ItemKey(item) == last) {
        p->erase(i);
        break;
      }
    }
  }
}

bool SetContains(const json& fields, const Path& path) {
  const json* cur = &fields;
  for (const std::string& pe : path) {
    if (!cur->is_object() || !cur->contains(pe)) return false;
    cur = &(*cur)[pe];
  }
  return true;
}

void SetAdd(json* fields, const Path& path) {
  json* cur = fields;
  for (const std::string& pe : path) {
    if (!cur->contains(pe)) (*cur)[pe] = json::object();
    cur = &(*cur)[pe];
  }
}

// Removes `path` from a set and prunes the parents it leaves empty.
bool SetRemove(json* fields, const Path& path, size_t i = 0) {
  if (i >= path.size() || !fields->is_object() || !fields->contains(path[i])) {
    return false;
  }
  if (i + 1 == path.size()) {
    fields->erase(path[i]);
    return true;
  }
  json& child = (*fields)[path[i]];
  bool removed = SetRemove(&child, path, i + 1);
  if (removed && child.empty()) fields->erase(path[i]);
  return removed;
}

// ".spec.template.spec.containers[name=\"app\"].image", as the real
// server prints a field in a conflict.
std::string FormatPath(const Path& path) {
  std::string out;
  for (const std::string& pe : path) {
    if (pe == ".") continue;
    if (absl::StartsWith(pe, "f:")) {
      absl::StrAppend(&out, ".", pe.substr(2));
    } else if (absl::StartsWith(pe, "k:")) {
      json key = json::parse(pe.substr(2), nullptr, false);
      std::vector<std::string> parts;
      if (key.is_object()) {
        for (const auto& [k, v] : key.items()) {
          parts.push_back(absl::StrCat(k, "=", v.dump()));
        }
      }
      absl::StrAppend(&out, "[", absl::StrJoin(parts, ","), "]");
    }
  }
  return out;
}

// The applied configuration merged into `live`: maps key by key,
// associative lists item by item, everything else replaced.
void Merge(json* live, const json& applied) {
  if (live->is_object() && applied.is_object()) {
    for (const auto& [k, v] : applied.items()) {
      if (live->contains(k)) {
        Merge(&(*live)[k], v);
      } else {
        (*live)[k] = v;
      }
    }
    return;
  }
  if (IsAssociative(applied) && IsAssociative(*live)) {
    for (const json& item : applied) {
      bool merged = false;
      for (json& l : *live) {
        if (ItemKey(l) == ItemKey(item)) {
          Merge(&l, item);
          merged = true;
          break;
        }
      }
      if (!merged) live->push_back(item);
    }
    return;
  }
  *live = applied;
}

json& EntryFor(json* managed, const std::string& manager,
               const std::string& operation, bool* created) {
  for (json& e : *managed) {
    if (e.value("manager", "") == manager &&
        e.value("operation", "") == operation) {
      *created = false;
      return e;
    }
  }
  managed->push_back({{"manager", manager},
                      {"operation", operation},
                      {"fieldsType", "FieldsV1"},
                      {"fieldsV1", json::object()}});
  *created = true;
  return managed->back();
}

void DropEmptyEntries(json* managed) {
  json kept = json::array();
  for (json& e : *managed) {
    if (e.contains("fieldsV1") && !e["fieldsV1"].empty()) kept.push_back(e);
  }
  *managed = kept;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

json ManagedOf(const json& obj) {
  if (obj.is_object() && obj.contains("metadata") &&
      obj["metadata"].is_object() &&
      obj["metadata"].contains("managedFields") &&
      obj["metadata"]["managedFields"].is_array()) {
    return obj["metadata"]["managedFields"];
  }
  return json::array();
}

json YamlToJson(const YAML::Node& n, int depth) {
  if (depth > 100) throw YAML::Exception(YAML::Mark(), "nesting too deep");
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        o[kv.first.as<std::string>()] = YamlToJson(kv.second, depth + 1);
      }
      return o;
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& item : n) a.push_back(YamlToJson(item, depth + 1));
      return a;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted
      if (s == "null" || s == "~" || s.empty()) return nullptr;
      if (s == "true") return true;
      if (s == "false") return false;
      int64_t i;
      if (absl::SimpleAtoi(s, &i)) return i;
      double d;
      if (s.find_first_not_of("0123456789.eE+-") == std::string::npos &&
          absl::SimpleAtod(s, &d)) {
        return d;
      }
      return s;
    }
    default:
      return nullptr;
  }
}

}  // namespace

ApplyResult ServerSideApply(const json& live, const json& applied_in,
                            const std::string& manager, bool force,
                            const std::string& api_version, absl::Time now) {
  ApplyResult r;
  json applied = applied_in;
  if (applied.contains("metadata") && applied["metadata"].is_object() &&
      applied["metadata"].contains("managedFields")) {
    r.code = 400;
    r.message = "metadata.managedFields must be nil";
    return r;
  }
  applied.erase("status");  // owned through /status, not by apply
  json obj = live.is_null() ? json::object() : live;
  json managed = ManagedOf(obj);
  const json new_set = Collect(applied, 0);
  const std::vector<Path> new_leaves = LeavesOf(new_set);

  // Conflicts: a field another manager owns whose value would change.
  std::vector<std::pair<size_t, Path>> conflicts;
  for (size_t i = 0; i < managed.size(); ++i) {
    const json& e = managed[i];
    if (e.value("manager", "") == manager &&
        e.value("operation", "") == "Apply") {
      continue;
    }
    for (const Path& p : new_leaves) {
      if (p.back() == ".") continue;
      if (!SetContains(e.value("fieldsV1", json::object()), p)) continue;
      const json* lv = Lookup(obj, p);
      const json* av = Lookup(applied, p);
      if (lv == nullptr || av == nullptr || *lv != *av) {
        conflicts.emplace_back(i, p);
      }
    }
  }
  if (!conflicts.empty() && !force) {
    r.code = 409;
    std::vector<std::string> lines;
    r.causes = json::array();
    for (const auto& [i, p] : conflicts) {
      const json& e = managed[i];
      std::string who =
          absl::StrCat("conflict with \"", e.value("manager", ""), "\"");
      if (e.value("operation", "") == "Update") {
        absl::StrAppend(&who, " using ", e.value("apiVersion", api_version));
      }
      lines.push_back(absl::StrCat(who, ": ", FormatPath(p)));
      r.causes.push_back({{"type", "FieldManagerConflict"},
                          {"message", who},
                          {"field", FormatPath(p)}});
    }
    r.message =
        absl::StrCat("Apply failed with ", conflicts.size(),
                     conflicts.size() == 1 ? " conflict: " : " conflicts: ",
                     absl::StrJoin(lines, "; "));
    return r;
  }
  for (const auto& [i, p] : conflicts) {
    json& fields = managed[i]["fieldsV1"];
    SetRemove(&fields, p);
  }

  // Fields this manager no longer sends and nobody else owns go away.
  bool created = false;
  json& own = EntryFor(&managed, manager, "Apply", &created);
  const json old_set = own["fieldsV1"];
  for (const Path& p : LeavesOf(old_set)) {
    if (SetContains(new_set, p)) continue;
    bool shared = false;
    for (const json& e : managed) {
      if (&e == &own) continue;
      if (SetContains(e.value("fieldsV1", json::object()), p)) shared = true;
    }
    if (!shared) RemoveAt(&obj, p);
  }
  Merge(&obj, applied);

  own["apiVersion"] = api_version;
  if (created || old_set != new_set || !own.contains("time")) {
    own["time"] = Rfc3339(now);
  }
  own["fieldsV1"] = new_set;
  DropEmptyEntries(&managed);
  obj["metadata"]["managedFields"] = managed;
  r.object = std::move(obj);
  return r;
}

void TrackUpdate(const json& old, json* next, const std::string& manager,
                 const std::string& api_version, absl::Time now) {
  if (!next->is_object()) return;
  json managed = ManagedOf(*next);
  if (managed.empty()) managed = ManagedOf(old);
  if (manager.empty()) {
    if (!managed.empty()) (*next)["metadata"]["managedFields"] = managed;
    return;
  }
  const json set = Collect(*next, 0);
  std::vector<Path> changed;
  for (const Path& p : LeavesOf(set)) {
    const json* before = old.is_null() ? nullptr : Lookup(old, p);
    const json* after = Lookup(*next, p);
    if (before == nullptr || after == nullptr || *before != *after) {
      changed.push_back(p);
    }
  }
  // Fields gone from the object are nobody's any more.
  for (json& e : managed) {
    if (!e.contains("fieldsV1")) continue;
    for (const Path& p : LeavesOf(e["fieldsV1"])) {
      if (Lookup(*next, p) == nullptr) SetRemove(&e["fieldsV1"], p);
    }
  }
  if (!changed.empty()) {
    for (json& e : managed) {
      if (e.value("manager", "") == manager &&
          e.value("operation", "") == "Update") {
        continue;
      }
      for (const Path& p : changed) SetRemove(&e["fieldsV1"], p);
    }
    bool created = false;
    json& own = EntryFor(&managed, manager, "Update", &created);
    for (const Path& p : changed) SetAdd(&own["fieldsV1"], p);
    own["apiVersion"] = api_version;
    own["time"] = Rfc3339(now);
  }
  DropEmptyEntries(&managed);
  if (!(*next)["metadata"].is_object()) (*next)["metadata"] = json::object();
  if (managed.empty()) {
    (*next)["metadata"].erase("managedFields");
  } else {
    (*next)["metadata"]["managedFields"] = managed;
  }
}

absl::StatusOr<json> ParseApplyBody(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded()) return j;
  try {
    YAML::Node n = YAML::Load(body);
    json out = YamlToJson(n, 0);
    if (!out.is_object()) {
      return absl::InvalidArgumentError("the apply body is not an object");
    }
    return out;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the apply body is neither JSON nor YAML: ", e.what()));
  }
}

std::vector<std::string> FieldPaths(const json& fields_v1) {
  std::vector<std::string> out;
  for (const Path& p : LeavesOf(fields_v1)) {
    std::string s = FormatPath(p);
    if (p.back() == ".") s += "[.]";
    out.push_back(s);
  }
  return out;
}

}  // namespace kiln::kube::testing
