// GitFetcher: the server side of `source: {git: URL, ref: REF}`. Fetches a
// remote repository into a bare clone cached per URL under `cache_dir`,
// resolves a ref to a commit and exports that commit's tree (git_source.h's
// ExportTree: hostile-tree rules, bounded) as a run's source directory.
//
// Who may name what: a URL is a request from a remote client, so only
// https://, ssh:// and scp-style USER@HOST:PATH are accepted; file:// and
// local paths (which would let a client read any repository on the
// server) only with `allow_local`; every other scheme (ext::, fd::, git://,
// http://) is refused, as are credentials inside the URL. An ssh host key
// must match a configured SHA-256 fingerprint (libgit2 1.5 checks none).
//
// Credentials come from a named secret (secrets.h): "USER:PASSWORD" or a
// bare token (user from the URL, else "git") for https, a PEM private key
// for ssh; offered once per fetch (a refused secret fails the fetch, it is
// not retried). No secret value enters a Status, log or the cache.
//
// Bounds: bytes received per fetch, wall time per fetch (checked while
// data flows: libgit2 1.5 has no connect timeout), bytes per cached clone,
// and the number of cached clones (the least recently used idle ones are
// removed past it).
//
// Concurrency: one flock per URL (`<cache>/<key>.lock`) serialises every
// fetch/export of that URL across threads and processes sharing the cache;
// different URLs proceed in parallel. Thread-safe.
#ifndef KILN_ENGINE_SOURCE_GIT_FETCHER_H_
#define KILN_ENGINE_SOURCE_GIT_FETCHER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/git/git_source.h"
#include "engine/source/secrets.h"

namespace kiln::source {

struct GitFetchOptions {
  // Where bare clones live (created if missing; owner-only).
  std::string cache_dir;
  // Accept file:// URLs and local paths (a server flag; tests).
  bool allow_local = false;
  int64_t max_fetch_bytes = int64_t{2} << 30;
  absl::Duration fetch_timeout = absl::Minutes(10);
  int64_t max_clone_bytes = int64_t{8} << 30;
  int max_cached_clones = 64;
  git::ExportLimits export_limits;
  // host ("example.org" or "example.org:2222") -> accepted ssh host key
  // fingerprints, "SHA256:<base64 without padding>" (ssh-keygen -lf).
  std::map<std::string, std::set<std::string>> ssh_host_keys;
  std::shared_ptr<const Secrets> secrets;
};

struct GitSourceSpec {
  std::string url;
  std::string ref;  // empty: the remote's HEAD
  std::string credentials_secret;
  // Another ref to fetch besides branches and tags (refs/pull/7/head).
  std::string fetch_ref;
  // The changelog's base (a webhook's "before"); empty: the merge base
  // with main/master.
  std::string since;
};

struct CheckedOutSource {
  git::Commit commit;
  // The branch `ref` names ("" for a tag, a SHA, a pull-request ref).
  std::string branch;
  std::vector<std::string> changelog;
};

class GitFetcher {
 public:
  static absl::StatusOr<std::unique_ptr<GitFetcher>> Create(
      GitFetchOptions options);

  // Fetches spec.url, resolves spec.ref and exports its tree beneath the
  // empty directory `dir`. InvalidArgument for a refused URL or ref,
  // NotFound for a ref the repository lacks, Unauthenticated/Unavailable
  // for a failed fetch, ResourceExhausted past a bound. On error `dir` may
  // hold a partial export (the caller removes it).
  absl::StatusOr<CheckedOutSource> Checkout(const GitSourceSpec& spec,
                                            const std::string& dir);

  // The cache key of `url` (the clone's directory name).
  static std::string CacheKey(const std::string& url);

 private:
  explicit GitFetcher(GitFetchOptions options) : options_(std::move(options)) {}
  absl::Status Fetch(const std::string& url, const std::string& repo_dir,
                     const GitSourceSpec& spec);
  void EvictIdleClones(const std::string& keep);

  const GitFetchOptions options_;
};

// OK when a client may name `url` (the scheme allowlist above).
absl::Status CheckGitUrl(const std::string& url, bool allow_local);
// OK for a ref a client may name (no leading '-', no NUL or newline,
// at most 1 KiB).
absl::Status CheckGitRef(const std::string& ref);

// The libgit2 credential callback's decision, exposed for tests: fills
// `user`/`password` (https) or `ssh_key` from the secret `value`.
struct GitCredential {
  enum Kind { kNone, kUserPassword, kSshKey } kind = kNone;
  std::string user, password, ssh_key;
};
GitCredential CredentialFor(const std::string& value,
                            const std::string& username_from_url,
                            bool userpass_allowed, bool ssh_key_allowed);

}  // namespace kiln::source

#endif  // KILN_ENGINE_SOURCE_GIT_FETCHER_H_
