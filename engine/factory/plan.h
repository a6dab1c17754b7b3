// A factory's plan: what applying it would change in the cluster, per
// object — create, update (with a field-level diff), delete (an object of
// the factory the file no longer declares) or keep (a permanent namespace
// no longer declared: never deleted).
//
// Only the fields the factory sets are compared (labels as a subset, so
// labels others add are left alone; ConfigMap/Secret data and quota `hard`
// exactly; quantities by value, "1000m" == "1"), so what the server
// populates never shows as a change. Secret values never appear in a plan:
// a changed one reads "(secret value changed)".
#ifndef KILN_ENGINE_FACTORY_PLAN_H_
#define KILN_ENGINE_FACTORY_PLAN_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/factory/desired.h"
#include "kiln/v1/factory.pb.h"
#include "kube/client.h"
#include "nlohmann/json.hpp"

namespace kiln::factory {

enum class Action { kCreate, kUpdate, kDelete, kKeep };

struct FieldChange {
  std::string path;           // "data.mode", "metadata.labels.team"
  std::string before, after;  // JSON text, "(none)", or "(secret value ...)"
};

struct Change {
  Action action;
  const ObjectKind* kind = nullptr;
  std::string ns, name, factory;
  std::vector<FieldChange> fields;  // kUpdate
  nlohmann::json desired;           // kCreate, kUpdate: the factory's object
  std::string reason;               // kKeep
  std::string Describe() const;     // "ConfigMap shop-cicd/settings"
};

struct Plan {
  std::vector<Change> changes;  // creates and updates in apply order, then
                                // deletes and keeps
  // Namespaces the file declares permanent (for the delete guard).
  std::set<std::string> permanent_namespaces;
  int Count(Action action) const;
  // No create, update or delete.
  bool empty() const;
};

// Reads the live objects (GET and label-selected LIST only; never writes).
absl::StatusOr<Plan> MakePlan(kube::Client& client, const v1::Factory& root,
                              const std::vector<DesiredObject>& desired);

// One line per change ("+ create", "~ update" with indented field lines,
// "- delete", "= keep") and a summary line; never a secret value.
std::string FormatPlan(const Plan& plan);

// `live` with the factory's fields of `desired` written over it (what an
// update PUTs: server-populated fields and others' labels kept).
nlohmann::json MergeDesired(const ObjectKind& kind, const nlohmann::json& live,
                            const nlohmann::json& desired);

// The differences between `desired` and `live` in the fields the factory
// sets; empty when up to date.
std::vector<FieldChange> DiffDesired(const ObjectKind& kind,
                                     const nlohmann::json& desired,
                                     const nlohmann::json& live);

}  // namespace kiln::factory

#endif  // KILN_ENGINE_FACTORY_PLAN_H_
