// Applies a factory's plan (plan.h) with GET + create/replace/delete: in
// order — namespaces first, then each namespace's objects; deletions last,
// namespaced objects before namespaces. An update re-reads the object and
// retries once on a write conflict. An empty plan sends no request.
//
// The permanent-namespace guard: a namespace is deleted only after a fresh
// GET shows it is not permanent (IsPermanentNamespace); a permanent one is
// refused with FailedPrecondition whatever the plan says.
#ifndef KILN_ENGINE_FACTORY_APPLY_H_
#define KILN_ENGINE_FACTORY_APPLY_H_

#include <functional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "engine/factory/plan.h"
#include "kube/client.h"
#include "nlohmann/json.hpp"

namespace kiln::factory {

// A namespace kiln must never delete: labelled kiln.dev/environment-kind=
// permanent, or declared permanent by the factory file (`declared`), or —
// for one whose labels were lost — named like a permanent environment
// (ending in -test, -stage or -prod).
bool IsPermanentNamespace(const nlohmann::json& ns,
                          const std::set<std::string>& declared);

// Deletes namespace `name` unless it is permanent (see above) or cannot be
// read: FailedPrecondition then, and nothing is deleted.
absl::Status DeleteNamespaceGuarded(kube::Client& client,
                                    const std::string& name,
                                    const std::set<std::string>& declared);

// Applies every change of `plan`; `report` gets one line per object written
// ("created ConfigMap ns/name"). Stops at the first error, which names the
// object (never a secret value).
absl::Status ApplyPlan(kube::Client& client, const Plan& plan,
                       const std::function<void(const std::string&)>& report);

}  // namespace kiln::factory

#endif  // KILN_ENGINE_FACTORY_APPLY_H_
