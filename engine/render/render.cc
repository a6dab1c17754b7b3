#include "engine/render/render.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/render/convert.h"
#include "engine/render/emit.h"
#include "engine/render/generators.h"
#include "engine/render/hash.h"
#include "engine/render/patches.h"
#include "engine/render/resource.h"
#include "engine/render/schema.h"
#include "engine/render/transforms.h"
#include "engine/yaml/parse.h"

namespace kiln::render {
namespace {

constexpr size_t kMaxFileBytes = 8 << 20;
constexpr int kMaxDepth = 100;

std::string JoinPath(const std::string& dir, const std::string& rel) {
  if (rel.empty() || rel[0] == '/') return rel;
  if (dir.empty() || dir == ".") return rel;
  return dir.back() == '/' ? dir + rel : dir + "/" + rel;
}

bool RealPath(const std::string& path, std::string* out) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) return false;
  *out = buf;
  return true;
}

// Absolute, with "." and ".." resolved textually (symlinks left alone, so
// files that are links, as in Bazel runfiles, stay where they are named).
std::string LexicalAbsolute(const std::string& path) {
  std::string full = path;
  if (full.empty() || full[0] != '/') {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) return path;
    full = std::string(cwd) + "/" + full;
  }
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(full, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.emplace_back(part);
  }
  return "/" + absl::StrJoin(parts, "/");
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool IsRemote(const std::string& entry) {
  return absl::StrContains(entry, "://") ||
         absl::StartsWith(entry, "github.com/") ||
         absl::StartsWith(entry, "git@") || absl::StartsWith(entry, "git::");
}

StringPairs PairsOf(const Value* map) {
  StringPairs out;
  if (map == nullptr || !map->IsMap()) return out;
  for (const auto& [k, v] : map->map) out.emplace_back(k, v.ScalarText());
  return out;
}

bool BoolAt(const Value& v, const char* key) {
  const Value* b = v.Get(key);
  return b != nullptr && b->type == Value::Type::kBool && b->boolean;
}

// A loaded kustomization file.
struct Kustomization {
  std::string dir;   // as the caller named it (for messages)
  std::string root;  // real path, for load restriction
  std::string file;  // display path of the kustomization file
  yaml::Node node;
  Value value;
};

class Builder {
 public:
  absl::StatusOr<std::vector<Resource>> BuildDir(const std::string& dir,
                                                 bool component) {
    absl::StatusOr<Kustomization> k = Load(dir, component);
    if (!k.ok()) return k.status();
    for (const std::string& open : stack_) {
      if (open == k->root) {
        return absl::FailedPreconditionError(
            absl::StrCat(k->file, ": cycle between kustomizations: ",
                         absl::StrJoin(display_stack_, " -> "), " -> ", dir));
      }
    }
    if (stack_.size() >= kMaxDepth) {
      return absl::ResourceExhaustedError(
          absl::StrCat(k->file, ": kustomizations nested too deeply"));
    }
    stack_.push_back(k->root);
    display_stack_.push_back(dir);
    std::vector<Resource> resources;
    absl::Status s = Apply(*k, &resources);
    stack_.pop_back();
    display_stack_.pop_back();
    if (!s.ok()) return s;
    return resources;
  }

