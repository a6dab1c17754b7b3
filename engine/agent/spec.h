// The pod agent's spec (KILN_AGENT_SPEC) and result (the termination
// message), docs/kubernetes-agent.md.
//
//   spec:   {"v":1, "inputs":[{"artifact":A,"tree":T,"archive":D,"path":P}],
//            "outputs":[{"artifact":A,"paths":[...]}], "report":"",
//            "workdir":"", "timeout_ms":N}
//   result: {"v":1, "status":"EXITED|SIGNALED|TIMED_OUT|INPUTS_FAILED|
//            OUTPUTS_FAILED|SETUP_FAILED", "exit_code":N, "signal":N,
//            "message":"...", "outputs":{A:{"tree":T,"archive":D}},
//            "report":{"tree":T,"archive":D}, "warnings":[...]}
//
// A result is at most kMaxResultBytes (the Kubernetes limit of a
// termination message): the message and warnings are shortened to fit; if
// the outputs alone do not fit, the result says OUTPUTS_FAILED.
#ifndef KILN_ENGINE_AGENT_SPEC_H_
#define KILN_ENGINE_AGENT_SPEC_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::agent {

inline constexpr size_t kMaxResultBytes = 4096;

struct InputSpec {
  std::string artifact, tree, archive, path;
};
struct OutputSpec {
  std::string artifact;
  std::vector<std::string> paths;
};
struct AgentSpec {
  std::vector<InputSpec> inputs;
  std::vector<OutputSpec> outputs;
  std::string report;
  std::string workdir;
  int64_t timeout_ms = 0;  // 0: none
};

// Parses and validates (digests well-formed, version 1, no unknown
// version); InvalidArgument naming the field otherwise.
absl::StatusOr<AgentSpec> ParseSpec(absl::string_view json);

struct ArtifactRef {
  std::string tree, archive;
};
struct AgentResult {
  std::string status = "SETUP_FAILED";
  int exit_code = 0;
  int signal = 0;
  std::string message;
  std::map<std::string, ArtifactRef> outputs;
  bool has_report = false;
  ArtifactRef report;
  std::vector<std::string> warnings;
};

// The JSON text, at most kMaxResultBytes (see above).
std::string ResultJson(AgentResult result);

}  // namespace kiln::agent

#endif  // KILN_ENGINE_AGENT_SPEC_H_
