// Listing a directory tree for stashing, without following symlinks.
//
// Entries come out in archive order: depth-first, siblings sorted bytewise
// by name (equivalently, paths sorted with '/' below every other byte).
// Regular files, directories and symlinks are listed (symlinks with their
// target, never followed); a FIFO, socket or device is an error naming its
// path, and is never opened. Thread-safe (no shared state).
#ifndef KILN_ENGINE_CAS_TREE_WALK_H_
#define KILN_ENGINE_CAS_TREE_WALK_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/cas/stat_cache.h"
#include "engine/cas/tree_digest.h"

namespace kiln::cas {

struct WalkedEntry {
  std::string path;  // relative to the root
  EntryType type = EntryType::kFile;
  FileStat stat;
  std::string link_target;
};

// True if `a` sorts before `b` in archive order.
bool ArchiveOrderLess(absl::string_view a, absl::string_view b);

// Stash exclusion (`stash: {exclude: [...]}`), glob patterns as fnmatch(3)
// with FNM_PATHNAME (`*`, `?` and `[...]` never match '/'; no `**`):
//   - a pattern without '/' matches an entry's name at any depth
//     ("*.tmp", "node_modules");
//   - a pattern with '/' matches the entry's whole path from the stashed
//     root ("docs/*.bak", "build/out"); so does one with a leading "/"
//     ("/pipeline.yaml": only that file at the root); a leading "./" and a
//     trailing "/" are ignored; '\\' escapes the next character;
//   - an excluded directory is left out with everything below it.
bool IsExcluded(const std::vector<std::string>& patterns,
                absl::string_view rel_path);

// The deepest directory WalkTree and WalkPaths descend into (the root is
// level 0); a deeper one is InvalidArgument naming it. The walk holds one
// descriptor per level, so this also bounds its descriptors.
constexpr int kMaxWalkDepth = 256;

// Lists everything below the directory open at `root_fd`, leaving out what
// `exclude` matches (IsExcluded). `display_root` prefixes paths in error
// messages.
absl::StatusOr<std::vector<WalkedEntry>> WalkTree(
    int root_fd, const std::string& display_root,
    const std::vector<std::string>& exclude = {});

// Lists `paths` (relative to root_fd; each a file, symlink or directory,
// directories recursively) plus their parent directories.
absl::StatusOr<std::vector<WalkedEntry>> WalkPaths(
    int root_fd, const std::string& display_root,
    const std::vector<std::string>& paths);

// Opens the regular file `rel_path` below root_fd for reading, refusing to
// pass through or end at a symlink (openat2 RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS), and without blocking on a FIFO swapped in.
absl::StatusOr<int> OpenFileBeneath(int root_fd, const std::string& rel_path);

}  // namespace kiln::cas

#endif  // KILN_ENGINE_CAS_TREE_WALK_H_
