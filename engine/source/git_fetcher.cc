#include "engine/source/git_fetcher.h"

#include <fcntl.h>
#include <git2.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "base/status.h"
#include "engine/cas/file_io.h"

namespace kiln::source {
namespace {

constexpr size_t kMaxUrlBytes = 2048;
constexpr size_t kMaxRefBytes = 1024;
constexpr char kRedacted[] = "(secret)";

void InitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { git_libgit2_init(); });
}

bool HasControl(absl::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

// "HOST[:PORT]" of scheme://[USER[:PASS]@]HOST[:PORT]/PATH; sets
// `password` when the user info holds one.
std::string Authority(absl::string_view rest, bool* password) {
  absl::string_view authority = rest.substr(0, rest.find('/'));
  size_t at = authority.rfind('@');
  if (at != absl::string_view::npos) {
    *password = authority.substr(0, at).find(':') != absl::string_view::npos;
    authority = authority.substr(at + 1);
  }
  return std::string(authority);
}

bool ValidHost(absl::string_view host) {
  if (host.empty()) return false;
  for (char c : host) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
          c == '-' || c == ':' || c == '[' || c == ']')) {
      return false;
    }
  }
  return true;
}

struct FetchContext {
  const GitFetchOptions* options = nullptr;
  std::string secret_name;
  std::string secret_value;  // empty: none
  int credential_calls = 0;
  absl::Time deadline;
  bool over_bytes = false;
  bool over_time = false;
  bool refused = false;
  std::string untrusted_host_key;  // "HOST SHA256:..."
};

int CheckLimits(FetchContext* ctx, uint64_t received) {
  if (received > static_cast<uint64_t>(ctx->options->max_fetch_bytes)) {
    ctx->over_bytes = true;
    git_error_set_str(GIT_ERROR_NET, "fetch size limit reached");
    return -1;
  }
  if (absl::Now() > ctx->deadline) {
    ctx->over_time = true;
    git_error_set_str(GIT_ERROR_NET, "fetch time limit reached");
    return -1;
  }
  return 0;
}

int OnTransfer(const git_indexer_progress* stats, void* payload) {
  return CheckLimits(static_cast<FetchContext*>(payload),
                     stats->received_bytes);
}

int OnSideband(const char*, int, void* payload) {
  return CheckLimits(static_cast<FetchContext*>(payload), 0);
}

int OnCredentials(git_credential** out, const char*,
                  const char* username_from_url, unsigned int allowed,
                  void* payload) {
  auto* ctx = static_cast<FetchContext*>(payload);
  if (ctx->secret_value.empty()) return GIT_PASSTHROUGH;
  if (++ctx->credential_calls > 1) {
    // The remote refused what we offered: asking again would loop.
    ctx->refused = true;
    git_error_set_str(GIT_ERROR_NET, "credentials refused");
    return GIT_EAUTH;
  }
  GitCredential c = CredentialFor(
      ctx->secret_value, username_from_url != nullptr ? username_from_url : "",
      (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) != 0,
      (allowed & GIT_CREDENTIAL_SSH_MEMORY) != 0);
  switch (c.kind) {
    case GitCredential::kUserPassword:
      return git_credential_userpass_plaintext_new(out, c.user.c_str(),
                                                   c.password.c_str());
    case GitCredential::kSshKey:
      return git_credential_ssh_key_memory_new(out, c.user.c_str(), nullptr,
                                               c.ssh_key.c_str(), nullptr);
    case GitCredential::kNone:
      break;
  }
  return GIT_PASSTHROUGH;
}

std::string Base64NoPad(const unsigned char* data, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                            static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

int OnCertificate(git_cert* cert, int valid, const char* host, void* payload) {
  auto* ctx = static_cast<FetchContext*>(payload);
  if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2) {
    // TLS: libgit2's own verification against the system's CAs.
    return valid ? 0 : GIT_ECERTIFICATE;
  }
  const auto* key = reinterpret_cast<const git_cert_hostkey*>(cert);
  if ((key->type & GIT_CERT_SSH_SHA256) == 0) {
    git_error_set_str(GIT_ERROR_SSH, "no SHA-256 host key fingerprint");
    return GIT_ECERTIFICATE;
  }
  std::string fingerprint =
      absl::StrCat("SHA256:", Base64NoPad(key->hash_sha256, 32));
  std::string name = host != nullptr ? host : "";
  auto it = ctx->options->ssh_host_keys.find(name);
  if (it != ctx->options->ssh_host_keys.end() &&
      it->second.count(fingerprint) > 0) {
    return 0;
  }
  ctx->untrusted_host_key = absl::StrCat(name, " ", fingerprint);
  git_error_set_str(GIT_ERROR_SSH, "untrusted host key");
  return GIT_ECERTIFICATE;
}

