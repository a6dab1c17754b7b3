// Bearer-token authentication and role checks for the kiln service.
//
// A token file has one `TOKEN ROLE [NAME]` per line (blank lines and lines
// starting with '#' ignored). Roles are ordered viewer < submitter < admin:
// viewers read and watch, submitters also submit, cancel, retry and upload,
// admins may do everything. The role `agent` (a pod's kiln agent,
// docs/kubernetes-agent.md) stands outside that order: it may call exactly
// FindMissingBlobs, UploadBlob and DownloadBlob, nothing else, and no other
// role's methods accept it. The role `approver` stands outside it too: what
// a viewer may, plus DecideApproval (approving or rejecting a task's
// approval gate), which otherwise only admins may call. Tokens are at least 16
// bytes; the file must not be readable by group or others.
//
// Token lookup compares against every entry in constant time (SHA-256 of the
// presented token vs. each stored hash, CRYPTO_memcmp, no early exit), so the
// time taken says nothing about how much of a token matched.
//
// Thread-safety: TokenTable and Authorizer are immutable after creation.
#ifndef KILN_ENGINE_SERVICE_AUTH_H_
#define KILN_ENGINE_SERVICE_AUTH_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace kiln::service {

enum class Role {
  kViewer = 1,
  kSubmitter = 2,
  kAdmin = 3,
  kAgent = 4,
  kApprover = 5
};

// "viewer", "submitter", "admin", "agent", "approver"; InvalidArgument
// otherwise.
absl::StatusOr<Role> ParseRole(absl::string_view name);
const char* RoleName(Role role);

// Who made a call.
struct Principal {
  std::string name;  // the token's NAME (or "token-N"), or "local"
  Role role = Role::kViewer;
};

class TokenTable {
 public:
  // Parses token-file text; `source` names it in errors ("FILE:LINE: ...").
  static absl::StatusOr<TokenTable> Parse(absl::string_view text,
                                          absl::string_view source);
  // Reads and parses a file; FailedPrecondition if group/others may read it.
  static absl::StatusOr<TokenTable> ReadFile(const std::string& path);

  // One token given in memory (e.g. a fresh agent token): at least 16 bytes,
  // no whitespace; InvalidArgument otherwise.
  static absl::StatusOr<TokenTable> Single(absl::string_view token, Role role,
                                           absl::string_view name);
  // Adds one token (as Single); InvalidArgument for a duplicate.
  absl::Status Add(absl::string_view token, Role role, absl::string_view name);

  // The principal holding `token`, if any (constant time per entry).
  absl::optional<Principal> Find(absl::string_view token) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::array<unsigned char, 32> token_hash;
    Principal principal;
  };
  std::vector<Entry> entries_;
};

// The role a kiln.v1.Kiln method needs, by its short name ("SubmitRun").
// Unknown methods need admin.
Role RequiredRole(absl::string_view method);

// True if a holder of `role` may call `method`: the ordered roles as
// RequiredRole says; an agent only the three blob methods; an approver
// what a viewer may and DecideApproval.
bool RoleMayCall(Role role, absl::string_view method);

// Decides calls. Without a token table (a unix socket governed by its file
// permissions) every caller is the admin "local".
class Authorizer {
 public:
  explicit Authorizer(std::shared_ptr<const TokenTable> tokens)
      : tokens_(std::move(tokens)) {}

  // `authorization` is the call's authorization metadata ("" if absent).
  // UNAUTHENTICATED for a missing, malformed or unknown token;
  // PERMISSION_DENIED if the holder's role is below `method`'s.
  absl::StatusOr<Principal> Authorize(absl::string_view authorization,
                                      absl::string_view method) const;

  bool requires_token() const { return tokens_ != nullptr; }

 private:
  std::shared_ptr<const TokenTable> tokens_;
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_AUTH_H_
