// The execution of a `run` task on this host: a fresh workspace with the
// inputs unstashed, the ExecRequest, Start/Wait through the Executor with
// the log streamed (masked) to a file and to events, the ExecResult mapped
// to an outcome, the declared outputs stashed.
#ifndef KILN_ENGINE_KINDS_RUN_EXEC_H_
#define KILN_ENGINE_KINDS_RUN_EXEC_H_

#include <string>
#include <utility>
#include <vector>

#include "engine/keys/task_key.h"
#include "engine/kinds/kind.h"

namespace kiln::kinds {

// `inputs`: the digests of task.inputs(), in order. Sets *log_path to the
// stored log (relative to the store) when there is one.
AttemptOutcome ExecuteRun(
    const KindCall& call, const TaskKey& key,
    const std::vector<std::pair<std::string, std::string>>& inputs,
    std::string* log_path);

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_RUN_EXEC_H_
