// Staging a `run` task's workspace on this host: inputs unstashed into it,
// outputs checked in it. (To become the executor-side staging helper.)
#ifndef KILN_ENGINE_KINDS_RUN_STAGE_H_
#define KILN_ENGINE_KINDS_RUN_STAGE_H_

#include <string>

#include "absl/status/status.h"
#include "engine/kinds/kind_env.h"
#include "engine/kinds/workspace.h"

namespace kiln::kinds {

// Unstashes artifact `digest` next to the workspace and merges it into
// input.path() beneath it (never following a link, never replacing).
absl::Status StageInput(const TaskRunnerContext& ctx, const ScopedWorkDir& ws,
                        const v1::ArtifactInput& input,
                        const std::string& digest);

// Did the task produce `path` (beneath ws_fd, without following symlinks)?
absl::Status CheckProduced(int ws_fd, const std::string& path);

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_RUN_STAGE_H_