// Makes sure no secret bytes leave in a message.
std::string Scrub(std::string text, const std::string& secret) {
  if (secret.size() >= 4) {
    absl::StrReplaceAll({{secret, kRedacted}}, &text);
  }
  return text;
}

std::string LastGitError() {
  const git_error* e = git_error_last();
  return e != nullptr && e->message != nullptr ? e->message : "unknown error";
}

// An exclusive flock on `path` held until destruction.
class FileLock {
 public:
  static absl::StatusOr<FileLock> Take(const std::string& path, bool wait) {
    int fd =
        open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return ErrnoStatus(errno, absl::StrCat("opening ", path));
    while (flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return ErrnoStatus(err, absl::StrCat("locking ", path));
    }
    return FileLock(fd);
  }
  FileLock(FileLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (fd_ >= 0) close(fd_);  // releases the flock
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

int64_t TreeBytes(const std::string& dir) {
  std::error_code ec;
  int64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
      total += static_cast<int64_t>(it->file_size(ec));
    }
  }
  return total;
}

}  // namespace

absl::Status CheckGitUrl(const std::string& url, bool allow_local) {
  if (url.empty()) return absl::InvalidArgumentError("git source: no url");
  if (url.size() > kMaxUrlBytes || HasControl(url) ||
      absl::StrContains(url, ' ')) {
    return absl::InvalidArgumentError(
        "git source url: at most 2 KiB, no spaces or control characters");
  }
  const std::string local_hint =
      " (file:// URLs and local paths need kiln serve --git-allow-local)";
  bool password = false;
  if (absl::StartsWith(url, "https://") || absl::StartsWith(url, "ssh://")) {
    absl::string_view rest = absl::string_view(url).substr(url.find("://") + 3);
    std::string authority = Authority(rest, &password);
    if (password) {
      return absl::InvalidArgumentError(
          "git source url holds a password: name a secret in "
          "credentials_secret instead");
    }
    if (!ValidHost(authority) || rest.find('/') == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("git source url '", url, "' has no valid host/path"));
    }
    return absl::OkStatus();
  }
  if (absl::StartsWith(url, "file://") || absl::StartsWith(url, "/")) {
    if (!allow_local) {
      return absl::InvalidArgumentError(absl::StrCat(
          "git source url '", url, "' names a path on the server", local_hint));
    }
    return absl::OkStatus();
  }
  // scp-style [USER@]HOST:PATH (ssh); never another scheme://, "ext::",
  // "fd::" or something an argument parser could take for an option.
  size_t colon = url.find(':');
  if (url.find("://") == std::string::npos && url[0] != '-' &&
      colon != std::string::npos && colon > 0 &&
      url.find("::") == std::string::npos && url.find('/') > colon &&
      colon + 1 < url.size()) {
    absl::string_view host = absl::string_view(url).substr(0, colon);
    if (size_t at = host.rfind('@'); at != absl::string_view::npos) {
      if (host.substr(0, at).find(':') != absl::string_view::npos) {
        password = true;
      }
      host = host.substr(at + 1);
    }
    if (!password && ValidHost(host) &&
        host.find(':') == absl::string_view::npos) {
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "git source url '", url,
      "': only https://, ssh:// and USER@HOST:PATH are accepted", local_hint));
}

absl::Status CheckGitRef(const std::string& ref) {
  if (ref.size() > kMaxRefBytes || HasControl(ref) ||
      absl::StartsWith(ref, "-") || absl::StrContains(ref, ' ')) {
    return absl::InvalidArgumentError(
        "git source ref: at most 1 KiB, not starting with '-', no spaces or "
        "control characters");
  }
  return absl::OkStatus();
}

GitCredential CredentialFor(const std::string& value,
                            const std::string& username_from_url,
                            bool userpass_allowed, bool ssh_key_allowed) {
  GitCredential c;
  std::string user = username_from_url.empty() ? "git" : username_from_url;
  if (absl::StartsWith(value, "-----BEGIN")) {
    if (!ssh_key_allowed) return c;
    c.kind = GitCredential::kSshKey;
    c.user = user;
    c.ssh_key = value;
    return c;
  }
  if (!userpass_allowed) return c;
  c.kind = GitCredential::kUserPassword;
  size_t colon = value.find(':');
  if (colon == std::string::npos) {
    c.user = user;
    c.password = value;
  } else {
    c.user = value.substr(0, colon);
    c.password = value.substr(colon + 1);
  }
  return c;
}

