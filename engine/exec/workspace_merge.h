// Moving extracted inputs into a task workspace and checking outputs, beneath
// the workspace and never following a symlink. Shared by the engine's
// HostStaging (host_staging.h) and the pod agent (engine/agent), so that
// inputs merge and outputs are checked the same way wherever a task runs.
// Thread-safe (no shared state).
#ifndef KILN_ENGINE_EXEC_WORKSPACE_MERGE_H_
#define KILN_ENGINE_EXEC_WORKSPACE_MERGE_H_

#include <string>

#include "absl/status/status.h"

namespace kiln {

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

#endif  // KILN_ENGINE_EXEC_WORKSPACE_MERGE_H_
