#include "engine/git/git_source.h"

#include <fcntl.h>
#include <git2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status.h"

namespace kiln::git {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p != nullptr) Free(p);
  }
};
using Repo = std::unique_ptr<git_repository,
                             Deleter<git_repository, git_repository_free>>;
using Ref =
    std::unique_ptr<git_reference, Deleter<git_reference, git_reference_free>>;
using Object =
    std::unique_ptr<git_object, Deleter<git_object, git_object_free>>;
using Tree = std::unique_ptr<git_tree, Deleter<git_tree, git_tree_free>>;
using Blob = std::unique_ptr<git_blob, Deleter<git_blob, git_blob_free>>;

void InitOnce() {
  static std::once_flag once;
  // Never shut down: other threads may still hold repositories.
  std::call_once(once, [] { git_libgit2_init(); });
}

// The last libgit2 error as a Status mentioning `what`.
absl::Status GitError(int code, absl::string_view what) {
  const git_error* e = git_error_last();
  std::string detail = e != nullptr && e->message != nullptr
                           ? e->message
                           : absl::StrCat("libgit2 error ", code);
  absl::StatusCode status = code == GIT_ENOTFOUND
                                ? absl::StatusCode::kNotFound
                                : absl::StatusCode::kFailedPrecondition;
  return absl::Status(status, absl::StrCat(what, ": ", detail));
}

absl::StatusOr<Repo> Open(const std::string& path, bool* none) {
  InitOnce();
  git_repository* raw = nullptr;
  int rc = git_repository_open_ext(&raw, path.c_str(), 0, nullptr);
  if (rc == GIT_ENOTFOUND) {
    if (none != nullptr) *none = true;
    return absl::NotFoundError(
        absl::StrCat("'", path, "' is not inside a git repository"));
  }
  if (rc != 0)
    return GitError(rc, absl::StrCat("opening git repository at '", path, "'"));
  return Repo(raw);
}

std::string OidHex(const git_oid* oid) {
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof hex, oid);
  return hex;
}

Commit FromCommit(git_commit* c) {
  Commit out;
  out.revision = OidHex(git_commit_id(c));
  const char* msg = git_commit_message(c);
  out.message = std::string(
      absl::StripTrailingAsciiWhitespace(msg != nullptr ? msg : ""));
  if (const git_signature* a = git_commit_author(c); a != nullptr) {
    out.author = absl::StrCat(a->name != nullptr ? a->name : "", " <",
                              a->email != nullptr ? a->email : "", ">");
  }
  out.time = static_cast<int64_t>(git_commit_time(c));
  return out;
}

// `path` relative to the work tree `root`, both with symlinks resolved; ""
// for the top itself, or when that cannot be said (the whole tree is then
// looked at: never less than the path's subtree).
std::string RelativeToWorkTree(const std::string& root,
                               const std::string& path) {
  auto real = [](const std::string& p) {
    std::unique_ptr<char, decltype(&free)> r(realpath(p.c_str(), nullptr),
                                             &free);
    return r != nullptr ? std::string(r.get()) : std::string();
  };
  std::string top = real(root);
  std::string at = real(path);
  if (top.empty() || at.size() <= top.size() + 1 ||
      at.compare(0, top.size(), top) != 0 || at[top.size()] != '/') {
    return "";
  }
  return at.substr(top.size() + 1);
}

// Stops at the first change: a dirty tree costs no more than finding one.
// `scope` (relative to the work tree, "" for all of it) limits the status to
// one subtree: libgit2 then reads only that part of the work tree.
absl::StatusOr<bool> IsDirty(git_repository* repo, const std::string& scope) {
  git_status_options opts;
  git_status_options_init(&opts, GIT_STATUS_OPTIONS_VERSION);
  opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
  opts.flags =
      GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
  char* spec = const_cast<char*>(scope.c_str());
  if (!scope.empty()) {
    // A literal path, not a pattern: a directory named `a*` is just that.
    opts.flags |= GIT_STATUS_OPT_DISABLE_PATHSPEC_MATCH;
    opts.pathspec.strings = &spec;
    opts.pathspec.count = 1;
  }
  constexpr int kFound = 1;
  int rc = git_status_foreach_ext(
      repo, &opts,
      [](const char*, unsigned int flags, void*) -> int {
        return flags == GIT_STATUS_CURRENT || (flags & GIT_STATUS_IGNORED) != 0
                   ? 0
                   : kFound;
      },
      nullptr);
  if (rc == kFound) return true;
  if (rc != 0) return GitError(rc, "reading the work tree's status");
  return false;
}

