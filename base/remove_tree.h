// Removing a tree that a task or a client made: any depth, any modes, never
// following a symlink. Used by the engine (workspaces, temp dirs) and by host
// executors (their workspaces) alike.
#ifndef KILN_BASE_REMOVE_TREE_H_
#define KILN_BASE_REMOVE_TREE_H_

#include <string>

#include "absl/status/status.h"

namespace kiln {

// At most this many directories are open at once while removing a tree
// (deeper subtrees are moved up and removed from there).
constexpr int kMaxRemovalDepth = 64;

// Removes the entry `name` of the directory open at parent_fd (AT_FDCWD: a
// path) and everything below it, without following a symlink (a symlink
// found is removed itself). Directories a task left unreadable or
// unwritable (0, 0555) are fixed through their own descriptor first.
// Removal goes on past an entry that cannot be removed; the first error is
// returned. A missing `name` is OK.
absl::Status RemoveTreeAt(int parent_fd, const std::string& name);

}  // namespace kiln

#endif  // KILN_BASE_REMOVE_TREE_H_
