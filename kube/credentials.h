// The credentials a request carries (internal to the client): a bearer
// token (inline, a token file re-read when it changes, or a client-go exec
// plugin's, cached until its expirationTimestamp) and a client certificate
// (from the kubeconfig or the plugin). Never logged: no message here or in
// the client contains a token or key.
#ifndef KILN_KUBE_CREDENTIALS_H_
#define KILN_KUBE_CREDENTIALS_H_

#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "kube/kubeconfig.h"

namespace kiln::kube {

struct Credentials {
  std::string token;              // "" = none
  std::string cert_pem, key_pem;  // "" = none
};

// The parsed `status` of an ExecCredential printed by a plugin.
struct ExecCredentialStatus {
  Credentials credentials;
  std::optional<absl::Time> expires;
};

// Parses a plugin's stdout (an ExecCredential of `api_version`).
// InvalidArgument naming the plugin on anything malformed.
absl::StatusOr<ExecCredentialStatus> ParseExecCredential(
    const std::string& plugin, const std::string& api_version,
    const std::string& output);

// Runs the plugin per the client-go protocol (KUBERNETES_EXEC_INFO, its args
// and env, stdin /dev/null, killed after `timeout`) and parses its output.
absl::StatusOr<ExecCredentialStatus> RunExecPlugin(const ExecPlugin& plugin,
                                                   absl::Duration timeout);

// Thread-safe.
class CredentialSource {
 public:
  CredentialSource(const ClusterConfig& config, absl::Duration exec_timeout);

  // The credentials for the next request: cached, refreshed when the token
  // file changed or the plugin's credential expired (or was invalidated).
  absl::StatusOr<Credentials> Get();
  // After a 401: true when a refresh could help (token file or exec plugin);
  // the next Get() re-reads / re-runs.
  bool Invalidate();

 private:
  absl::StatusOr<Credentials> FromTokenFile()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ClusterConfig config_;
  const absl::Duration exec_timeout_;
  Mutex mu_;
  // Exec plugin cache.
  std::optional<ExecCredentialStatus> exec_cached_ ABSL_GUARDED_BY(mu_);
  // Token file cache: the token and the file's identity when read.
  std::string file_token_ ABSL_GUARDED_BY(mu_);
  bool file_read_ ABSL_GUARDED_BY(mu_) = false;
  ino_t file_ino_ ABSL_GUARDED_BY(mu_) = 0;
  off_t file_size_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t file_mtime_ns_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kiln::kube

#endif  // KILN_KUBE_CREDENTIALS_H_
