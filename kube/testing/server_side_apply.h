// Server-side apply and field ownership for the API server double
// (testonly), as Kubernetes tracks them in metadata.managedFields.
//
// Field sets use the FieldsV1 format ("f:spec": {"f:replicas": {}}); list
// items of a list whose items are all objects with a string "name" are
// associative ("k:{\"name\":\"app\"}": {".": {}, "f:image": {}}); any other
// list, and every scalar, is atomic (owned as a whole). The real server
// keys some lists by other fields (ports by containerPort/protocol,
// volumeMounts by mountPath); the double keys by "name" only.
//
// Apply (operation Apply): the manager's new set is the fields of the
// applied configuration. A field of that set owned by another manager with
// a different live value is a conflict (409, the real message "Apply failed
// with N conflict(s): conflict with \"M\": .spec.replicas"), unless `force`
// takes the field over. Fields the manager owned before and no longer sends
// are removed from the object when no other manager owns them.
// Update (create/replace/patch with a fieldManager): the manager takes
// every field whose value it changed; other managers lose those fields.
// Pure functions over JSON; thread-compatible.
#ifndef KILN_KUBE_TESTING_SERVER_SIDE_APPLY_H_
#define KILN_KUBE_TESTING_SERVER_SIDE_APPLY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace kiln::kube::testing {

struct ApplyResult {
  int code = 200;         // 200, or 409 (conflicts) / 400 / 422
  nlohmann::json object;  // the object to store (code 200)
  std::string message;    // the Status message otherwise
  nlohmann::json causes;  // Status details.causes (conflicts)
};

// `live`: the current object, or null when it does not exist yet.
// `applied`: the applied configuration (apiVersion, kind, metadata.name
// checked by the caller). `api_version`: the resource's group/version.
ApplyResult ServerSideApply(const nlohmann::json& live,
                            const nlohmann::json& applied,
                            const std::string& manager, bool force,
                            const std::string& api_version, absl::Time now);

// Records an Update by `manager` of `old` (null when created) into `next`
// (keeping old's managedFields when next carries none). No-op for an empty
// manager.
void TrackUpdate(const nlohmann::json& old, nlohmann::json* next,
                 const std::string& manager, const std::string& api_version,
                 absl::Time now);

// A request body as JSON: JSON as is, else one YAML document (the
// apply-patch+yaml content type). InvalidArgument when neither.
absl::StatusOr<nlohmann::json> ParseApplyBody(const std::string& body);

// The field paths (".spec.replicas") of a FieldsV1 set's leaves, for tests.
std::vector<std::string> FieldPaths(const nlohmann::json& fields_v1);

}  // namespace kiln::kube::testing

#endif  // KILN_KUBE_TESTING_SERVER_SIDE_APPLY_H_
