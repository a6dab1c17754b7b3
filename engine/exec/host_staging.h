// HostStaging: the engine's ArtifactAccess (executors/artifact_access.h)
// over its artifact store, for executors running on this host.
//
//   Materialize: unstashes the artifact into a fresh temp directory inside
//     the workspace, then moves its entries into the target directory
//     (created beneath the workspace as needed) without replacing anything:
//     two inputs providing the same entry are an error, and a symlink on the
//     target path (put there by an earlier input) is refused, never followed.
//     The temp directory is removed, also on failure.
//   ArchiveOf / AdoptArchive (ArchiveAccess, for executors whose agent
//     moves archive blobs through the blob API): the verified archive of a
//     tree; an uploaded archive recorded only after it was extracted into a
//     scratch directory beneath the store and found to hold the tree
//     (cas::ArtifactStore::AdoptArchive).
//   Capture: checks that every path exists (without following a symlink on
//     the way), then stashes exactly those paths as one artifact. A symlink
//     among the outputs is stored as a link, never followed.
//
// Errors name what failed the way the run kind reports them: Capture's
// missing path is NotFound "path 'p' was not produced"; the caller prefixes
// "output 'NAME': ". Thread-safe (the artifact store is).
#ifndef KILN_ENGINE_EXEC_HOST_STAGING_H_
#define KILN_ENGINE_EXEC_HOST_STAGING_H_

#include <string>
#include <vector>

#include "engine/cas/artifact_store.h"
#include "executors/artifact_access.h"

namespace kiln {

class HostStaging : public ArtifactAccess, public ArchiveAccess {
 public:
  // `artifacts` must outlive this object.
  explicit HostStaging(const cas::ArtifactStore* artifacts)
      : artifacts_(artifacts) {}

  absl::Status Materialize(const std::string& digest, int workspace_fd,
                           const std::string& relative_path) override;
  absl::StatusOr<std::string> Capture(
      int workspace_fd, const std::vector<std::string>& paths) override;

  absl::StatusOr<std::string> ArchiveOf(const std::string& tree) override;
  absl::Status AdoptArchive(const std::string& tree,
                            const std::string& archive) override;

 private:
  const cas::ArtifactStore* artifacts_;
};

// Moves every entry of the directory `tmp` of parent_fd into the directory
// `path` beneath ws_fd (created as needed, never through a symlink), never
// replacing an entry, then removes `tmp` (also on failure). `artifact`
// names the input in errors ("" = the caller names it).
absl::Status MergeInput(int parent_fd, const std::string& tmp, int ws_fd,
                        const std::string& path, const std::string& artifact);

// OK if `path` exists beneath ws_fd (reached without following a symlink;
// the entry itself may be one). NotFound "was not produced" if missing.
absl::Status CheckProduced(int ws_fd, const std::string& path);

}  // namespace kiln

#endif  // KILN_ENGINE_EXEC_HOST_STAGING_H_
