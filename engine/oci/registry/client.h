// One registry's HTTP API endpoint: authorization (anonymous, basic, the
// bearer-token challenge flow) and retries with backoff on transport
// failures, 5xx and 429 (Retry-After honoured). The pull/push logic in
// registry.cc and push.cc is written against this.
//
// Thread-safe. Credentials and tokens never appear in a Status message.
#ifndef KILN_ENGINE_OCI_REGISTRY_CLIENT_H_
#define KILN_ENGINE_OCI_REGISTRY_CLIENT_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "engine/oci/registry/auth.h"
#include "engine/oci/registry/http.h"

namespace kiln::oci::registry {

struct RetryPolicy {
  int max_attempts = 5;
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(30);
};

// The delay before attempt `attempt` + 1 (attempt counts from 1):
// exponential with ±20% jitter, or Retry-After (seconds) when the server
// gave one, both capped at max_backoff.
absl::Duration Backoff(const RetryPolicy& policy, int attempt,
                       absl::string_view retry_after);

class RegistryClient {
 public:
  // `base_url`: "https://host:port" or "http://host:port" (no trailing /).
  // `insecure`: the registry may be spoken to in plain HTTP (and so may its
  // token realm). `transport` outlives the client.
  RegistryClient(std::string registry, std::string base_url, bool insecure,
                 Credentials credentials, RetryPolicy retry,
                 HttpTransport* transport);

  const std::string& registry() const { return registry_; }
  bool insecure() const { return insecure_; }

  // "base_url + path" for a path starting with '/'.
  std::string Url(absl::string_view path) const;
  // An upload Location (relative, or absolute on this registry's origin) as
  // a full URL; FailedPrecondition when it points elsewhere.
  absl::StatusOr<std::string> ResolveLocation(absl::string_view location) const;

  // Sends `request` with authorization for `scope` (space-separated
  // "repository:NAME:ACTIONS" items), answering one 401 challenge. When
  // `retryable`, transport failures, 5xx and 429 are retried with backoff
  // (the request must be idempotent and its body replayable). Returns the
  // final response whatever its status.
  absl::StatusOr<HttpResponse> Send(HttpRequest request,
                                    const std::string& scope, bool retryable);

  // The error for an unexpected response: names the registry, `repository`,
  // `what` (e.g. "GET manifest 1.0"), the HTTP status and the registry's
  // error codes and messages; the code follows the status (401
  // Unauthenticated, 403 PermissionDenied, 404 NotFound, 429
  // ResourceExhausted, 5xx Unavailable, else FailedPrecondition).
  absl::Status ResponseError(const HttpResponse& response,
                             absl::string_view repository,
                             absl::string_view what) const;
  // Prefixes a transport error with the registry and repository.
  absl::Status Annotate(const absl::Status& status,
                        absl::string_view repository,
                        absl::string_view what) const;

 private:
  struct Token {
    std::string value;
    absl::Time expires;
  };
  // Answers a 401's challenge; OK when the request should be sent again.
  absl::Status AnswerChallenge(const HttpResponse& response,
                               const std::string& scope);
  absl::StatusOr<Token> FetchToken(const Challenge& challenge,
                                   const std::string& scope);
  // The Authorization header for `scope`, "" for none.
  std::string Authorization(const std::string& scope);
  absl::Status CheckRealm(absl::string_view realm) const;

  const std::string registry_;
  const std::string base_url_;
  const bool insecure_;
  const Credentials credentials_;
  const RetryPolicy retry_;
  HttpTransport* const transport_;

  Mutex mu_;
  bool use_basic_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Token> tokens_ ABSL_GUARDED_BY(mu_);  // by scope
};

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string UrlEncode(absl::string_view text);

}  // namespace kiln::oci::registry

#endif  // KILN_ENGINE_OCI_REGISTRY_CLIENT_H_