// An entry name that stays inside its directory and is not git's own.
bool SafeName(absl::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == absl::string_view::npos &&
         name.find('\0') == absl::string_view::npos &&
         absl::AsciiStrToLower(name) != ".git";
}

class Exporter {
 public:
  Exporter(git_repository* repo, const ExportLimits& limits)
      : repo_(repo), limits_(limits) {}

  absl::Status ExportDir(const git_tree* tree, int dir_fd,
                         const std::string& at, int depth) {
    if (depth > limits_.max_depth) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", at, "' is nested deeper than ", limits_.max_depth, " levels"));
    }
    size_t n = git_tree_entrycount(tree);
    for (size_t i = 0; i < n; ++i) {
      const git_tree_entry* e = git_tree_entry_byindex(tree, i);
      std::string name = git_tree_entry_name(e);
      std::string path = at.empty() ? name : absl::StrCat(at, "/", name);
      if (!SafeName(name)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tree entry '", path, "' is not a safe file name"));
      }
      if (++entries_ > limits_.max_entries) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the tree has more than ", limits_.max_entries, " entries"));
      }
      if (absl::Status s = Entry(e, dir_fd, name, path, depth); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Entry(const git_tree_entry* e, int dir_fd,
                     const std::string& name, const std::string& path,
                     int depth) {
    git_filemode_t mode = git_tree_entry_filemode(e);
    switch (mode) {
      case GIT_FILEMODE_TREE:
        return Directory(e, dir_fd, name, path, depth);
      case GIT_FILEMODE_COMMIT:  // a submodule: empty, as in a plain clone
        if (mkdirat(dir_fd, name.c_str(), 0755) != 0) {
          return ErrnoStatus(errno, absl::StrCat("creating '", path, "'"));
        }
        return absl::OkStatus();
      case GIT_FILEMODE_BLOB:
      case GIT_FILEMODE_BLOB_EXECUTABLE:
      case GIT_FILEMODE_LINK:
        return BlobEntry(e, dir_fd, name, path, mode);
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("tree entry '", path, "' has an unknown mode ", mode));
    }
  }

  absl::Status Directory(const git_tree_entry* e, int dir_fd,
                         const std::string& name, const std::string& path,
                         int depth) {
    git_tree* raw = nullptr;
    if (int rc = git_tree_lookup(&raw, repo_, git_tree_entry_id(e)); rc != 0) {
      return GitError(rc, absl::StrCat("reading tree '", path, "'"));
    }
    Tree sub(raw);
    if (mkdirat(dir_fd, name.c_str(), 0755) != 0) {
      return ErrnoStatus(errno, absl::StrCat("creating '", path, "'"));
    }
    int fd = openat(dir_fd, name.c_str(),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, absl::StrCat("opening '", path, "'"));
    absl::Status s = ExportDir(sub.get(), fd, path, depth + 1);
    close(fd);
    return s;
  }

