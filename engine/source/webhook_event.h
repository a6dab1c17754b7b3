// Webhook deliveries of GitHub, GitLab and Gitea: which provider sent a
// request, whether its signature or token matches a secret, and what it
// means as a kiln trigger. Pure functions (no I/O).
//
//   provider  event header     signature                      delivery id
//   GitHub    X-GitHub-Event   X-Hub-Signature-256: sha256=H  X-GitHub-Delivery
//   GitLab    X-Gitlab-Event   X-Gitlab-Token: SECRET         Idempotency-Key,
//                                                             X-Gitlab-Event-UUID
//   Gitea     X-Gitea-Event    X-Gitea-Signature: H           X-Gitea-Delivery
//
// H is the hex HMAC-SHA256 of the raw body keyed with the secret; every
// comparison is constant-time (CRYPTO_memcmp over fixed-size digests).
#ifndef KILN_ENGINE_SOURCE_WEBHOOK_EVENT_H_
#define KILN_ENGINE_SOURCE_WEBHOOK_EVENT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::source {

enum class Provider { kGitHub, kGitLab, kGitea };
const char* ProviderName(Provider provider);

// Header names lowercased.
using Headers = std::map<std::string, std::string>;

// InvalidArgument when no provider's event header is present.
absl::StatusOr<Provider> DetectProvider(const Headers& headers);

// OK when the request carries a signature/token made with `secret`;
// Unauthenticated (never quoting either) otherwise, also when it is missing.
absl::Status VerifySignature(Provider provider, const Headers& headers,
                             absl::string_view body, absl::string_view secret);

// Whether the request carries its provider's signature or token header at
// all (what is checked before anything else is done with a delivery).
bool HasSignature(Provider provider, const Headers& headers);

// Hex HMAC-SHA256 of `body` (for tests and senders).
std::string HmacSha256Hex(absl::string_view secret, absl::string_view body);

struct WebhookEvent {
  Provider provider = Provider::kGitHub;
  std::string delivery;  // the provider's delivery id
  // A delivery kiln acknowledges and does nothing with (a ping, a pull
  // request labelled, ...): `ignored` says why.
  std::string ignored;
  v1::EventKind kind = v1::EVENT_KIND_UNSPECIFIED;
  // Every URL the payload gives for the repository (clone, ssh, web).
  std::vector<std::string> repository_urls;
  std::string default_branch;
  // What to fetch and build: `revision` (a SHA) found through `fetch_ref`
  // (a branch, tag or pull-request ref).
  std::string revision;
  std::string fetch_ref;
  // The trigger's branch: the pushed or deleted branch, a pull request's
  // source branch; the tag's name for a tag.
  std::string branch;
  std::string before;   // the previous tip (push), for the changelog
  std::string message;  // the head commit's message, when the payload has it
  int64_t pull_request = 0;
};

// Limits on what a payload may make kiln fetch are the caller's; this
// only decodes. InvalidArgument for malformed JSON or a payload lacking a
// field its event needs.
absl::StatusOr<WebhookEvent> ParseWebhook(Provider provider,
                                          const Headers& headers,
                                          absl::string_view body);

// The same repository in any of its spellings: lowercase, no scheme, no
// user, no trailing "/" or ".git"; scp-style "git@host:a/b" as "host/a/b".
std::string NormalizeRepositoryUrl(absl::string_view url);

}  // namespace kiln::source

#endif  // KILN_ENGINE_SOURCE_WEBHOOK_EVENT_H_
