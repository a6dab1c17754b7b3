// Where a Kubernetes client finds its cluster: a kubeconfig (the KUBECONFIG
// list or ~/.kube/config, one context of it) or, inside a pod, the
// service-account files. The result is one resolved context with every file
// reference read (except the token file, re-read by the client when it
// changes) and relative paths resolved against the kubeconfig's directory.
//
// Merge rules follow client-go: with several files, the first file to set a
// map entry (a cluster, user or context by name, or current-context) wins;
// later files only add entries. Failure leaves nothing behind: a missing or
// malformed file, an unknown context, cluster or user, or unreadable
// certificate files are InvalidArgument / NotFound with the file named.
#ifndef KILN_KUBE_KUBECONFIG_H_
#define KILN_KUBE_KUBECONFIG_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::kube {

// A client-go `exec` credential plugin (users[].user.exec).
struct ExecPlugin {
  std::string command;  // absolute, relative to the kubeconfig dir, or $PATH
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string api_version;  // client.authentication.k8s.io/v1 or v1beta1
  // Added (not in the shared contract): whether the plugin may be given the
  // terminal ("interactiveMode"); kiln never offers one.
  std::string interactive_mode;
  // Added: users[].user.exec.installHint, shown when the plugin is missing.
  std::string install_hint;
};

// One resolved kubeconfig context.
struct ClusterConfig {
  std::string context;  // for messages
  std::string server;   // "https://h:p" or "http://127.0.0.1:p"
  std::string ca_pem;
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;
  std::string client_cert_pem, client_key_pem;
  std::string token, token_file;  // bearer; token_file re-read when it changes
  std::optional<ExecPlugin> exec;
  std::string namespace_name;  // the context's namespace, "" = "default"
};

struct LoadOptions {
  // Empty: $KUBECONFIG (a ':' list), else ~/.kube/config.
  std::vector<std::string> kubeconfig_paths;
  std::string context;  // "" = current-context
  // When no kubeconfig exists at all, use the in-cluster configuration.
  bool in_cluster_fallback = true;
  // Added: the root the in-cluster files are read beneath ("" = "/"), for
  // tests: ROOT/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,
  // namespace}.
  std::string in_cluster_root;
};

absl::StatusOr<ClusterConfig> LoadClusterConfig(const LoadOptions& options);

// The in-cluster configuration alone (KUBERNETES_SERVICE_HOST/PORT and the
// service-account files beneath `root`, "" = "/"). NotFound outside a pod.
absl::StatusOr<ClusterConfig> LoadInClusterConfig(const std::string& root);

}  // namespace kiln::kube

#endif  // KILN_KUBE_KUBECONFIG_H_
