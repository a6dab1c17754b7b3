#include "engine/render/patches.h"

#include <regex>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/render/json_patch.h"
#include "engine/render/strategic_merge.h"

namespace kiln::render {
namespace {

absl::StatusOr<bool> RegexMatch(const std::string& pattern,
                                const std::string& text) {
  if (pattern.empty()) return true;
  try {
    return std::regex_match(text, std::regex(pattern));
  } catch (const std::regex_error&) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid regular expression \"", pattern, "\""));
  }
}

// Splits on commas outside parentheses.
std::vector<std::string> Requirements(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : s) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

absl::StatusOr<bool> MatchesSelector(const std::string& selector,
                                     const Value* map) {
  auto get = [&](const std::string& key, std::string* value) {
    const Value* v = map == nullptr ? nullptr : map->Get(key);
    if (v == nullptr) return false;
    *value = v->ScalarText();
    return true;
  };
  for (std::string req : Requirements(selector)) {
    std::string r(absl::StripAsciiWhitespace(req));
    if (r.empty()) continue;
    std::string value;
    size_t pos;
    if ((pos = r.find(" notin ")) != std::string::npos ||
        (pos = r.find(" in ")) != std::string::npos) {
      bool notin = r.compare(pos, 7, " notin ") == 0;
      std::string key(absl::StripAsciiWhitespace(r.substr(0, pos)));
      std::string set = r.substr(pos + (notin ? 7 : 4));
      set = std::string(absl::StripAsciiWhitespace(set));
      if (set.size() < 2 || set.front() != '(' || set.back() != ')') {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid selector \"", selector, "\""));
      }
      bool found = false;
      bool has = get(key, &value);
      for (absl::string_view v :
           absl::StrSplit(set.substr(1, set.size() - 2), ',')) {
        if (has && absl::StripAsciiWhitespace(v) == value) found = true;
      }
      if (notin ? found : !found) return false;
    } else if ((pos = r.find("!=")) != std::string::npos) {
      std::string key(absl::StripAsciiWhitespace(r.substr(0, pos)));
      std::string want(absl::StripAsciiWhitespace(r.substr(pos + 2)));
      if (get(key, &value) && value == want) return false;
    } else if ((pos = r.find('=')) != std::string::npos) {
      std::string key(absl::StripAsciiWhitespace(r.substr(0, pos)));
      size_t vstart = pos + 1;
      if (vstart < r.size() && r[vstart] == '=') ++vstart;
      std::string want(absl::StripAsciiWhitespace(r.substr(vstart)));
      if (!get(key, &value) || value != want) return false;
    } else if (r[0] == '!') {
      if (get(std::string(absl::StripAsciiWhitespace(r.substr(1))), &value)) {
        return false;
      }
    } else {
      if (!get(r, &value)) return false;
    }
  }
  return true;
}

std::string PatchId(const Value& patch) {
  return absl::StrCat(
      patch.StringAt({"kind"}), " ", patch.StringAt({"metadata", "name"}),
      patch.StringAt({"metadata", "namespace"}).empty()
          ? ""
          : " in namespace " + patch.StringAt({"metadata", "namespace"}));
}

template <typename V>
V* LabelAt(V& obj, const std::vector<std::string>& path,
           const std::string& key) {
  V* v = &obj;
  for (const std::string& seg : path) {
    if (seg[0] == '#') {
      size_t n = std::stoul(seg.substr(1));
      if (!v->IsList() || n >= v->list.size()) return nullptr;
      v = &v->list[n];
    } else {
      auto it = v->map.find(seg);
      if (!v->IsMap() || it == v->map.end()) return nullptr;
      v = &it->second;
    }
  }
  if (!v->IsMap()) return nullptr;
  auto it = v->map.find(key);
  return it == v->map.end() ? nullptr : &it->second;
}

// A strategic merge writes a scalar into the existing (kyaml) node: where
// that node is a label value shared by several places (see AddLabels), the
// new value shows at all of them.
void PropagateSharedLabels(const Value& before, Resource* r) {
  for (const LabelShare& share : r->label_shares) {
    const Value* changed = nullptr;
    const Value* old = nullptr;
    for (const auto& p : share.paths) {
      const Value* a = LabelAt(before, p, share.key);
      const Value* b = LabelAt<const Value>(r->obj, p, share.key);
      if (a != nullptr && b != nullptr && *a != *b) {
        changed = b;
        old = a;
        break;
      }
    }
    if (changed == nullptr) continue;
    Value now = *changed, was = *old;
    for (const auto& p : share.paths) {
      Value* cur = LabelAt(r->obj, p, share.key);
      if (cur != nullptr && *cur == was) *cur = now;
    }
  }
}

}  // namespace

