// The pure part of the simulated kubelet (sandbox_kubelet.h): turning one
// container of a pod spec into what the local sandbox runs — argv, env
// (secretKeyRef resolved through a lookup), volume binds, the termination
// message file — with the kubelet's error reasons.
#ifndef KILN_KUBE_TESTING_KUBELET_CONTAINER_CONFIG_H_
#define KILN_KUBE_TESTING_KUBELET_CONTAINER_CONFIG_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace kube {
namespace testing {

// Kubernetes truncates a termination message to this many bytes.
inline constexpr size_t kMaxTerminationMessageBytes = 4096;
// FallbackToLogsOnError: at most this many of the log's last lines/bytes.
inline constexpr size_t kFallbackLogLines = 80;
inline constexpr size_t kFallbackLogBytes = 2048;

struct ContainerConfig {
  std::string name;
  std::string image;
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  std::string working_dir;  // absolute, "" = the image's
  struct Bind {
    std::string volume;  // the pod volume's name
    std::string host;    // its directory
    std::string target;  // mountPath
  };
  std::vector<Bind> binds;
  // The termination message file: the volume directory it lies in and the
  // path relative to it ("" when the container has none to read).
  std::string message_volume_dir;
  std::string message_relative_path;
  bool fallback_to_logs = false;
  int64_t grace_seconds = 30;  // terminationGracePeriodSeconds
};

// A config error, as the kubelet reports it in state.waiting.
struct ConfigError {
  std::string reason;  // CreateContainerConfigError / CreateContainerError
  std::string message;
};

// A Secret's decoded data; NotFound when the secret does not exist.
using SecretLookup =
    std::function<absl::StatusOr<std::map<std::string, std::string>>(
        const std::string& name)>;

// `volume_dirs`: the pod's emptyDir volumes by name -> host directory.
// Returns the config or the waiting reason that stops the container.
struct ConfigResult {
  std::optional<ContainerConfig> config;
  ConfigError error;
};
ConfigResult BuildContainerConfig(
    const nlohmann::json& pod, const nlohmann::json& container,
    const std::map<std::string, std::string>& volume_dirs,
    const SecretLookup& secrets);

// The message Kubernetes keeps for a termination message of `raw` bytes.
std::string TruncateTerminationMessage(const std::string& raw);

// The FallbackToLogsOnError message from the log's last lines (oldest
// first).
std::string LogTailMessage(const std::vector<std::string>& lines);

}  // namespace testing
}  // namespace kube
}  // namespace kiln

#endif  // KILN_KUBE_TESTING_KUBELET_CONTAINER_CONFIG_H_
