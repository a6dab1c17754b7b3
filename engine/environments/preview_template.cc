#include "engine/environments/preview_template.h"

#include <limits.h>
#include <stdlib.h>

#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/environments/target.h"
#include "engine/factory/desired.h"
#include "engine/factory/loader.h"
#include "engine/pipeline/factory_refs.h"

namespace kiln::environments {
namespace {

using nlohmann::json;

absl::StatusOr<std::string> RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot resolve '", path, "': ", strerror(errno)));
  }
  return std::string(buf);
}

// The factory file of `ref`, resolved inside `dir` (never through a link
// leading out of it).
absl::StatusOr<std::string> FactoryFile(const std::string& dir,
                                        const pipeline::FactoryRef& ref) {
  if (dir.empty()) {
    return absl::FailedPreconditionError(
        "the pipeline's directory is not known: a factory file cannot be "
        "found (run the pipeline from a file)");
  }
  absl::StatusOr<std::string> root = RealPath(dir);
  if (!root.ok()) return root.status();
  absl::StatusOr<std::string> file =
      RealPath(absl::StrCat(*root, "/", ref.path));
  if (!file.ok()) return file.status();
  if (!absl::StartsWith(*file, absl::StrCat(*root, "/"))) {
    return absl::FailedPreconditionError(
        absl::StrCat("factory file '", ref.path,
                     "' resolves outside the pipeline's "
                     "directory"));
  }
  return *file;
}

// Deletes the objects of factory `factory` in preview namespace `ns` (by
// its labels, kiln-managed only) that the template no longer declares:
// a quota, role or secret dropped from `previews` leaves the previews that
// got it. Returns how many were deleted.
absl::StatusOr<int> PruneDropped(
    kube::Client& client, const std::string& factory, const std::string& ns,
    const std::vector<factory::DesiredObject>& objects,
    const std::function<void(const std::string&)>& say) {
  std::set<std::pair<const factory::ObjectKind*, std::string>> declared;
  for (const factory::DesiredObject& o : objects) {
    declared.emplace(o.kind, o.name);
  }
  kube::ListOptions selected;
  selected.label_selector =
      absl::StrCat(factory::kFactoryLabel, "=", factory, ",",
                   factory::kManagedByLabel, "=kiln");
  int deleted = 0;
  // Dependents first: bindings before roles before service accounts.
  const std::vector<factory::ObjectKind>& kinds = factory::ManagedKinds();
  for (auto kind = kinds.rbegin(); kind != kinds.rend(); ++kind) {
    if (!kind->namespaced) continue;
    absl::StatusOr<json> items =
        client.List(factory::CollectionPath(*kind, ns), selected);
    if (!items.ok()) {
      return absl::Status(items.status().code(),
                          absl::StrCat("listing ", kind->plural, " in ", ns,
                                       ": ", items.status().message()));
    }
    for (const json& item : (*items)["items"]) {
      const json& meta = item["metadata"];
      std::string name = meta.value("name", "");
      // Kept: declared, going away, a deploy's object (it carries the
      // environment's label; the deploy prunes those), or not applied by
      // kiln (someone labelled it by hand).
      if (name.empty() || declared.count({&*kind, name}) > 0 ||
          meta.contains("deletionTimestamp") ||
          (meta.contains("labels") && meta["labels"].is_object() &&
           meta["labels"].contains(kEnvironmentLabel)) ||
          !kube::AppliedBy(meta, kPreviewFieldManager)) {
        continue;
      }
      absl::Status s = client.Delete(factory::ObjectPath(*kind, ns, name));
      if (!s.ok() && !absl::IsNotFound(s)) {
        return absl::Status(
            s.code(), absl::StrCat("deleting ", kind->kind, " ", ns, "/", name,
                                   ": ", s.message()));
      }
      say(absl::StrCat("factory ", factory, ": ", kind->kind, " ", ns, "/",
                       name, " pruned (no longer in the previews template)"));
      ++deleted;
    }
  }
  return deleted;
}

}  // namespace

absl::Status ApplyPreviewTemplate(
    kube::Client& client, const std::string& factory_ref,
    const std::string& pipeline_dir, const std::string& namespace_name,
    const source::Secrets& secrets,
    const std::function<void(const std::string&)>& say) {
  absl::StatusOr<pipeline::FactoryRef> ref =
      pipeline::ParseFactoryRef(factory_ref);
  if (!ref.ok()) return ref.status();
  absl::StatusOr<std::string> file = FactoryFile(pipeline_dir, *ref);
  if (!file.ok()) return file.status();
  // Secrets of the permanent namespaces are not the deploy's: only the
  // template's are resolved (BuildPreviewObjects).
  factory::LoadedFactory loaded =
      factory::LoadFactoryFile(*file, secrets, /*check_secrets=*/false);
  if (!loaded.ok()) {
    std::vector<std::string> lines;
    for (const pipeline::Diagnostic& d : loaded.errors) {
      lines.push_back(
          absl::StrCat(ref->path, ":", d.line, ":", d.column, ": ", d.message));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "factory file does not load:\n", absl::StrJoin(lines, "\n")));
  }
  absl::StatusOr<std::vector<factory::DesiredObject>> objects =
      factory::BuildPreviewObjects(loaded.factory, ref->name, namespace_name,
                                   secrets);
  if (!objects.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(factory_ref, ": ", objects.status().message()));
  }
  const v1::Factory* f =
      factory::FindFactory(loaded.factory, ref->name, nullptr);
  if (f->previews().labels_size() > 0) {
    json labels = json::object();
    for (const auto& [k, v] : f->previews().labels()) labels[k] = v;
    absl::StatusOr<json> r = client.Patch(
        factory::ObjectPath(factory::NamespaceKind(), "", namespace_name),
        {{"metadata", {{"labels", labels}}}}, kube::PatchType::kMerge);
    if (!r.ok()) {
      return absl::Status(r.status().code(),
                          absl::StrCat("labelling namespace ", namespace_name,
                                       ": ", r.status().message()));
    }
  }
  kube::ApplyOptions options;
  options.field_manager = kPreviewFieldManager;
  options.force = true;  // the template is the authority on its fields
  for (const factory::DesiredObject& o : *objects) {
    absl::StatusOr<json> r = client.Apply(
        factory::ObjectPath(*o.kind, o.ns, o.name), o.manifest, options);
    if (!r.ok()) {
      // The API's message names fields, never a Secret's data.
      return absl::Status(
          r.status().code(),
          absl::StrCat(o.Describe(), ": ", r.status().message()));
    }
  }
  absl::StatusOr<int> pruned =
      PruneDropped(client, ref->name, namespace_name, *objects, say);
  if (!pruned.ok()) return pruned.status();
  say(absl::StrCat("factory ", ref->name, ": ", objects->size(),
                   " object(s) of the previews template applied in ",
                   namespace_name,
                   *pruned > 0 ? absl::StrCat(", ", *pruned, " pruned") : ""));
  return absl::OkStatus();
}

}  // namespace kiln::environments