absl::StatusOr<std::vector<size_t>> SelectTargets(
    const Value& selector, const std::vector<Resource>& resources) {
  std::vector<size_t> out;
  std::string group = selector.StringAt({"group"});
  std::string version = selector.StringAt({"version"});
  std::string kind = selector.StringAt({"kind"});
  std::string name = selector.StringAt({"name"});
  std::string ns = selector.StringAt({"namespace"});
  std::string labels = selector.StringAt({"labelSelector"});
  std::string annotations = selector.StringAt({"annotationSelector"});
  for (size_t i = 0; i < resources.size(); ++i) {
    const Resource& r = resources[i];
    if (!group.empty() && r.Group() != group) continue;
    if (!version.empty() && r.Version() != version) continue;
    absl::StatusOr<bool> m = RegexMatch(kind, r.Kind());
    if (!m.ok()) return m.status();
    if (!*m) continue;
    if (!name.empty()) {
      bool any = false;
      std::vector<std::string> names = r.previous_names;
      names.push_back(r.Name());
      for (const std::string& n : names) {
        absl::StatusOr<bool> nm = RegexMatch(name, n);
        if (!nm.ok()) return nm.status();
        any = any || *nm;
      }
      if (!any) continue;
    }
    m = RegexMatch(ns, r.Namespace());
    if (!m.ok()) return m.status();
    if (!*m) continue;
    m = MatchesSelector(labels, r.obj.Path({"metadata", "labels"}));
    if (!m.ok()) return m.status();
    if (!*m) continue;
    m = MatchesSelector(annotations, r.obj.Path({"metadata", "annotations"}));
    if (!m.ok()) return m.status();
    if (!*m) continue;
    out.push_back(i);
  }
  return out;
}

absl::Status ApplyPatch(const std::vector<Value>& docs, const Value* target,
                        const std::string& where,
                        std::vector<Resource>* resources) {
  if (docs.empty()) return absl::OkStatus();
  std::vector<size_t> selected;
  if (target != nullptr) {
    absl::StatusOr<std::vector<size_t>> s = SelectTargets(*target, *resources);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", s.status().message()));
    }
    selected = *std::move(s);
  }
  std::vector<bool> deleted(resources->size(), false);
  if (docs.size() == 1 && docs[0].IsList()) {
    if (target == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": a JSON 6902 patch needs a target"));
    }
    for (size_t i : selected) {
      Resource& r = (*resources)[i];
      Value copy = r.obj;
      // kustomize's objects always carry (internal) annotations while
      // transformers run, so `add /metadata/annotations/KEY` needs no map.
      Value* meta = copy.GetMutable("metadata");
      if (meta != nullptr && meta->IsMap() &&
          meta->Get("annotations") == nullptr) {
        meta->map["annotations"] = Value::EmptyMap();
      }
      absl::Status s = ApplyJsonPatch(docs[0], &copy);
      if (!s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": JSON patch on ", r.IdString(), ": ", s.message()));
      }
      meta = copy.GetMutable("metadata");
      if (meta != nullptr && meta->IsMap()) {
        const Value* ann = meta->Get("annotations");
        if (ann != nullptr && ann->IsMap() && ann->map.empty()) {
          meta->map.erase("annotations");
        }
      }
      // A patch may rename (options.allowNameChange): keep the old name so
      // references written against it still follow.
      std::string old_name = r.Name(), old_ns = r.Namespace();
      r.obj = std::move(copy);
      r.label_shares.clear();  // the patch re-created every node
      if (r.Name() != old_name) r.previous_names.push_back(old_name);
      if (r.Namespace() != old_ns) r.previous_namespaces.push_back(old_ns);
    }
    return absl::OkStatus();
  }
  for (const Value& patch : docs) {
    if (!patch.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": a patch must be a map or a list of ops"));
    }
    std::vector<size_t> targets = selected;
    if (target == nullptr) {
      std::string kind = patch.StringAt({"kind"});
      std::string api = patch.StringAt({"apiVersion"});
      std::string name = patch.StringAt({"metadata", "name"});
      std::string ns = patch.StringAt({"metadata", "namespace"});
      for (size_t i = 0; i < resources->size(); ++i) {
        const Resource& r = (*resources)[i];
        if (r.Kind() != kind || r.ApiVersion() != api || !r.HadName(name)) {
          continue;
        }
        if (!ns.empty() && !r.HadNamespace(ns)) continue;
        targets.push_back(i);
      }
      if (targets.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            where, ": no resource matches the patch for ", PatchId(patch)));
      }
      if (targets.size() > 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": more than one resource matches the patch for ",
            PatchId(patch)));
      }
    }
    for (size_t i : targets) {
      Resource& r = (*resources)[i];
      Value p = patch;
      if (target != nullptr) {
        // A targeted patch never renames or re-kinds what it selected.
        p.map.erase("apiVersion");
        p.map.erase("kind");
        if (Value* meta = p.GetMutable("metadata")) {
          meta->map.erase("name");
          meta->map.erase("namespace");
        }
      } else if (Value* meta = p.GetMutable("metadata")) {
        meta->map.erase("name");
        meta->map.erase("namespace");
      }
      Value before = r.obj;
      if (!StrategicMerge(p, IsBuiltinKind(r.Kind()), &r.obj)) {
        deleted[i] = true;
      }
      PropagateSharedLabels(before, &r);
    }
  }
  std::vector<Resource> kept;
  for (size_t i = 0; i < resources->size(); ++i) {
    if (!deleted[i]) kept.push_back(std::move((*resources)[i]));
  }
  *resources = std::move(kept);
  return absl::OkStatus();
}

}  // namespace kiln::render
