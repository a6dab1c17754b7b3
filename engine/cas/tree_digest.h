// The identity of a directory tree: a Merkle digest over its entries.
//
// Encoding, version 1 (this text is the specification; changing it changes
// every tree digest, so a new encoding gets a new version line):
//
//   A directory is encoded as the line "kiln.tree.v1\n" followed by one line
//   per child, children in bytewise order of their names:
//
//     regular file     "f <n>:<name> <content hex> <size>\n"
//     executable file  "x <n>:<name> <content hex> <size>\n"
//     directory        "d <n>:<name> <directory hex>\n"
//     symlink          "l <n>:<name> <m>:<target>\n"
//
//   <n>, <m>, <size> are decimal byte counts; <name> is the raw entry name
//   (no '/', no NUL); <content hex> is the SHA-256 of the file's bytes,
//   <directory hex> the SHA-256 of the child directory's encoding; <target>
//   is the symlink's target verbatim (never resolved). Nothing else is part
//   of the identity: no mtimes, owners, permission bits other than the
//   owner-execute bit, or xattrs.
//
//   The tree digest is the SHA-256 of the root directory's encoding; its
//   size is the length of that encoding.
#ifndef KILN_ENGINE_CAS_TREE_DIGEST_H_
#define KILN_ENGINE_CAS_TREE_DIGEST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/cas/digest.h"

namespace kiln::cas {

enum class EntryType { kFile, kDirectory, kSymlink };

// One entry of a tree, as stashed or extracted.
struct TreeEntry {
  std::string path;  // relative, '/'-separated, no "", "." or ".." parts
  EntryType type = EntryType::kFile;
  bool executable = false;  // files only
  Digest digest;            // files only: digest of the content (with size)
  std::string link_target;  // symlinks only
};

// Computes the tree digest of `entries` (any order). Parent directories
// that are not listed are implied (empty-named parts are not allowed).
// InvalidArgument on a malformed path, a duplicate, or a path below a file
// or symlink.
absl::StatusOr<Digest> ComputeTreeDigest(std::vector<TreeEntry> entries);

}  // namespace kiln::cas

#endif  // KILN_ENGINE_CAS_TREE_DIGEST_H_