  absl::StatusOr<Kustomization> Load(const std::string& dir, bool component) {
    Kustomization k;
    k.dir = dir;
    if (!IsDirectory(dir)) {
      return absl::NotFoundError(
          absl::StrCat("'", dir, "': no such directory"));
    }
    std::vector<std::string> found;
    for (const char* name :
         {"kustomization.yaml", "kustomization.yml", "Kustomization"}) {
      std::string p = JoinPath(dir, name);
      struct stat st;
      if (stat(p.c_str(), &st) == 0) found.push_back(p);
    }
    if (found.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "found multiple kustomization files: ", absl::StrJoin(found, ", "),
          " (keep one)"));
    }
    if (!found.empty()) k.file = found[0];
    if (k.file.empty()) {
      return absl::NotFoundError(absl::StrCat(
          "unable to find one of 'kustomization.yaml', 'kustomization.yml' "
          "or 'Kustomization' in directory '",
          dir, "'"));
    }
    if (!RealPath(dir, &k.root)) {
      return absl::NotFoundError(absl::StrCat("'", dir, "': cannot resolve"));
    }
    absl::StatusOr<std::string> text =
        yaml::ReadFileCapped(k.file, kMaxFileBytes);
    if (!text.ok()) return text.status();
    absl::StatusOr<yaml::Node> node = yaml::Parse(*text, k.file);
    if (!node.ok()) return node.status();
    k.node = *std::move(node);
    absl::Status valid = ValidateKustomization(k.node, k.file);
    if (!valid.ok()) return valid;
    absl::StatusOr<Value> value = FromYaml(k.node, k.file);
    if (!value.ok()) return value.status();
    k.value = *std::move(value);
    if (k.value.IsNull()) k.value = Value::EmptyMap();
    if (!k.value.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(k.file, ": a kustomization must be a map"));
    }
    std::string kind = k.value.StringAt({"kind"});
    if (component && kind != "Component") {
      return absl::InvalidArgumentError(absl::StrCat(
          k.file, ": a component must have kind: Component (found '", kind,
          "')"));
    }
    if (!component && kind == "Component") {
      return absl::InvalidArgumentError(absl::StrCat(
          k.file, ": a Component can only be listed under components"));
    }
    return k;
  }

  // "FILE:LINE:COL" of the i-th item of a list field, or FILE.
  static std::string Where(const Kustomization& k, const char* field,
                           size_t i) {
    const yaml::Node* list = k.node.Find(field);
    if (list != nullptr && list->IsSequence() && i < list->items().size()) {
      yaml::Mark m = list->items()[i].mark();
      return absl::StrCat(k.file, ":", m.line, ":", m.column);
    }
    return k.file;
  }

  // Reads a file named relative to k's root, refusing anything outside it.
  absl::StatusOr<std::string> ReadInRoot(const Kustomization& k,
                                         const std::string& rel,
                                         const std::string& where) {
    std::string path = JoinPath(k.dir, rel);
    std::string root = LexicalAbsolute(k.dir);
    std::string abs = LexicalAbsolute(path);
    if (!absl::StartsWith(abs, root == "/" ? root : root + "/")) {
      return absl::PermissionDeniedError(
          absl::StrCat(where, ": security; file '", path,
                       "' is not in or below '", k.dir, "'"));
    }
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
      return absl::NotFoundError(
          absl::StrCat(where, ": '", path, "': no such file or directory"));
    }
    absl::StatusOr<std::string> text =
        yaml::ReadFileCapped(path, kMaxFileBytes);
    if (!text.ok()) {
      return absl::Status(text.status().code(),
                          absl::StrCat(where, ": ", text.status().message()));
    }
    return text;
  }

  static absl::Status AddResource(Resource r, const std::string& where,
                                  std::vector<Resource>* resources) {
    if (!r.obj.IsMap() || r.Kind().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": a resource needs apiVersion and kind"));
    }
    if (r.Name().empty() &&
        r.obj.Path({"metadata", "generateName"}) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", r.Kind(), " has no metadata.name"));
    }
    resources->push_back(std::move(r));
    return absl::OkStatus();
  }

  absl::Status AddFile(const Kustomization& k, const std::string& rel,
                       const std::string& where,
                       std::vector<Resource>* resources) {
    absl::StatusOr<std::string> text = ReadInRoot(k, rel, where);
    if (!text.ok()) return text.status();
    std::string path = JoinPath(k.dir, rel);
    absl::StatusOr<std::vector<Value>> docs = ParseYamlStream(*text, path);
    if (!docs.ok()) return docs.status();
    for (Value& doc : *docs) {
      std::vector<Value> objs;
      if (doc.IsMap() && doc.StringAt({"kind"}) == "List" &&
          doc.Get("items") != nullptr && doc.Get("items")->IsList()) {
        for (Value& item : doc.GetMutable("items")->list) {
          objs.push_back(std::move(item));
        }
      } else {
        objs.push_back(std::move(doc));
      }
      for (Value& obj : objs) {
        Resource r;
        r.obj = std::move(obj);
        r.origin = path;
        absl::Status s = AddResource(std::move(r), path, resources);
        if (!s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Value>> PatchDocs(const Kustomization& k,
                                               const Value& entry,
                                               const std::string& where) {
    std::string text, name = where;
    const Value* path = entry.Get("path");
    const Value* inline_patch = entry.Get("patch");
    if (entry.IsString()) {
      // patchesStrategicMerge: a file name, or the patch itself.
      if (entry.text.find('\n') == std::string::npos &&
          !absl::StrContains(entry.text, ": ")) {
        path = &entry;
      } else {
        inline_patch = &entry;
      }
    }
    if (path != nullptr && path->IsString()) {
      absl::StatusOr<std::string> t = ReadInRoot(k, path->text, where);
      if (!t.ok()) return t.status();
      text = *std::move(t);
      name = JoinPath(k.dir, path->text);
    } else if (inline_patch != nullptr && inline_patch->IsString()) {
      text = inline_patch->text;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": a patch needs path: or patch:"));
    }
    return ParseYamlStream(text, name);
  }

  absl::Status RunPatches(const Kustomization& k, const char* field,
                          std::vector<Resource>* resources) {
    const Value* list = k.value.Get(field);
    if (list == nullptr || !list->IsList()) return absl::OkStatus();
    for (size_t i = 0; i < list->list.size(); ++i) {
      const Value& entry = list->list[i];
      std::string where = Where(k, field, i);
      absl::StatusOr<std::vector<Value>> docs = PatchDocs(k, entry, where);
      if (!docs.ok()) return docs.status();
      const Value* target = entry.IsMap() ? entry.Get("target") : nullptr;
      if (target != nullptr && !target->IsMap()) target = nullptr;
      absl::Status s = ApplyPatch(*docs, target, where, resources);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status RunGenerators(const Kustomization& k, bool secret,
                             std::vector<Resource>* resources) {
    const char* field = secret ? "secretGenerator" : "configMapGenerator";
    const Value* list = k.value.Get(field);
    if (list == nullptr || !list->IsList()) return absl::OkStatus();
    const Value* options = k.value.Get("generatorOptions");
    for (size_t i = 0; i < list->list.size(); ++i) {
      std::string where = Where(k, field, i);
      const Value& entry = list->list[i];
      absl::StatusOr<Resource> gen = Generate(
          entry, options, secret,
          [&](const std::string& rel) { return ReadInRoot(k, rel, where); });
      if (!gen.ok()) {
        if (absl::StartsWith(gen.status().message(), k.file)) {
          return gen.status();
        }
        return absl::Status(gen.status().code(),
                            absl::StrCat(where, ": ", gen.status().message()));
      }
      gen->origin = where;
      std::string behavior = entry.StringAt({"behavior"});
      if (behavior.empty() || behavior == "create") {
        absl::Status s = AddResource(*std::move(gen), where, resources);
        if (!s.ok()) return s;
        continue;
      }
      if (behavior != "merge" && behavior != "replace") {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": unknown behavior '", behavior, "'"));
      }
      Resource* existing = nullptr;
      for (Resource& r : *resources) {
        if (r.Kind() == gen->Kind() && r.HadName(gen->Name()) &&
            (gen->Namespace().empty() || r.HadNamespace(gen->Namespace()))) {
          existing = &r;
        }
      }
      if (existing == nullptr) {
        return absl::NotFoundError(absl::StrCat(
            where, ": behavior ", behavior, " but no ", gen->Kind(), " named '",
            gen->Name(), "' to ", behavior, " with"));
      }
      Value& obj = existing->obj;
      for (const char* data : {"data", "binaryData"}) {
        const Value* from = gen->obj.Get(data);
        if (behavior == "replace") obj.map.erase(data);
        if (from == nullptr) continue;
        for (const auto& [key, v] : from->map) obj.At(data).At(key) = v;
      }
      for (const char* meta : {"labels", "annotations"}) {
        const Value* from = gen->obj.Path({"metadata", meta});
        if (from == nullptr || !from->IsMap()) continue;
        for (const auto& [key, v] : from->map) {
          obj.At("metadata").At(meta).At(key) = v;
        }
      }
      // A hash suffix needs both layers to want one: a base that disabled
      // it keeps its name through an overlay's merge, and vice versa.
      existing->needs_hash = existing->generated
                                 ? existing->needs_hash && gen->needs_hash
                                 : gen->needs_hash;
      existing->generated = true;
      if (existing->hash_base_name.empty()) {
        existing->hash_base_name = gen->hash_base_name;
      }
    }
    return absl::OkStatus();
  }

  // Two resources with one id (kind, group, version, name, namespace).
  static absl::Status CheckUniqueIds(const std::vector<Resource>& resources) {
    absl::flat_hash_set<std::string> seen;
    seen.reserve(resources.size());
    for (const Resource& r : resources) {
      if (!seen.insert(r.IdString() + "|" + r.Group()).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            r.origin, ": may not add resource with an already registered id: ",
            r.IdString()));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Apply(const Kustomization& k, std::vector<Resource>* resources) {
    const Value& kv = k.value;
    // resources, then the legacy `bases:` (kustomize appends them).
    for (const char* field : {"resources", "bases"}) {
      const Value* list = kv.Get(field);
      if (list == nullptr || !list->IsList()) continue;
      for (size_t i = 0; i < list->list.size(); ++i) {
        std::string entry = list->list[i].ScalarText();
        std::string where = Where(k, field, i);
        if (IsRemote(entry)) {
          return absl::UnimplementedError(
              absl::StrCat(where, ": remote resource '", entry,
                           "' is not supported (kiln renders offline)"));
        }
        std::string path = JoinPath(k.dir, entry);
        if (IsDirectory(path)) {
          absl::StatusOr<std::vector<Resource>> sub = BuildDir(path, false);
          if (!sub.ok()) {
            return absl::Status(
                sub.status().code(),
                absl::StrCat(where, ": ", sub.status().message()));
          }
          for (Resource& r : *sub) {
            absl::Status s = AddResource(std::move(r), where, resources);
            if (!s.ok()) return s;
          }
        } else {
          absl::Status s = AddFile(k, entry, where, resources);
          if (!s.ok()) return s;
        }
      }
    }
    // generators, then components (kustomize v5 runs a kustomization's
    // generators before its components, so a component's transformers
    // reach what the generators made).
    absl::Status s = RunGenerators(k, false, resources);
    if (s.ok()) s = RunGenerators(k, true, resources);
    if (!s.ok()) return s;
    // components
    if (const Value* list = kv.Get("components"); list && list->IsList()) {
      for (size_t i = 0; i < list->list.size(); ++i) {
        std::string where = Where(k, "components", i);
        std::string path = JoinPath(k.dir, list->list[i].ScalarText());
        absl::StatusOr<Kustomization> c = Load(path, true);
        if (!c.ok()) {
          return absl::Status(c.status().code(),
                              absl::StrCat(where, ": ", c.status().message()));
        }
        for (const std::string& open : stack_) {
          if (open == c->root) {
            return absl::FailedPreconditionError(
                absl::StrCat(where, ": cycle through component ", path));
          }
        }
        stack_.push_back(c->root);
        absl::Status applied = Apply(*c, resources);
        stack_.pop_back();
        if (!applied.ok()) return applied;
      }
    }
    s = CheckUniqueIds(*resources);
    if (!s.ok()) return s;
    // transformers, in kustomize's order
    s = RunPatches(k, "patchesStrategicMerge", resources);
    if (s.ok()) s = RunPatches(k, "patches", resources);
    if (!s.ok()) return s;
    SetNamespace(kv.StringAt({"namespace"}), resources);
    AddNameAffixes(kv.StringAt({"namePrefix"}), kv.StringAt({"nameSuffix"}),
                   resources);
    if (const Value* labels = kv.Get("labels"); labels && labels->IsList()) {
      for (const Value& l : labels->list) {
        AddLabels(PairsOf(l.Get("pairs")), BoolAt(l, "includeSelectors"),
                  BoolAt(l, "includeTemplates"), resources);
      }
    }
    AddLabels(PairsOf(kv.Get("commonLabels")), true, true, resources);
    AddAnnotations(PairsOf(kv.Get("commonAnnotations")), resources);
    s = RunPatches(k, "patchesJson6902", resources);
    if (!s.ok()) return s;
    if (const Value* list = kv.Get("replicas"); list && list->IsList()) {
      for (const Value& r : list->list) {
        const Value* count = r.Get("count");
        SetReplicas(r.StringAt({"name"}), count ? *count : Value::Int(0),
                    resources);
      }
    }
    if (const Value* list = kv.Get("images"); list && list->IsList()) {
      for (const Value& img : list->list) {
        ImageRule rule;
        rule.name = img.StringAt({"name"});
        rule.new_name = img.StringAt({"newName"});
        const Value* tag = img.Get("newTag");
        rule.has_tag = tag != nullptr && !tag->IsNull();
        if (rule.has_tag) rule.new_tag = tag->ScalarText();
        rule.digest = img.StringAt({"digest"});
        SetImage(rule, resources);
      }
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::string> stack_;
  std::vector<std::string> display_stack_;
};

// The pipeline's overrides, after the kustomization's own transforms. An
// image override that matches no container image is an error: it would
// otherwise leave a manifest that does not run what the pipeline built.
absl::Status ApplyOverrides(const RenderOverrides& o,
                            std::vector<Resource>* res) {
  SetNamespace(o.namespace_, res);
  AddNameAffixes(o.name_prefix, o.name_suffix, res);
  AddLabels(o.labels, true, true, res);
  for (const v1::ImageOverride& img : o.images) {
    ImageRule rule;
    rule.name = img.name();
    rule.new_name = img.new_name();
    rule.has_tag = !img.new_tag().empty();
    rule.new_tag = img.new_tag();
    rule.digest = img.digest();
    if (SetImage(rule, res) == 0) {
      return absl::NotFoundError(absl::StrCat(
          "image override '", img.name(),
          "' matches no container image in the rendered manifests (an image "
          "is matched by its name after the kustomization's own images: "
          "entries, without tag or digest)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> RenderKustomization(
    const std::string& dir, const RenderOverrides& overrides) {
  Builder builder;
  absl::StatusOr<std::vector<Resource>> built = builder.BuildDir(dir, false);
  if (!built.ok()) return built.status();
  std::vector<Resource> resources = *std::move(built);
  if (absl::Status s = ApplyOverrides(overrides, &resources); !s.ok()) {
    return s;
  }
  for (Resource& r : resources) {
    if (!r.needs_hash) continue;
    // kustomize hashes the generated object before it carries a name.
    r.SetName(r.Name() + "-" + ContentHash(r.obj, ""));
  }
  absl::Status fixed = FixNameReferences(&resources);
  if (!fixed.ok()) return fixed;
  for (Resource& r : resources) {
    Value* meta = r.obj.GetMutable("metadata");
    if (meta == nullptr) continue;
    const Value* ann = meta->Get("annotations");
    if (ann != nullptr &&
        (ann->IsNull() || (ann->IsMap() && ann->map.empty()))) {
      meta->map.erase("annotations");
    }
  }
  absl::StatusOr<Kustomization> top = builder.Load(dir, false);
  std::string order =
      top.ok() ? top->value.StringAt({"sortOptions", "order"}) : "";
  if (order != "fifo") SortLegacy(&resources);
  std::vector<Value> docs;
  docs.reserve(resources.size());
  for (Resource& r : resources) docs.push_back(std::move(r.obj));
  return EmitStream(docs);
}

}  // namespace kiln::render
