// The kiln agent inside a pod (docs/kubernetes-agent.md): `fetch` in the
// init container, `run -- argv...` in the task container.
#ifndef KILN_ENGINE_AGENT_AGENT_H_
#define KILN_ENGINE_AGENT_AGENT_H_

#include <string>
#include <vector>

namespace kiln::agent {

inline constexpr char kVersion[] = "kiln-agent 1 (spec v1)";

// Where things are; the defaults are the pod's mount points. Overridden by
// flags (--kiln, --kiln-out, --workspace) or the environment
// (KILN_AGENT_KILN_DIR, KILN_AGENT_OUT_DIR, KILN_AGENT_WORKSPACE), so the
// agent runs outside a pod for tests.
struct AgentConfig {
  std::string kiln_dir = "/kiln";          // the bundle; result.json
  std::string kiln_out_dir = "/kiln-out";  // fetch's view of the kiln volume
  std::string workspace = "/workspace";
  // From KILN_AGENT_SPEC, KILN_AGENT_SERVER, KILN_AGENT_TOKEN, KILN_AGENT_CA.
  std::string spec_json, server, token, ca_pem;
  // After a timeout's SIGTERM, SIGKILL this much later.
  int64_t kill_grace_ms = 5000;
};

// Exit codes of the agent itself (the task's own code otherwise).
inline constexpr int kExitAgentFailed = 125;  // SETUP/INPUTS/OUTPUTS_FAILED

// Copies <kiln_dir>/agent to <kiln_out_dir>/agent, fetches and verifies
// every input into the workspace, writes <kiln_out_dir>/fetch.json.
// Returns the process exit code (0, or kExitAgentFailed).
int Fetch(const AgentConfig& config);

// Runs argv in its own process group with the environment minus
// KILN_AGENT_*, forwarding SIGTERM/SIGINT and enforcing the timeout; after
// exit 0 uploads the outputs and the report; writes <kiln_dir>/result.json.
// Returns the task's exit code (128+signal if signalled), or
// kExitAgentFailed when the outputs could not be delivered.
int Run(const AgentConfig& config, const std::vector<std::string>& argv);

}  // namespace kiln::agent

#endif  // KILN_ENGINE_AGENT_AGENT_H_
