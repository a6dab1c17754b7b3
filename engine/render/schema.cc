#include "engine/render/schema.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace kiln::render {
namespace {

enum class T {
  kAny,
  kStr,
  kBool,
  kInt,
  kStrList,
  kStrMap,
  kStruct,
  kList,
  kUnsupported
};

struct Type;
using Fields = std::map<std::string, const Type*>;

struct Type {
  T t;
  Fields fields;               // kStruct
  const Type* item = nullptr;  // kList
  const char* name = "";       // for messages (struct name)
};

const Type* Make(T t) { return new Type{t, {}, nullptr, ""}; }

const Type* Struct(const char* name, Fields f) {
  return new Type{T::kStruct, std::move(f), nullptr, name};
}

const Type* List(const Type* item) { return new Type{T::kList, {}, item, ""}; }

const Type* KustomizationType() {
  static const Type* k = [] {
    const Type* any = Make(T::kAny);
    const Type* str = Make(T::kStr);
    const Type* boolean = Make(T::kBool);
    const Type* integer = Make(T::kInt);
    const Type* strs = Make(T::kStrList);
    const Type* strmap = Make(T::kStrMap);
    const Type* unsupported = Make(T::kUnsupported);
    const Type* gen_options =
        Struct("GeneratorOptions", {{"labels", strmap},
                                    {"annotations", strmap},
                                    {"disableNameSuffixHash", boolean},
                                    {"immutable", boolean}});
    const Type* generator = Struct("generator", {{"name", str},
                                                 {"namespace", str},
                                                 {"behavior", str},
                                                 {"files", strs},
                                                 {"literals", strs},
                                                 {"envs", strs},
                                                 {"env", str},
                                                 {"type", str},
                                                 {"options", gen_options}});
    const Type* selector = Struct("Selector", {{"group", str},
                                               {"version", str},
                                               {"kind", str},
                                               {"name", str},
                                               {"namespace", str},
                                               {"labelSelector", str},
                                               {"annotationSelector", str}});
    const Type* patch = Struct(
        "Patch",
        {{"path", str},
         {"patch", str},
         {"target", selector},
         {"options", Struct("PatchOptions", {{"allowNameChange", boolean},
                                             {"allowKindChange", boolean}})}});
    return Struct(
        "Kustomization",
        {{"apiVersion", str},
         {"kind", str},
         {"metadata", any},
         {"namePrefix", str},
         {"nameSuffix", str},
         {"namespace", str},
         {"commonLabels", strmap},
         {"labels", List(Struct("Label", {{"pairs", strmap},
                                          {"includeSelectors", boolean},
                                          {"includeTemplates", boolean},
                                          {"fields", unsupported}}))},
         {"commonAnnotations", strmap},
         {"patchesStrategicMerge", strs},
         {"patchesJson6902", List(patch)},
         {"patches", List(patch)},
         {"images", List(Struct("Image", {{"name", str},
                                          {"newName", str},
                                          {"newTag", str},
                                          {"digest", str}}))},
         {"replicas",
          List(Struct("Replica", {{"name", str}, {"count", integer}}))},
         {"sortOptions",
          Struct("SortOptions", {{"order", str}, {"legacySortOptions", any}})},
         {"resources", strs},
         {"components", strs},
         {"bases", strs},
         {"configMapGenerator", List(generator)},
         {"secretGenerator", List(generator)},
         {"generatorOptions", gen_options},
         // Known to kustomize, not implemented by kiln: refused.
         {"vars", unsupported},
         {"replacements", unsupported},
         {"helmCharts", unsupported},
         {"helmGlobals", unsupported},
         {"helmChartInflationGenerator", unsupported},
         {"configurations", unsupported},
         {"crds", unsupported},
         {"openapi", unsupported},
         {"generators", unsupported},
         {"transformers", unsupported},
         {"validators", unsupported},
         {"buildMetadata", unsupported},
         {"imageTags", unsupported}});
  }();
  return k;
}

// How kustomize's YAML decoding (YAML 1.1 rules) types a plain scalar.
const char* PlainScalarKind(const yaml::Node& n) {
  if (n.quoted()) return "string";
  if (!n.tag().empty()) {
    if (n.tag() == "tag:yaml.org,2002:str" || n.tag() == "!!str") {
      return "string";
    }
  }
  const std::string& v = n.value();
  if (v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL") {
    return "null";
  }
  static const char* bools[] = {
      "y",  "Y",  "yes",  "Yes",  "YES",  "n",     "N",     "no",
      "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
      "on", "On", "ON",   "off",  "Off",  "OFF"};
  for (const char* b : bools) {
    if (v == b) return "bool";
  }
  size_t i = 0;
  if (v[i] == '-' || v[i] == '+') ++i;
  bool digits = false, dot = false, exp = false;
  for (; i < v.size(); ++i) {
    char c = v[i];
    if (absl::ascii_isdigit(c) || c == '_') {
      digits = true;
    } else if (c == '.' && !dot && !exp) {
      dot = true;
    } else if ((c == 'e' || c == 'E') && digits && !exp) {
      exp = true;
      if (i + 1 < v.size() && (v[i + 1] == '-' || v[i + 1] == '+')) ++i;
    } else {
      return "string";
    }
  }
  return digits ? "number" : "string";
}

size_t Distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub =
          prev[j - 1] +
          (absl::ascii_tolower(a[i - 1]) == absl::ascii_tolower(b[j - 1]) ? 0
                                                                          : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

class Checker {
 public:
  explicit Checker(const std::string& file) : file_(file) {}

  absl::Status Check(const yaml::Node& n, const Type* type,
                     const std::string& field) {
    switch (type->t) {
      case T::kAny:
        return absl::OkStatus();
      case T::kUnsupported:
        return absl::UnimplementedError(absl::StrCat(
            At(n), ": '", field,
            "' is not supported by kiln render (kustomize would apply it; "
            "kiln refuses rather than render something different)"));
      case T::kStr:
        return Scalar(n, field, "string");
      case T::kBool:
        return Scalar(n, field, "bool");
      case T::kInt:
        return Scalar(n, field, "number");
      case T::kStrList:
        if (IsNull(n)) return absl::OkStatus();
        if (!n.IsSequence()) return Wrong(n, field, "a list of strings");
        for (const yaml::Node& item : n.items()) {
          absl::Status s = Scalar(item, field, "string");
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      case T::kStrMap:
        if (IsNull(n)) return absl::OkStatus();
        if (!n.IsMapping()) return Wrong(n, field, "a map of strings");
        for (const auto& [k, v] : n.entries()) {
          absl::Status s = Scalar(v, field + "." + k.value(), "string");
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      case T::kList:
        if (IsNull(n)) return absl::OkStatus();
        if (!n.IsSequence()) return Wrong(n, field, "a list");
        for (const yaml::Node& item : n.items()) {
          absl::Status s = Check(item, type->item, field);
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      case T::kStruct:
        if (IsNull(n)) return absl::OkStatus();
        if (!n.IsMapping()) return Wrong(n, field, "a map");
        for (const auto& [k, v] : n.entries()) {
          auto it = type->fields.find(k.value());
          if (it == type->fields.end()) return Unknown(k, type);
          std::string sub = field.empty() ? k.value() : field + "." + k.value();
          absl::Status s = Check(v, it->second, sub);
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
    }
    return absl::OkStatus();
  }

 private:
  static bool IsNull(const yaml::Node& n) {
    return n.kind() == yaml::Node::Kind::kNull ||
           (n.IsScalar() && std::string(PlainScalarKind(n)) == "null");
  }

  std::string At(const yaml::Node& n) const {
    return absl::StrCat(file_, ":", n.mark().line, ":", n.mark().column);
  }

  absl::Status Scalar(const yaml::Node& n, const std::string& field,
                      const char* want) {
    if (IsNull(n)) return absl::OkStatus();
    if (!n.IsScalar()) {
      return Wrong(n, field, absl::StrCat("a ", want));
    }
    std::string got = PlainScalarKind(n);
    if (got == want) return absl::OkStatus();
    if (std::string(want) == "number" && got == "number") {
      return absl::OkStatus();
    }
    return Wrong(
        n, field,
        absl::StrCat("a ", want, ", not a ", got, " ('", n.value(),
                     std::string(want) == "string" ? "'; quote it)" : "')"));
  }

  absl::Status Wrong(const yaml::Node& n, const std::string& field,
                     const std::string& want) {
    return absl::InvalidArgumentError(absl::StrCat(
        At(n), ": invalid kustomization: '", field, "' must be ", want));
  }

  absl::Status Unknown(const yaml::Node& key, const Type* type) {
    std::string best;
    size_t best_d = 3;
    for (const auto& [name, t] : type->fields) {
      size_t d = Distance(key.value(), name);
      if (d < best_d) {
        best_d = d;
        best = name;
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        At(key), ": invalid kustomization: unknown field \"", key.value(),
        "\" in ", type->name,
        best.empty() ? "" : absl::StrCat(" (did you mean \"", best, "\"?)")));
  }

  std::string file_;
};

}  // namespace

absl::Status ValidateKustomization(const yaml::Node& root,
                                   const std::string& file) {
  return Checker(file).Check(root, KustomizationType(), "");
}

}  // namespace kiln::render
