// The registry flags of `run` and `serve`: --insecure-registry
// (repeatable), --registry-ca, --registry-config.
#ifndef KILN_ENGINE_CLI_REGISTRY_FLAGS_H_
#define KILN_ENGINE_CLI_REGISTRY_FLAGS_H_

#include "engine/cli/args.h"
#include "engine/cli/local_engine.h"

namespace kiln::cli {

void AddRegistryFlags(Args* args);
// Copies the flags' values into `options`.
void ReadRegistryFlags(const Args& args, LocalEngineOptions* options);

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_REGISTRY_FLAGS_H_
