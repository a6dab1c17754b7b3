// WriteTreeArchive: the artifact archive of a walked tree (tree_walk.h), as
// the artifact store writes it: a deterministic tar stream (tar_writer.h)
// compressed by zstd at ZstdCompressor::kLevel with >= 1 worker (the bytes
// do not depend on the worker count). The store's stash and the pod agent
// (engine/agent) both write archives with it, so one tree always gives one
// archive digest wherever it was packed.
//
// Files are opened beneath root_fd without following a symlink, hashed while
// they are read, and must match what the walk saw (FailedPrecondition if a
// file changes while it is read). Thread-safe (no shared state).
#ifndef KILN_ENGINE_CAS_TREE_ARCHIVE_H_
#define KILN_ENGINE_CAS_TREE_ARCHIVE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/cas/digest.h"
#include "engine/cas/tree_digest.h"
#include "engine/cas/tree_walk.h"

namespace kiln::cas {

using ArchiveSink = std::function<absl::Status(absl::string_view)>;

// Writes the archive of `walked` (entries of the directory open at root_fd;
// `display` names it in errors) to `sink`. Returns the tree entries with
// every file's content digest (ComputeTreeDigest of them is the tree's
// identity). `on_file(index, digest)` is called for each file as it is
// hashed: on this thread for trees whose files total at most 1 MiB, on a
// producer thread otherwise.
absl::StatusOr<std::vector<TreeEntry>> WriteTreeArchive(
    int root_fd, const std::string& display,
    const std::vector<WalkedEntry>& walked, int compression_workers,
    const ArchiveSink& sink,
    const std::function<void(size_t, const Digest&)>& on_file = nullptr);

}  // namespace kiln::cas

#endif  // KILN_ENGINE_CAS_TREE_ARCHIVE_H_
