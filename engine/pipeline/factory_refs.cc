#include "engine/pipeline/factory_refs.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/environments/naming.h"
#include "engine/pipeline/suggest.h"
#include "engine/yaml/parse.h"

namespace kiln::pipeline {
namespace {

// Factory name -> whether it declares `previews`, over a file's tree.
void CollectFactories(const yaml::Node& node, std::map<std::string, bool>* out,
                      int depth) {
  if (!node.IsMapping() || depth > 32) return;
  const yaml::Node* name = node.Find("name");
  if (name != nullptr && name->IsScalar()) {
    const yaml::Node* previews = node.Find("previews");
    (*out)[name->value()] = previews != nullptr && !previews->IsNull();
  }
  const yaml::Node* children = node.Find("factories");
  if (children == nullptr || !children->IsSequence()) return;
  for (const yaml::Node& child : children->items()) {
    CollectFactories(child, out, depth + 1);
  }
}

}  // namespace

absl::StatusOr<FactoryRef> ParseFactoryRef(absl::string_view text) {
  std::vector<std::string> parts =
      absl::StrSplit(text, absl::MaxSplits('#', 1));
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "factory '", text,
        "' is not PATH#NAME (a factory file relative to the pipeline file, "
        "'#', the factory's name)"));
  }
  FactoryRef ref{parts[0], parts[1]};
  if (ref.path.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("factory '", text,
                     "': the path must be relative to the pipeline file"));
  }
  for (absl::string_view part : absl::StrSplit(ref.path, '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("factory '", text,
                       "': the path may not leave the pipeline's directory "
                       "('..')"));
    }
  }
  if (ref.path.find("${") != std::string::npos ||
      !environments::IsNamespaceName(ref.name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "factory '", text,
        "': NAME must be a factory name (a DNS-1123 label) and PATH literal"));
  }
  return ref;
}

void CheckFactoryRefs(const v1::Pipeline& pipeline, const std::string& base_dir,
                      const SourceMap* map, std::vector<Diagnostic>* errors) {
  for (int i = 0; i < pipeline.environments_size(); ++i) {
    const v1::Environment& env = pipeline.environments(i);
    if (env.factory().empty()) continue;
    const std::string at = Field(Index("environments", i), "factory");
    auto error = [&](const std::string& message) {
      errors->push_back(MakeDiagnostic(
          map, at, absl::StrCat("environment '", env.name(), "': ", message)));
    };
    absl::StatusOr<FactoryRef> ref = ParseFactoryRef(env.factory());
    if (!ref.ok()) continue;  // the validator reported it
    const std::string file = absl::StrCat(base_dir, "/", ref->path);
    absl::StatusOr<std::string> text =
        yaml::ReadFileCapped(file, kMaxFactoryRefFileBytes);
    if (!text.ok()) {
      error(absl::StrCat("factory file '", ref->path,
                         "' cannot be read: ", text.status().message()));
      continue;
    }
    yaml::Limits limits;
    limits.max_bytes = kMaxFactoryRefFileBytes;
    limits.max_alias_nodes = 10000;
    absl::StatusOr<yaml::Node> root = yaml::Parse(*text, ref->path, limits);
    if (!root.ok()) {
      error(absl::StrCat("factory file: ", root.status().message()));
      continue;
    }
    std::map<std::string, bool> factories;
    CollectFactories(*root, &factories, 0);
    auto it = factories.find(ref->name);
    if (it == factories.end()) {
      std::vector<std::string> names;
      for (const auto& [name, unused] : factories) names.push_back(name);
      error(absl::StrCat("no factory '", ref->name, "' in '", ref->path, "'",
                         DidYouMean(ref->name, names)));
    } else if (!it->second) {
      error(absl::StrCat("factory '", ref->name, "' in '", ref->path,
                         "' declares no previews template (`previews:`)"));
    }
  }
}

}  // namespace kiln::pipeline
