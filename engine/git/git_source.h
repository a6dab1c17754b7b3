// Git as a run's source (libgit2): what a work tree's HEAD says about the
// trigger (branch, revision, message, author, commit time, dirty or not),
// and the exact tree of a committed revision exported to a directory, read
// from the object database (no checkout, no filters: blob bytes as
// committed, modes as committed, symlinks as links).
//
// A repository is input that someone else may have written: entry names
// that could escape the export directory ("..", "/", ".git"), trees nested
// past a depth limit and exports past a byte limit are refused, and the
// export never follows a link.
// Thread-safe: each call opens its own repository handle.
#ifndef KILN_ENGINE_GIT_GIT_SOURCE_H_
#define KILN_ENGINE_GIT_GIT_SOURCE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::git {

struct Commit {
  std::string revision;  // full 40-hex SHA-1 (or 64-hex SHA-256)
  std::string message;   // the whole message, trailing newline removed
  std::string author;    // "Name <email>"
  int64_t time = 0;      // committer time, seconds since the epoch
  // ResolveCommit only: the local branch `rev` names ("" when it names none).
  std::string branch;
};

struct WorkTreeHead {
  std::string root;    // the work tree's top directory
  std::string branch;  // "main"; "" when HEAD is detached
  Commit commit;
  // Uncommitted changes beneath the path DiscoverWorkTree was given (the
  // pipeline's directory, which is the run's source): staged, unstaged, or
  // untracked (not ignored) files there. Changes elsewhere in the work tree
  // are not part of the source and do not count.
  bool dirty = false;
};

// The HEAD of the work tree containing `path`; nullopt when `path` is in no
// git work tree (or in a bare repository). An error for a repository that
// exists but cannot be read, or a HEAD with no commits yet.
absl::StatusOr<std::optional<WorkTreeHead>> DiscoverWorkTree(
    const std::string& path);

// Resolves `rev` (anything `git rev-parse` takes: a SHA, a branch, a tag,
// HEAD~2) in the repository containing `path` to a commit.
absl::StatusOr<Commit> ResolveCommit(const std::string& path,
                                     const std::string& rev);

struct ExportLimits {
  int max_depth = 256;                   // directory nesting
  int64_t max_bytes = int64_t{4} << 30;  // total blob bytes
  int64_t max_entries = 1'000'000;
};

// Writes the tree of commit `revision` of the repository containing `path`
// beneath the empty directory `dir` (created by the caller): files 0644 or
// 0755 as committed, symlinks as links, directories 0755. A submodule entry
// (gitlink) becomes an empty directory, as in a fresh clone without
// --recurse-submodules. On error the partial export is left for the caller
// to remove.
absl::Status ExportTree(const std::string& path, const std::string& revision,
                        const std::string& dir,
                        const ExportLimits& limits = {});

// The commit messages of `head` back to (not including) a base, newest
// first, at most `max`: the base is `since` when it is an ancestor of head
// (the revision of the last successful run), else the merge base of head
// with the first of `default_branches` that exists and is not head's own
// branch; with neither, just head's own message. Merges count as commits.
absl::StatusOr<std::vector<std::string>> Changelog(
    const std::string& path, const std::string& head, const std::string& since,
    const std::vector<std::string>& default_branches, int max = 1000);

}  // namespace kiln::git

#endif  // KILN_ENGINE_GIT_GIT_SOURCE_H_
