#include "engine/render/strategic_merge.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace kiln::render {
namespace {

std::string Directive(const Value& v) {
  const Value* d = v.Get("$patch");
  return d != nullptr && d->IsString() ? d->text : "";
}

// A copy without `$patch`-style directive keys, recursively.
Value Clean(const Value& v) {
  if (v.IsMap()) {
    Value out = Value::EmptyMap();
    for (const auto& [k, val] : v.map) {
      if (absl::StartsWith(k, "$")) continue;
      out.map[k] = Clean(val);
    }
    return out;
  }
  if (v.IsList()) {
    Value out = Value::EmptyList();
    for (const Value& item : v.list) {
      if (item.IsMap() && Directive(item) == "delete") continue;
      if (item.IsMap() && Directive(item) == "replace") continue;
      out.list.push_back(Clean(item));
    }
    return out;
  }
  return v;
}

std::string MergeKey(const std::string& field, const Value& a, const Value& b) {
  static const std::pair<const char*, const char*> kKeys[] = {
      {"containers", "name"},
      {"initContainers", "name"},
      {"ephemeralContainers", "name"},
      {"env", "name"},
      {"volumes", "name"},
      {"volumeMounts", "mountPath"},
      {"volumeDevices", "devicePath"},
      {"imagePullSecrets", "name"},
      {"hostAliases", "ip"},
      {"topologySpreadConstraints", "topologyKey"},
      {"resourceClaims", "name"},
      {"ownerReferences", "uid"},
      {"conditions", "type"},
  };
  if (field == "ports") {
    for (const Value* l : {&a, &b}) {
      for (const Value& item : l->list) {
        if (item.Get("containerPort") != nullptr) return "containerPort";
      }
    }
    return "port";
  }
  for (const auto& [f, k] : kKeys) {
    if (field == f) return k;
  }
  return "";
}

void MergeMap(const Value& patch, bool builtin, Value* target);

// A list of scalars merged as a set (metadata.finalizers): the patch's
// items first, then the original items it did not repeat.
void MergeScalarSet(const Value& patch, Value* target) {
  for (const Value* l : {&patch, static_cast<const Value*>(target)}) {
    for (const Value& item : l->list) {
      if (!item.IsScalar()) {
        *target = Clean(patch);
        return;
      }
    }
  }
  Value out = Value::EmptyList();
  auto has = [&](const Value& v) {
    for (const Value& o : out.list) {
      if (o == v) return true;
    }
    return false;
  };
  for (const Value& item : patch.list) {
    if (!has(item)) out.list.push_back(item);
  }
  for (const Value& item : target->list) {
    if (!has(item)) out.list.push_back(item);
  }
  *target = std::move(out);
}

// Container and Service ports are keyed by (port, protocol). When any item
// on either side names a protocol, kustomize (kyaml) merges like this:
//   - a patch item with the same port and the same protocol as an original
//     is merged into it, where the original stands;
//   - a patch item whose port matches an original's while either of them
//     has no protocol is dropped;
//   - any other patch item is new: new items go first, in patch order,
//     before all the originals.
// Returns false (nothing done) when no item has a protocol: then the port
// alone is the key, as for any other list.
bool MergePortsComposite(const std::string& key, const Value& patch,
                         bool builtin, Value* target) {
  if (!target->IsList()) return false;
  bool any_protocol = false;
  for (const Value* l : {&patch, static_cast<const Value*>(target)}) {
    for (const Value& item : l->list) {
      if (!item.IsMap()) return false;
      if (item.Get("protocol") != nullptr) any_protocol = true;
    }
  }
  if (!any_protocol) return false;
  Value fresh = Value::EmptyList();
  for (const Value& item : patch.list) {
    const Value* port = item.Get(key);
    const Value* proto = item.Get("protocol");
    bool deleted = Directive(item) == "delete";
    int exact = -1;
    bool partial = false;
    for (size_t i = 0; port != nullptr && i < target->list.size(); ++i) {
      const Value& o = target->list[i];
      const Value* op = o.Get(key);
      if (op == nullptr || *op != *port) continue;
      const Value* oproto = o.Get("protocol");
      if (proto != nullptr && oproto != nullptr) {
        if (*proto == *oproto) {
          exact = static_cast<int>(i);
          break;
        }
      } else {
        partial = true;
      }
    }
    if (exact >= 0) {
      if (deleted) {
        target->list.erase(target->list.begin() + exact);
      } else {
        MergeMap(item, builtin, &target->list[exact]);
      }
      continue;
    }
    if (partial || deleted) continue;
    fresh.list.push_back(Clean(item));
  }
  for (Value& o : target->list) fresh.list.push_back(std::move(o));
  *target = std::move(fresh);
  return true;
}

void MergeList(const std::string& field, const Value& patch, bool builtin,
               Value* target) {
  for (const Value& item : patch.list) {
    if (item.IsMap() && Directive(item) == "replace") {
      *target = Clean(patch);
      return;
    }
  }
  if (builtin && field == "finalizers" && target->IsList()) {
    MergeScalarSet(patch, target);
    return;
  }
  std::string key = builtin ? MergeKey(field, *target, patch) : "";
  if (key == "containerPort" || key == "port") {
    if (MergePortsComposite(key, patch, builtin, target)) return;
  }
  bool maps = true;
  for (const Value& item : patch.list) maps = maps && item.IsMap();
  if (key.empty() || !maps || !target->IsList()) {
    *target = Clean(patch);
    return;
  }
  std::vector<bool> used(target->list.size(), false);
  Value out = Value::EmptyList();
  for (const Value& item : patch.list) {
    const Value* k = item.Get(key);
    int match = -1;
    if (k != nullptr) {
      for (size_t i = 0; i < target->list.size(); ++i) {
        const Value* tk = target->list[i].Get(key);
        if (!used[i] && tk != nullptr && *tk == *k) {
          match = static_cast<int>(i);
          break;
        }
      }
    }
    if (Directive(item) == "delete") {
      if (match >= 0) used[match] = true;
      continue;
    }
    if (match >= 0) {
      used[match] = true;
      Value merged = target->list[match];
      MergeMap(item, builtin, &merged);
      out.list.push_back(std::move(merged));
    } else {
      out.list.push_back(Clean(item));
    }
  }
  for (size_t i = 0; i < target->list.size(); ++i) {
    if (!used[i]) out.list.push_back(std::move(target->list[i]));
  }
  *target = std::move(out);
}

void MergeMap(const Value& patch, bool builtin, Value* target) {
  if (Directive(patch) == "replace") {
    *target = Clean(patch);
    return;
  }
  if (!target->IsMap()) {
    *target = Clean(patch);
    return;
  }
  for (const auto& [k, pv] : patch.map) {
    if (absl::StartsWith(k, "$")) continue;
    if (pv.IsNull()) {
      target->map.erase(k);
      continue;
    }
    Value* tv = target->GetMutable(k);
    if (tv == nullptr) {
      if (pv.IsMap() && Directive(pv) == "delete") continue;
      target->map[k] = Clean(pv);
      continue;
    }
    if (pv.IsMap()) {
      if (Directive(pv) == "delete") {
        target->map.erase(k);
      } else {
        MergeMap(pv, builtin, tv);
      }
    } else if (pv.IsList()) {
      MergeList(k, pv, builtin, tv);
    } else {
      *tv = pv;
    }
  }
}

}  // namespace

bool StrategicMerge(const Value& patch, bool builtin_kind, Value* target) {
  if (Directive(patch) == "delete") return false;
  MergeMap(patch, builtin_kind, target);
  return true;
}

}  // namespace kiln::render
