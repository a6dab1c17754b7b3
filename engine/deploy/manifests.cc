#include "engine/deploy/manifests.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "engine/render/convert.h"
#include "engine/render/hash.h"

namespace kiln::deploy {
namespace {

using json = nlohmann::json;

// Manifests of one deploy: far more than any real application, far less
// than what would exhaust the engine.
constexpr size_t kMaxObjects = 5000;

absl::Status CheckObject(const json& obj, const std::string& where) {
  if (!obj.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": a manifest must be a mapping"));
  }
  for (const char* f : {"apiVersion", "kind"}) {
    if (!obj.contains(f) || !obj[f].is_string() ||
        obj[f].get<std::string>().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the object has no ", f));
    }
  }
  if (!obj.contains("metadata") || !obj["metadata"].is_object() ||
      !obj["metadata"].contains("name") ||
      !obj["metadata"]["name"].is_string() ||
      obj["metadata"]["name"].get<std::string>().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", obj["kind"].get<std::string>(),
                     " has no metadata.name (server-side apply needs a name; "
                     "generateName cannot be applied)"));
  }
  return absl::OkStatus();
}

void AddLabels(json* meta, const std::string& environment) {
  if (!meta->contains("labels") || !(*meta)["labels"].is_object()) {
    (*meta)["labels"] = json::object();
  }
  (*meta)["labels"][kEnvironmentLabel] = environment;
  (*meta)["labels"][kManagedByLabel] = "kiln";
}

}  // namespace

absl::StatusOr<std::vector<Manifest>> ParseManifests(
    absl::string_view text, absl::string_view filename) {
  absl::StatusOr<std::vector<render::Value>> docs =
      render::ParseYamlStream(text, filename);
  if (!docs.ok()) return docs.status();
  std::vector<Manifest> out;
  for (size_t i = 0; i < docs->size(); ++i) {
    json doc = json::parse(render::ToJson((*docs)[i]), nullptr, false);
    std::string where = absl::StrCat(filename, " document ", i + 1);
    if (doc.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": cannot be represented as JSON"));
    }
    std::vector<json> objects;
    if (doc.is_object() && doc.value("kind", "") == "List" &&
        doc.contains("items") && doc["items"].is_array()) {
      for (const json& item : doc["items"]) objects.push_back(item);
    } else {
      objects.push_back(std::move(doc));
    }
    for (json& obj : objects) {
      absl::Status s = CheckObject(obj, where);
      if (!s.ok()) return s;
      Manifest m;
      m.api_version = obj["apiVersion"];
      m.kind = obj["kind"];
      m.name = obj["metadata"]["name"];
      m.source = where;
      m.object = std::move(obj);
      out.push_back(std::move(m));
      if (out.size() > kMaxObjects) {
        return absl::ResourceExhaustedError(absl::StrCat(
            filename, ": more than ", kMaxObjects, " objects to deploy"));
      }
    }
  }
  std::set<std::string> seen;
  for (const Manifest& m : out) {
    std::string id = absl::StrCat(m.api_version, "/", m.kind, "/", m.name);
    if (!seen.insert(id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(m.source, ": ", m.kind, " \"", m.name,
                       "\" appears twice in the manifests"));
    }
  }
  return out;
}

int ApplyRank(const std::string& kind) {
  static const auto* ranks = new std::vector<std::vector<std::string>>{
      {"Namespace"},
      {"CustomResourceDefinition"},
      {"ServiceAccount", "Role", "ClusterRole", "RoleBinding",
       "ClusterRoleBinding"},
      {"ConfigMap", "Secret"},
      {"Service"},
      {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob",
       "Pod"},
  };
  for (size_t i = 0; i < ranks->size(); ++i) {
    const auto& r = (*ranks)[i];
    if (std::find(r.begin(), r.end(), kind) != r.end()) {
      return static_cast<int>(i);
    }
  }
  return static_cast<int>(ranks->size());
}

void OrderForApply(std::vector<Manifest>* manifests) {
  std::stable_sort(manifests->begin(), manifests->end(),
                   [](const Manifest& a, const Manifest& b) {
                     return ApplyRank(a.kind) < ApplyRank(b.kind);
                   });
}

absl::Status PrepareNamespaced(Manifest* m, const std::string& ns,
                               const std::string& environment) {
  json& meta = m->object["metadata"];
  if (meta.contains("namespace") && !meta["namespace"].is_null()) {
    std::string got = meta["namespace"].is_string()
                          ? meta["namespace"].get<std::string>()
                          : meta["namespace"].dump();
    if (!got.empty() && got != ns) {
      return absl::FailedPreconditionError(absl::StrCat(
          m->source, ": ", m->kind, " \"", m->name, "\" is in namespace \"",
          got, "\", but environment \"", environment,
          "\" deploys to namespace \"", ns,
          "\" (a deploy never writes outside its environment's namespace)"));
    }
  }
  meta["namespace"] = ns;
  AddLabels(&meta, environment);
  if (IsWorkload(m->kind) && m->object.contains("spec") &&
      m->object["spec"].contains("template") &&
      m->object["spec"]["template"].is_object()) {
    json& t = m->object["spec"]["template"];
    if (!t.contains("metadata") || !t["metadata"].is_object()) {
      t["metadata"] = json::object();
    }
    AddLabels(&t["metadata"], environment);
  }
  return absl::OkStatus();
}

absl::Status PrepareClusterScoped(Manifest* m, const std::string& ns,
                                  const std::string& environment) {
  if (m->kind == "Namespace" && m->name != ns) {
    return absl::FailedPreconditionError(absl::StrCat(
        m->source, ": Namespace \"", m->name, "\" is not environment \"",
        environment, "\"'s namespace \"", ns, "\""));
  }
  m->object["metadata"].erase("namespace");
  AddLabels(&m->object["metadata"], environment);
  return absl::OkStatus();
}

const json* PodSpecOf(const json& obj) {
  const std::string kind = obj.value("kind", "");
  const json* spec = obj.contains("spec") ? &obj["spec"] : nullptr;
  if (spec == nullptr || !spec->is_object()) return nullptr;
  if (kind == "Pod") return spec;
  if (kind == "CronJob") {
    const json* jt =
        spec->contains("jobTemplate") ? &(*spec)["jobTemplate"] : nullptr;
    if (jt == nullptr || !jt->is_object() || !jt->contains("spec")) {
      return nullptr;
    }
    spec = &(*jt)["spec"];
    if (!spec->is_object()) return nullptr;
  }
  if (!spec->contains("template") || !(*spec)["template"].is_object()) {
    return nullptr;
  }
  const json& t = (*spec)["template"];
  return t.contains("spec") && t["spec"].is_object() ? &t["spec"] : nullptr;
}

json* MutablePodSpecOf(json* obj) {
  // PodSpecOf only reads: the pod spec it finds is part of *obj.
  return const_cast<json*>(PodSpecOf(*obj));
}

std::vector<std::string> ImagesOf(const std::vector<Manifest>& manifests) {
  std::set<std::string> images;
  for (const Manifest& m : manifests) {
    const json* spec = PodSpecOf(m.object);
    if (spec == nullptr) continue;
    for (const char* list : kContainerLists) {
      if (!spec->contains(list) || !(*spec)[list].is_array()) continue;
      for (const json& c : (*spec)[list]) {
        if (c.is_object() && c.contains("image") && c["image"].is_string()) {
          images.insert(c["image"].get<std::string>());
        }
      }
    }
  }
  return {images.begin(), images.end()};
}

bool IsWorkload(const std::string& kind) {
  return kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" ||
         kind == "Job";
}

}  // namespace kiln::deploy
