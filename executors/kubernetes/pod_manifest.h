// The pod of one task attempt as the API object (section 3 of the issue's
// contract, docs/kubernetes-executor.md), and the agent's spec. Pure: the
// same inputs give the same JSON.
#ifndef KILN_EXECUTORS_KUBERNETES_POD_MANIFEST_H_
#define KILN_EXECUTORS_KUBERNETES_POD_MANIFEST_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "kiln/v1/exec.pb.h"
#include "kiln/v1/pod.pb.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace kubernetes {

inline constexpr char kFetchContainer[] = "kiln-fetch";
inline constexpr char kTaskContainer[] = "task";
inline constexpr char kAgentLoader[] = "/kiln/agent/lib/ld-linux-x86-64.so.2";
inline constexpr char kAgentLibs[] = "/kiln/agent/lib";
inline constexpr char kAgentBinary[] = "/kiln/agent/bin/kiln-agent";
inline constexpr char kFetchMessagePath[] = "/kiln-out/fetch.json";
inline constexpr char kResultMessagePath[] = "/kiln/result.json";
// Slack of activeDeadlineSeconds over the task's timeout: the agent enforces
// the timeout itself (TIMED_OUT in its result); the pod deadline is the
// backstop for fetching, uploading and an agent that hangs.
inline constexpr absl::Duration kDeadlineSlack = absl::Seconds(60);

struct PodManifestParams {
  std::string name;
  std::string namespace_name;
  std::string agent_image;
  std::string agent_server;
  std::string agent_ca_pem;
  std::string token_secret;  // Secret holding the agent token under "token"
  std::string instance;      // label kiln.dev/instance ("" = none)
  std::string agent_spec;    // KILN_AGENT_SPEC
  v1::PodShape shape;        // executor defaults merged with the task's
  absl::Duration timeout = absl::Hours(4);
};

// KILN_AGENT_SPEC for `request`: `input_archives[i]` is the archive blob of
// request.inputs(i) (from ArchiveAccess::ArchiveOf).
std::string BuildAgentSpec(const v1::ExecRequest& request,
                           const std::vector<std::string>& input_archives,
                           absl::Duration timeout);

// A digest of what the attempt computes (argv, env but KILN_ATTEMPT, image,
// workdir, network, inputs, outputs, report, timeout): annotation
// kiln.dev/request.
// A restarted engine adopts an earlier attempt's pod only when it matches.
std::string RequestFingerprint(const v1::ExecRequest& request);
inline constexpr char kAnnotationRequest[] = "kiln.dev/request";

// The pod object (apiVersion v1, kind Pod) for `request`.
nlohmann::json BuildPodManifest(const v1::ExecRequest& request,
                                const PodManifestParams& params);

// The Secret holding the agents' token.
nlohmann::json BuildTokenSecret(const std::string& name,
                                const std::string& namespace_name,
                                const std::string& token);

}  // namespace kubernetes
}  // namespace kiln

#endif  // KILN_EXECUTORS_KUBERNETES_POD_MANIFEST_H_
