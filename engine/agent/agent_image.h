// BuildAgentImage (testonly): builds the agent image with kiln's own
// containerize (engine/agent/agent-image.yaml over //engine/agent:bundle),
// through a real engine on a fresh store, and pushes it to the registry at
// `registry_host` (plain HTTP on loopback, e.g. //engine/oci/registry:testing's
// RegistryServer). Returns "HOST/kiln-agent@sha256:..." for pods to use.
//
// The test binary must have //engine/agent:bundle and
// //engine/agent:agent-image.yaml in its runfiles (the :testing target
// carries them as data).
#ifndef KILN_ENGINE_AGENT_AGENT_IMAGE_H_
#define KILN_ENGINE_AGENT_AGENT_IMAGE_H_

#include <string>

#include "absl/status/statusor.h"

namespace kiln::agent {

absl::StatusOr<std::string> BuildAgentImage(const std::string& registry_host);

}  // namespace kiln::agent

#endif  // KILN_ENGINE_AGENT_AGENT_IMAGE_H_
