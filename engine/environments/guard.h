// The permanent guard: the one check every namespace deletion of kiln goes
// through (Destroy and Gc call it right before DELETE; EnsureNamespace calls
// it before labelling a namespace as a preview). Permanent environments are
// never deleted: not when asked by name, not by gc, not when a preview's
// template happens to produce a permanent environment's namespace, and not
// when that namespace was created outside kiln and carries no labels.
#ifndef KILN_ENGINE_ENVIRONMENTS_GUARD_H_
#define KILN_ENGINE_ENVIRONMENTS_GUARD_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "kiln/v1/pipeline.pb.h"
#include "nlohmann/json.hpp"

namespace kiln::environments {

class PermanentGuard {
 public:
  // Protects every permanent environment's namespace of `pipeline` (literal
  // by validation) and the cluster's own namespaces (default, kube-*).
  explicit PermanentGuard(const v1::Pipeline& pipeline);

  // Also protects `ns` (e.g. another pipeline's permanent namespace).
  void Protect(const std::string& ns, const std::string& why);

  // OK when kiln may delete namespace `ns` of preview environments of `app`;
  // `live` is the namespace as the API server returned it (null: not
  // fetched, which is refused: the labels must be seen). PermissionDenied,
  // naming why, when: `ns` is protected by name; its labels say permanent;
  // it lacks kiln's preview labels (created outside kiln); it belongs to
  // another app.
  absl::Status CheckDeletable(const std::string& ns, const std::string& app,
                              const nlohmann::json* live) const;

  // PermissionDenied when `ns` is protected by name (before any request).
  absl::Status CheckNotProtected(const std::string& ns) const;

 private:
  std::map<std::string, std::string> protected_;  // namespace -> why
};

}  // namespace kiln::environments

#endif  // KILN_ENGINE_ENVIRONMENTS_GUARD_H_