  absl::Status BlobEntry(const git_tree_entry* e, int dir_fd,
                         const std::string& name, const std::string& path,
                         git_filemode_t mode) {
    git_blob* raw = nullptr;
    if (int rc = git_blob_lookup(&raw, repo_, git_tree_entry_id(e)); rc != 0) {
      return GitError(rc, absl::StrCat("reading '", path, "'"));
    }
    Blob blob(raw);
    int64_t size = static_cast<int64_t>(git_blob_rawsize(blob.get()));
    bytes_ += size;
    if (bytes_ > limits_.max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the tree holds more than ", limits_.max_bytes, " bytes"));
    }
    const char* data =
        static_cast<const char*>(git_blob_rawcontent(blob.get()));
    if (mode == GIT_FILEMODE_LINK) {
      std::string target(data, static_cast<size_t>(size));
      if (target.find('\0') != std::string::npos || target.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("symlink '", path, "' has an invalid target"));
      }
      if (symlinkat(target.c_str(), dir_fd, name.c_str()) != 0) {
        return ErrnoStatus(errno, absl::StrCat("creating link '", path, "'"));
      }
      return absl::OkStatus();
    }
    mode_t perm = mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644;
    int fd = openat(dir_fd, name.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perm);
    if (fd < 0)
      return ErrnoStatus(errno, absl::StrCat("creating '", path, "'"));
    absl::Status s = WriteAll(fd, data, static_cast<size_t>(size), path);
    // The umask must not change what the commit says.
    if (s.ok() && fchmod(fd, perm) != 0) {
      s = ErrnoStatus(errno, absl::StrCat("setting the mode of '", path, "'"));
    }
    close(fd);
    return s;
  }

  static absl::Status WriteAll(int fd, const char* data, size_t size,
                               const std::string& path) {
    while (size > 0) {
      ssize_t n = write(fd, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        return ErrnoStatus(errno, absl::StrCat("writing '", path, "'"));
      data += n;
      size -= static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  git_repository* repo_;
  ExportLimits limits_;
  int64_t bytes_ = 0;
  int64_t entries_ = 0;
};

absl::StatusOr<Object> PeelCommit(git_repository* repo,
                                  const std::string& rev) {
  git_object* raw = nullptr;
  if (int rc = git_revparse_single(&raw, repo, rev.c_str()); rc != 0) {
    return GitError(rc, absl::StrCat("revision '", rev, "'"));
  }
  Object obj(raw);
  git_object* commit = nullptr;
  if (int rc = git_object_peel(&commit, obj.get(), GIT_OBJECT_COMMIT);
      rc != 0) {
    return GitError(rc, absl::StrCat("revision '", rev, "' is not a commit"));
  }
  return Object(commit);
}

// 1 if `path` exists (any type, not followed), 0 if not, -1 if that cannot
// be told (permissions, I/O).
int Exists(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) return 1;
  return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
}

// False only when libgit2's discovery (git_repository_open_ext, no flags)
// cannot find a repository from `path`: neither it nor any parent holds a
// `.git` entry or is itself a repository directory (HEAD and objects). Those
// are the only things the discovery accepts, walking the same resolved path
// upwards, so a false here is its answer without loading libgit2 (a dlopen
// and its TLS setup: most of a `kiln run` outside git, bench/README.md B1).
// When in doubt (an unreadable directory) it says true: libgit2 decides.
bool MayBeInRepository(const std::string& path) {
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) return true;
  std::string dir = resolved;
  while (true) {
    std::string base = dir == "/" ? "" : dir;
    if (Exists(base + "/.git") != 0) return true;
    int head = Exists(base + "/HEAD");
    if (head != 0 && Exists(base + "/objects") != 0) return true;
    if (base.empty()) return false;
    size_t slash = dir.rfind('/');
    dir = slash == 0 ? "/" : dir.substr(0, slash);
  }
}

}  // namespace

absl::StatusOr<std::optional<WorkTreeHead>> DiscoverWorkTree(
    const std::string& path) {
  if (!MayBeInRepository(path)) return std::optional<WorkTreeHead>();
  bool none = false;
  absl::StatusOr<Repo> repo = Open(path, &none);
  if (none) return std::optional<WorkTreeHead>();
  if (!repo.ok()) return repo.status();
  if (git_repository_is_bare(repo->get())) return std::optional<WorkTreeHead>();
  WorkTreeHead head;
  head.root =
      std::string(absl::StripSuffix(git_repository_workdir(repo->get()), "/"));
  git_reference* raw = nullptr;
  int rc = git_repository_head(&raw, repo->get());
  if (rc == GIT_EUNBORNBRANCH) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the git repository at '", head.root, "' has no commits yet"));
  }
  if (rc != 0) return GitError(rc, "reading HEAD");
  Ref ref(raw);
  if (git_reference_is_branch(ref.get())) {
    head.branch = git_reference_shorthand(ref.get());
  }
  git_object* commit = nullptr;
  if (int prc = git_reference_peel(&commit, ref.get(), GIT_OBJECT_COMMIT);
      prc != 0) {
    return GitError(prc, "HEAD is not a commit");
  }
  Object c(commit);
  head.commit = FromCommit(reinterpret_cast<git_commit*>(c.get()));
  absl::StatusOr<bool> dirty =
      IsDirty(repo->get(), RelativeToWorkTree(head.root, path));
  if (!dirty.ok()) return dirty.status();
  head.dirty = *dirty;
  return std::optional<WorkTreeHead>(std::move(head));
}

