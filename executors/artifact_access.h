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

#include <functional>
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

// How an executor whose tasks run elsewhere (a pod executor) moves
// artifacts: its agent transfers archive blobs (sha256:... of the zstd tar
// stream, engine/cas/artifact_store.h) through the blob API, and the engine
// maps tree digests to archive blobs and back. The agent's uploads are
// hostile: a claim that an archive holds a tree is verified before it is
// believed.
//
// Implementations are thread-safe.
class ArchiveAccess {
 public:
  virtual ~ArchiveAccess() = default;
  // The archive blob (sha256:...) holding tree `tree`, present in the store
  // the blob API serves. NotFound if the artifact is unknown or its archive
  // is missing; InvalidArgument for a malformed digest.
  virtual absl::StatusOr<std::string> ArchiveOf(const std::string& tree) = 0;
  // Records that the uploaded blob `archive` holds tree `tree`. Verifies it
  // first (safe extraction into a scratch directory beneath the store, the
  // extracted tree's digest equal to `tree`); a forged or corrupt claim is
  // InvalidArgument and nothing is recorded. NotFound if `archive` is not in
  // the store. OK (nothing changed) if `tree` is already stored.
  virtual absl::Status AdoptArchive(const std::string& tree,
                                    const std::string& archive) = 0;
};

// Where an executor running on this host makes a task's workspace and how it
// moves the task's artifacts (the location-independent request mode).
struct HostWorkspaceOptions {
  // Directory (trusted, created if missing) under which workspaces are made
  // as "<run>.<task>.<attempt>.<random>".
  std::string work_root;
  // Materializes inputs and captures outputs; must outlive the executions.
  ArtifactAccess* artifacts = nullptr;
  // Prepares request.image on this host; null: this host runs no images.
  // Must outlive the executions.
  ImageAccess* images = nullptr;
  // Maps trees to archive blobs and adopts uploaded ones, for executors
  // whose tasks run elsewhere; null: not available. Must outlive the
  // executions.
  ArchiveAccess* archives = nullptr;
  // Called once, on the thread in Wait(), when the command has ended and
  // before its outputs are captured and its workspace removed: what is
  // left is the engine's own work, so a scheduler may start another
  // task's command meanwhile. Empty: not called.
  std::function<void()> command_done = nullptr;
};

}  // namespace kiln

#endif  // KILN_EXECUTORS_ARTIFACT_ACCESS_H_
