// The registry of task kinds the engine can decode, validate and execute.
#ifndef KILN_ENGINE_KINDS_KINDS_H_
#define KILN_ENGINE_KINDS_KINDS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/kinds/kind.h"

namespace kiln::kinds {

// The built-in kinds, one file each.
const Kind& Run();
const Kind& Stash();
const Kind& Unstash();
const Kind& Containerize();
const Kind& Render();
const Kind& Deploy();

// ExecCapabilities::cluster for a run whose deploys use these kubeconfig
// files (none: $KUBECONFIG, ~/.kube/config, or in-cluster) and context.
std::function<absl::Status(const std::string& context)> ClusterCheck(
    std::vector<std::string> kubeconfig_paths, std::string kube_context);

// Registers a kind (built-ins register in registry.cc at static
// initialisation; a test may register its own). Aborts on a duplicate
// name or oneof case. Returns true, for use in a static initialiser.
bool Register(const Kind* kind);

// Every registered kind, in registration order.
std::vector<const Kind*> All();
// The kind that executes `task`, or nullptr (no kind set, or an unknown one).
const Kind* Find(const v1::Task& task);

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_KINDS_H_
