// ArtifactAccess: how an executor running on this host moves artifacts
// between the engine's store and a task workspace, without seeing the store.
//
// The engine implements it over its artifact store (engine/exec/
// host_staging.h); a pod executor's agent will implement the same over the
// blob API. The workspace is hostile (a task or an earlier input may have
// put a symlink anywhere in it): every operation stays beneath workspace_fd
// and never follows a symlink.
//
// Implementations are thread-safe: one instance serves concurrent tasks.
#ifndef KILN_EXECUTORS_ARTIFACT_ACCESS_H_
#define KILN_EXECUTORS_ARTIFACT_ACCESS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "executors/image_access.h"

namespace kiln {

class ArtifactAccess {
 public:
  virtual ~ArtifactAccess() = default;
  // Unpacks artifact `digest` and merges it into `relative_path` beneath
  // workspace_fd (never following a link; refusing to overwrite), as the
  // engine does today for run inputs.
  virtual absl::Status Materialize(const std::string& digest, int workspace_fd,
                                   const std::string& relative_path) = 0;
  // Stores `paths` (relative to workspace_fd, each must exist) as one artifact;
  // returns its tree digest. Never follows a link out of the workspace.
  virtual absl::StatusOr<std::string> Capture(
      int workspace_fd, const std::vector<std::string>& paths) = 0;
};

// Where an executor running on this host makes a task's workspace and how it
// moves the task's artifacts (the location-independent request mode).
// How an executor that runs elsewhere moves artifacts: its agent transfers
// archive blobs through the blob API; the engine maps trees to archives.
class ArchiveAccess {
 public:
  virtual ~ArchiveAccess() = default;
  // The archive blob (sha256:...) holding tree `tree`, present in the store
  // the blob API serves (NotFound otherwise).
  virtual absl::StatusOr<std::string> ArchiveOf(const std::string& tree) = 0;
  // Records that uploaded blob `archive` holds tree `tree`; verifies it
  // (safe extraction into a scratch dir, tree digest equal) before returning
  // OK; a forged claim is InvalidArgument and is not recorded.
  virtual absl::Status AdoptArchive(const std::string& tree,
                                    const std::string& archive) = 0;
};

struct HostWorkspaceOptions {
  // Directory (trusted, created if missing) under which workspaces are made
  // as "<run>.<task>.<attempt>.<random>".
  std::string work_root;
  // Materializes inputs and captures outputs; must outlive the executions.
  ArtifactAccess* artifacts = nullptr;
  // Prepares request.image on this host; null: this host runs no images.
  // Must outlive the executions.
  ImageAccess* images = nullptr;
  // For an executor that runs elsewhere (a pod): archives of the inputs,
  // adoption of the uploaded outputs. Must outlive the executions.
  ArchiveAccess* archives = nullptr;
};

}  // namespace kiln

#endif  // KILN_EXECUTORS_ARTIFACT_ACCESS_H_
