// An in-memory ArtifactAccess for executor tests: an artifact is a map of
// workspace-relative file paths to contents, named "mem:<n>". Materialize
// writes the files beneath the workspace fd (creating directories, never
// following a symlink, never replacing a file); Capture reads regular files
// and directories back (a symlink is refused). Thread-safe.
#ifndef KILN_EXECUTORS_TESTING_MEMORY_ARTIFACT_ACCESS_H_
#define KILN_EXECUTORS_TESTING_MEMORY_ARTIFACT_ACCESS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "executors/artifact_access.h"

namespace kiln {
namespace conformance {

class MemoryArtifactAccess : public ArtifactAccess {
 public:
  using Files = std::map<std::string, std::string>;

  // Stores `files`; returns the digest to put in an ExecInput.
  std::string Put(Files files);
  // The files of a stored or captured artifact (NotFound if unknown).
  absl::StatusOr<Files> Get(const std::string& digest) const;

  absl::Status Materialize(const std::string& digest, int workspace_fd,
                           const std::string& relative_path) override;
  absl::StatusOr<std::string> Capture(
      int workspace_fd, const std::vector<std::string>& paths) override;

 private:
  mutable Mutex mu_;
  std::map<std::string, Files> artifacts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace conformance
}  // namespace kiln

#endif  // KILN_EXECUTORS_TESTING_MEMORY_ARTIFACT_ACCESS_H_
