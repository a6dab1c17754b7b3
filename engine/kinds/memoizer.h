// The one memoizer every memoizable kind runs its work through:
// key -> lookup -> execute -> record.
#ifndef KILN_ENGINE_KINDS_MEMOIZER_H_
#define KILN_ENGINE_KINDS_MEMOIZER_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/keys/task_key.h"
#include "engine/kinds/kind.h"

namespace kiln::kinds {

// Does the work of one attempt under `key`; sets *log_path to the stored
// log (relative to the store) if there is one.
using MemoizedWork =
    std::function<AttemptOutcome(const TaskKey& key, std::string* log_path)>;

// Computes the task's key from `call.key_view`, `inputs` (artifact ->
// digest, in order) and the platform. If the kind is memoizable and the
// task does not set `cache: false`, a recorded result whose artifacts are
// all still in the store is returned as CACHED; otherwise `work` runs and
// a SUCCEEDED outcome is recorded. A failed record fails the task.
AttemptOutcome Memoize(const Kind& kind, const KindCall& call,
                       std::vector<std::pair<std::string, std::string>> inputs,
                       const MemoizedWork& work);

// The no-op path: the key Memoize would look up for `call`, computed
// without running anything — nullopt unless the kind offers its inputs
// (Kind::CacheInputs) and the task is cacheable.
absl::optional<TaskKey> ProbeKey(const Kind& kind, const KindCall& call);
// A looked-up entry whose artifacts are all still in the store, as the
// CACHED outcome Memoize returns for it; nullopt if it is not usable (a
// damaged index entry is dropped, as in Memoize).
absl::optional<AttemptOutcome> UsableHit(const TaskRunnerContext& ctx,
                                         const std::string& key,
                                         const store::ActionResult& hit);

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_MEMOIZER_H_