absl::StatusOr<Commit> ResolveCommit(const std::string& path,
                                     const std::string& rev) {
  absl::StatusOr<Repo> repo = Open(path, nullptr);
  if (!repo.ok()) return repo.status();
  absl::StatusOr<Object> commit = PeelCommit(repo->get(), rev);
  if (!commit.ok()) return commit.status();
  Commit out = FromCommit(reinterpret_cast<git_commit*>(commit->get()));
  git_reference* branch = nullptr;
  if (git_branch_lookup(&branch, repo->get(), rev.c_str(), GIT_BRANCH_LOCAL) ==
      0) {
    Ref ref(branch);
    out.branch = rev;
  }
  return out;
}

absl::Status ExportTree(const std::string& path, const std::string& revision,
                        const std::string& dir, const ExportLimits& limits) {
  absl::StatusOr<Repo> repo = Open(path, nullptr);
  if (!repo.ok()) return repo.status();
  absl::StatusOr<Object> commit = PeelCommit(repo->get(), revision);
  if (!commit.ok()) return commit.status();
  git_tree* raw = nullptr;
  if (int rc =
          git_commit_tree(&raw, reinterpret_cast<git_commit*>(commit->get()));
      rc != 0) {
    return GitError(rc, absl::StrCat("reading the tree of ", revision));
  }
  Tree tree(raw);
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("opening '", dir, "'"));
  absl::Status s =
      Exporter(repo->get(), limits).ExportDir(tree.get(), fd, "", 0);
  close(fd);
  return s;
}

namespace {

using Walk =
    std::unique_ptr<git_revwalk, Deleter<git_revwalk, git_revwalk_free>>;

// The oid `rev` names (peeled to a commit), or nullopt when it names none.
std::optional<git_oid> CommitOid(git_repository* repo, const std::string& rev) {
  if (rev.empty()) return std::nullopt;
  absl::StatusOr<Object> c = PeelCommit(repo, rev);
  if (!c.ok()) return std::nullopt;
  return *git_object_id(c->get());
}

}  // namespace

absl::StatusOr<std::vector<std::string>> Changelog(
    const std::string& path, const std::string& head, const std::string& since,
    const std::vector<std::string>& default_branches, int max) {
  absl::StatusOr<Repo> repo = Open(path, nullptr);
  if (!repo.ok()) return repo.status();
  std::optional<git_oid> head_oid = CommitOid(repo->get(), head);
  if (!head_oid) {
    return absl::NotFoundError(
        absl::StrCat("revision '", head, "' is not a commit"));
  }
  std::optional<git_oid> base;
  if (std::optional<git_oid> s = CommitOid(repo->get(), since);
      s && (git_oid_equal(&*s, &*head_oid) ||
            git_graph_descendant_of(repo->get(), &*head_oid, &*s) == 1)) {
    base = s;
  }
  for (size_t i = 0; !base && i < default_branches.size(); ++i) {
    std::optional<git_oid> tip = CommitOid(repo->get(), default_branches[i]);
    if (!tip) continue;
    git_oid merge_base;
    if (git_merge_base(&merge_base, repo->get(), &*head_oid, &*tip) == 0 &&
        !git_oid_equal(&merge_base, &*head_oid)) {
      base = merge_base;
    }
    break;  // the first default branch that exists decides
  }
  std::vector<std::string> out;
  git_revwalk* raw = nullptr;
  if (int rc = git_revwalk_new(&raw, repo->get()); rc != 0) {
    return GitError(rc, "walking the history");
  }
  Walk walk(raw);
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
  if (int rc = git_revwalk_push(walk.get(), &*head_oid); rc != 0) {
    return GitError(rc, "walking the history");
  }
  if (base && git_revwalk_hide(walk.get(), &*base) != 0) {
    return GitError(-1, "walking the history");
  }
  // Without a base: only head itself.
  int limit = base ? max : 1;
  git_oid oid;
  while (static_cast<int>(out.size()) < limit &&
         git_revwalk_next(&oid, walk.get()) == 0) {
    git_commit* c = nullptr;
    if (int rc = git_commit_lookup(&c, repo->get(), &oid); rc != 0) {
      return GitError(rc, "reading a commit");
    }
    const char* msg = git_commit_message(c);
    out.emplace_back(absl::StripTrailingAsciiWhitespace(msg ? msg : ""));
    git_commit_free(c);
  }
  return out;
}

}  // namespace kiln::git
