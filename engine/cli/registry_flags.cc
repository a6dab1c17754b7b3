#include "engine/cli/registry_flags.h"

namespace kiln::cli {

void AddRegistryFlags(Args* args) {
  args->Repeated("insecure-registry",
                 "a registry (host[:port]) spoken to over plain HTTP "
                 "(loopback registries always are)");
  args->Flag("registry-ca", "a PEM CA bundle for HTTPS registries");
  args->Flag("registry-config",
             "a docker config.json with registry credentials (default "
             "$DOCKER_CONFIG/config.json or ~/.docker/config.json)");
}

void ReadRegistryFlags(const Args& args, LocalEngineOptions* options) {
  options->registry_ca = args.Get("registry-ca");
  options->insecure_registries = args.GetAll("insecure-registry");
  options->registry_config = args.Get("registry-config");
}

}  // namespace kiln::cli
