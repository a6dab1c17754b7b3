#include "engine/service/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kiln::service {
namespace {

constexpr size_t kMinTokenBytes = 16;
constexpr size_t kMaxTokenFileBytes = 1 << 20;

std::array<unsigned char, 32> HashToken(absl::string_view token) {
  std::array<unsigned char, 32> out;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(),
         out.data());
  return out;
}

}  // namespace

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  if (name == "viewer") return Role::kViewer;
  if (name == "submitter") return Role::kSubmitter;
  if (name == "admin") return Role::kAdmin;
  if (name == "agent") return Role::kAgent;
  if (name == "approver") return Role::kApprover;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role \"", name,
                   "\" (want viewer, submitter, approver, admin or agent)"));
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kSubmitter:
      return "submitter";
    case Role::kAdmin:
      return "admin";
    case Role::kApprover:
      return "approver";
    case Role::kAgent:
      return "agent";
  }
  return "?";
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text,
                                             absl::string_view source) {
  TokenTable table;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto where = [&] { return absl::StrCat(source, ":", line_no, ": "); };
    if (fields.size() < 2 || fields.size() > 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "want TOKEN ROLE [NAME]"));
    }
    if (fields[0].size() < kMinTokenBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), "token shorter than ", kMinTokenBytes, " bytes"));
    }
    absl::StatusOr<Role> role = ParseRole(fields[1]);
    if (!role.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), role.status().message()));
    }
    Entry entry;
    entry.token_hash = HashToken(fields[0]);
    for (const Entry& other : table.entries_) {
      if (other.token_hash == entry.token_hash) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(), "duplicate token"));
      }
    }
    entry.principal.role = *role;
    entry.principal.name = fields.size() == 3 ? std::string(fields[2])
                                              : absl::StrCat("token-", line_no);
    table.entries_.push_back(std::move(entry));
  }
  if (table.entries_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": no tokens"));
  }
  return table;
}

absl::StatusOr<TokenTable> TokenTable::ReadFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": token file is accessible by group or others (chmod 600)"));
  }
  if (!S_ISREG(st.st_mode) || st.st_size > int64_t{kMaxTokenFileBytes}) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file of at most 1 MiB"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::PermissionDeniedError(absl::StrCat(path, ": cannot read"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

absl::StatusOr<TokenTable> TokenTable::Single(absl::string_view token,
                                              Role role,
                                              absl::string_view name) {
  TokenTable table;
  absl::Status st = table.Add(token, role, name);
  if (!st.ok()) return st;
  return table;
}

absl::Status TokenTable::Add(absl::string_view token, Role role,
                             absl::string_view name) {
  if (token.size() < kMinTokenBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("token shorter than ", kMinTokenBytes, " bytes"));
  }
  for (char c : token) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '\0') {
      return absl::InvalidArgumentError("token contains whitespace");
    }
  }
  Entry entry;
  entry.token_hash = HashToken(token);
  for (const Entry& other : entries_) {
    if (other.token_hash == entry.token_hash) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate token (", name, ")"));
    }
  }
  entry.principal.role = role;
  entry.principal.name = std::string(name);
  entries_.push_back(std::move(entry));
  return absl::OkStatus();
}

absl::optional<Principal> TokenTable::Find(absl::string_view token) const {
  const std::array<unsigned char, 32> hash = HashToken(token);
  const Entry* found = nullptr;
  for (const Entry& entry : entries_) {
    // Every entry is compared; the selection does not branch on content.
    bool equal =
        CRYPTO_memcmp(hash.data(), entry.token_hash.data(), hash.size()) == 0;
    found = equal ? &entry : found;
  }
  if (found == nullptr) return absl::nullopt;
  return found->principal;
}

Role RequiredRole(absl::string_view method) {
  if (method == "ValidatePipeline" || method == "GetRun" ||
      method == "ListRuns" || method == "GetRunTasks" || method == "WatchRun" ||
      method == "StreamLogs" || method == "FindMissingBlobs" ||
      method == "DownloadBlob" || method == "ListArtifacts" ||
      method == "DownloadArtifact") {
    return Role::kViewer;
  }
  if (method == "SubmitRun" || method == "SubmitAndWatchRun" ||
      method == "CancelRun" || method == "RetryRun" || method == "UploadBlob") {
    return Role::kSubmitter;
  }
  return Role::kAdmin;
}

bool RoleMayCall(Role role, absl::string_view method) {
  if (role == Role::kAgent) {
    return method == "FindMissingBlobs" || method == "UploadBlob" ||
           method == "DownloadBlob";
  }
  if (role == Role::kApprover) {
    return method == "DecideApproval" || RequiredRole(method) == Role::kViewer;
  }
  return static_cast<int>(role) >= static_cast<int>(RequiredRole(method));
}

absl::StatusOr<Principal> Authorizer::Authorize(
    absl::string_view authorization, absl::string_view method) const {
  if (tokens_ == nullptr) return Principal{"local", Role::kAdmin};
  constexpr absl::string_view kBearer = "Bearer ";
  if (!absl::StartsWithIgnoreCase(authorization, kBearer)) {
    return absl::UnauthenticatedError(
        "missing bearer token (metadata authorization: Bearer TOKEN)");
  }
  absl::optional<Principal> who = tokens_->Find(
      absl::StripAsciiWhitespace(authorization.substr(kBearer.size())));
  if (!who.has_value()) return absl::UnauthenticatedError("unknown token");
  if (!RoleMayCall(who->role, method)) {
    if (who->role == Role::kAgent) {
      return absl::PermissionDeniedError(absl::StrCat(
          method, " is not allowed to an agent token (", who->name,
          "): agents may only call FindMissingBlobs, UploadBlob and "
          "DownloadBlob"));
    }
    return absl::PermissionDeniedError(absl::StrCat(
        method, " needs role ",
        method == "DecideApproval" ? "approver or admin"
                                   : RoleName(RequiredRole(method)),
        "; ", who->name, " is ", RoleName(who->role)));
  }
  return *who;
}

}  // namespace kiln::service