std::string GitFetcher::CacheKey(const std::string& url) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(url.data()), url.size(),
         digest);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<GitFetcher>> GitFetcher::Create(
    GitFetchOptions options) {
  if (options.cache_dir.empty()) {
    return absl::InvalidArgumentError("git fetcher: no cache directory");
  }
  if (absl::Status s = cas::MakeDirs(options.cache_dir); !s.ok()) return s;
  chmod(options.cache_dir.c_str(), 0700);  // clones may hold private code
  if (options.max_cached_clones < 1 || options.max_fetch_bytes < 1) {
    return absl::InvalidArgumentError("git fetcher: limits must be positive");
  }
  InitOnce();
  return std::unique_ptr<GitFetcher>(new GitFetcher(std::move(options)));
}

absl::Status GitFetcher::Fetch(const std::string& url,
                               const std::string& repo_dir,
                               const GitSourceSpec& spec) {
  FetchContext ctx;
  ctx.options = &options_;
  ctx.secret_name = spec.credentials_secret;
  if (!spec.credentials_secret.empty()) {
    if (options_.secrets == nullptr) {
      return absl::FailedPreconditionError(
          "git source names credentials, but the server has no secrets "
          "(kiln serve --secrets-dir)");
    }
    absl::StatusOr<std::string> value =
        options_.secrets->Get(spec.credentials_secret);
    if (!value.ok()) return value.status();
    ctx.secret_value = *value;
  }
  ctx.deadline = absl::Now() + options_.fetch_timeout;

  git_repository* repo = nullptr;
  int rc = git_repository_open_bare(&repo, repo_dir.c_str());
  if (rc != 0) rc = git_repository_init(&repo, repo_dir.c_str(), 1);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("git cache ", repo_dir, ": ", LastGitError()));
  }
  std::unique_ptr<git_repository, void (*)(git_repository*)> repo_owner(
      repo, git_repository_free);
  git_remote* remote = nullptr;
  if (git_remote_create_anonymous(&remote, repo, url.c_str()) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("git source url '", url, "': ", LastGitError()));
  }
  std::unique_ptr<git_remote, void (*)(git_remote*)> remote_owner(
      remote, git_remote_free);

  std::vector<std::string> specs = {"+refs/heads/*:refs/heads/*",
                                    "+refs/tags/*:refs/tags/*"};
  for (const std::string& ref : {spec.ref, spec.fetch_ref}) {
    if (!absl::StartsWith(ref, "refs/") ||
        absl::StartsWith(ref, "refs/heads/") ||
        absl::StartsWith(ref, "refs/tags/")) {
      continue;
    }
    if (!git_reference_is_valid_name(ref.c_str())) {
      return absl::InvalidArgumentError(
          absl::StrCat("git source ref '", ref, "' is not a valid ref"));
    }
    specs.push_back(absl::StrCat("+", ref, ":", ref));
  }
  std::vector<char*> raw;
  for (std::string& s : specs) raw.push_back(s.data());
  git_strarray refspecs = {raw.data(), raw.size()};

  git_fetch_options opts;
  git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
  opts.callbacks.credentials = OnCredentials;
  opts.callbacks.certificate_check = OnCertificate;
  opts.callbacks.transfer_progress = OnTransfer;
  opts.callbacks.sideband_progress = OnSideband;
  opts.callbacks.payload = &ctx;
  opts.prune = GIT_FETCH_PRUNE;
  opts.update_fetchhead = 0;
  opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  rc = git_remote_fetch(remote, &refspecs, &opts, nullptr);
  if (rc != 0) {
    std::string detail = Scrub(LastGitError(), ctx.secret_value);
    if (ctx.over_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "fetching '", url, "': more than ", options_.max_fetch_bytes,
          " bytes (--git-max-fetch-bytes)"));
    }
    if (ctx.over_time) {
      return absl::DeadlineExceededError(
          absl::StrCat("fetching '", url, "': took longer than ",
                       absl::FormatDuration(options_.fetch_timeout),
                       " (--git-fetch-timeout)"));
    }
    if (!ctx.untrusted_host_key.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "fetching '", url, "': the ssh host key ", ctx.untrusted_host_key,
          " is not trusted (kiln serve --git-ssh-host-key HOST=SHA256:...)"));
    }
    if (ctx.refused) {
      return absl::UnauthenticatedError(
          absl::StrCat("fetching '", url, "': the credentials in secret '",
                       ctx.secret_name, "' were refused"));
    }
    if (rc == GIT_EAUTH || absl::StrContains(detail, "authentication") ||
        absl::StrContains(detail, "credentials")) {
      return absl::UnauthenticatedError(absl::StrCat(
          "fetching '", url, "': ", detail,
          ctx.secret_value.empty() ? " (name a secret in credentials_secret)"
                                   : ""));
    }
    return absl::UnavailableError(
        absl::StrCat("fetching '", url, "': ", detail));
  }
  if (spec.ref.empty()) {
    // The remote's HEAD becomes the clone's HEAD.
    git_buf head = {nullptr, 0, 0};
    if (git_remote_default_branch(&head, remote) == 0) {
      git_repository_set_head(repo, head.ptr);
      git_buf_dispose(&head);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckedOutSource> GitFetcher::Checkout(const GitSourceSpec& spec,
                                                      const std::string& dir) {
  if (absl::Status s = CheckGitUrl(spec.url, options_.allow_local); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckGitRef(spec.ref); !s.ok()) return s;
  if (absl::Status s = CheckGitRef(spec.fetch_ref); !s.ok()) return s;
  const std::string key = CacheKey(spec.url);
  const std::string repo_dir = absl::StrCat(options_.cache_dir, "/", key);
  CheckedOutSource out;
  {
    absl::StatusOr<FileLock> lock =
        FileLock::Take(absl::StrCat(repo_dir, ".lock"), true);
    if (!lock.ok()) return lock.status();
    if (absl::Status s = Fetch(spec.url, repo_dir, spec); !s.ok()) return s;
    if (int64_t bytes = TreeBytes(repo_dir); bytes > options_.max_clone_bytes) {
      (void)cas::RemoveTree(repo_dir);
      return absl::ResourceExhaustedError(absl::StrCat(
          "the clone of '", spec.url, "' holds ", bytes, " bytes; at most ",
          options_.max_clone_bytes, " (--git-max-clone-bytes)"));
    }
    const std::string rev = spec.ref.empty() ? "HEAD" : spec.ref;
    absl::StatusOr<git::Commit> commit = git::ResolveCommit(repo_dir, rev);
    if (!commit.ok()) {
      return absl::Status(absl::IsNotFound(commit.status())
                              ? absl::StatusCode::kNotFound
                              : commit.status().code(),
                          absl::StrCat("git source '", spec.url,
                                       "': ", commit.status().message()));
    }
    out.commit = *commit;
    if (absl::StartsWith(rev, "refs/heads/")) {
      out.branch = rev.substr(strlen("refs/heads/"));
    } else if (!commit->branch.empty()) {
      out.branch = commit->branch;
    } else if (rev == "HEAD") {
      git_repository* repo = nullptr;
      if (git_repository_open_bare(&repo, repo_dir.c_str()) == 0) {
        git_reference* head = nullptr;
        if (git_repository_head(&head, repo) == 0) {
          if (git_reference_is_branch(head)) {
            out.branch = git_reference_shorthand(head);
          }
          git_reference_free(head);
        }
        git_repository_free(repo);
      }
    }
    if (absl::Status s = git::ExportTree(repo_dir, commit->revision, dir,
                                         options_.export_limits);
        !s.ok()) {
      return s;
    }
    absl::StatusOr<std::vector<std::string>> log = git::Changelog(
        repo_dir, commit->revision, spec.since, {"main", "master"});
    if (!log.ok()) return log.status();
    out.changelog = std::move(*log);
    utimensat(AT_FDCWD, repo_dir.c_str(), nullptr, 0);  // recently used
  }
  EvictIdleClones(key);
  return out;
}

void GitFetcher::EvictIdleClones(const std::string& keep) {
  std::error_code ec;
  std::vector<std::pair<std::filesystem::file_time_type, std::string>> clones;
  for (const auto& e :
       std::filesystem::directory_iterator(options_.cache_dir, ec)) {
    std::string name = e.path().filename().string();
    if (name == keep || !e.is_directory(ec) || e.is_symlink(ec)) continue;
    clones.emplace_back(e.last_write_time(ec), name);
  }
  int excess = static_cast<int>(clones.size()) + 1 - options_.max_cached_clones;
  if (excess <= 0) return;
  std::sort(clones.begin(), clones.end());
  for (const auto& [time, name] : clones) {
    if (excess <= 0) break;
    std::string path = absl::StrCat(options_.cache_dir, "/", name);
    // A clone in use (its lock held) is skipped.
    absl::StatusOr<FileLock> lock =
        FileLock::Take(absl::StrCat(path, ".lock"), false);
    if (!lock.ok()) continue;
    if (cas::RemoveTree(path).ok()) --excess;
  }
}

}  // namespace kiln::source
