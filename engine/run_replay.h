// Whole-run replay: a no-op without per-task work.
//
// A run's task keys are a function of its roots: the pipeline and trigger
// (which decide the plan, the params and every substituted field), the
// `source` tree, and each task's platform (executor, runner version, the
// host binary a host-root task invokes) — plus, for a task that needs
// others, their outputs, which come from the action cache. So a run whose
// roots equal a finished run's, while no recorded action-cache entry has
// been removed, replaced or altered since that run's entries were read (the
// cache's epoch), would compute the same keys, get the same hits and produce
// the same outputs: it is recorded as a replay of that run (RunStore), with no
// key computed, no lookup and no per-task row, once every output archive
// the source produced is checked to be in the store (a stat each, as a hit
// checks it).
//
// Only runs of tasks whose key the roots decide are fingerprinted: `run`
// tasks on the host root (no image: an image tag is resolved when the task
// runs), cacheable, without approval gates or conditions on results, and
// whose executor, command[0] and PATH are literal (they decide the
// platform); no finally tasks; not a resumed run. Anything else runs
// through the scheduler as before. Internal to //engine.
#ifndef KILN_ENGINE_RUN_REPLAY_H_
#define KILN_ENGINE_RUN_REPLAY_H_

#include <optional>
#include <string>
#include <vector>

#include "base/side_thread.h"
#include "engine/kinds/kind_env.h"
#include "engine/planned_run.h"
#include "engine/store/run_store.h"
#include "kiln/v1/run.pb.h"

namespace kiln {

// The run's fingerprint (an HMAC under the store's key: it covers secret
// params), or nullopt when the run cannot be replayed (see above).
std::optional<std::string> ReplayFingerprint(const PlannedRun& planned,
                                             const v1::Trigger& trigger,
                                             const TaskRunnerContext& ctx);

// The recorded source for `fingerprint`, if it is still exact: the action
// cache's epoch is the one recorded with it, it has one task per planned
// task, and every output archive is in the store. Checks are shared with
// `side`.
// When some index shard had to be read in full, *refreshed_stamps gets the
// shards' stamps taken before that check (for RunStore::RecordReplay to
// keep), else it is left empty.
std::shared_ptr<const store::ReplaySource> UsableReplaySource(
    const std::string& fingerprint, const PlannedRun& planned,
    const TaskRunnerContext& ctx, SideThread* side,
    std::vector<store::ReplayShardStamp>* refreshed_stamps);

// Records `run` (just finished; its tasks in pipeline order) as the source
// for `fingerprint` when every task SUCCEEDED or was CACHED and the action
// cache still holds each task's key with the run's outputs and a verified
// archive for each. `finish_order`: the tasks in the order they finished.
// Returns whether it was recorded (false: not exact; errors: the store's).
absl::StatusOr<bool> RecordReplaySource(
    const std::string& fingerprint, const v1::Run& run,
    const std::vector<std::string>& finish_order, const TaskRunnerContext& ctx);

}  // namespace kiln

#endif  // KILN_ENGINE_RUN_REPLAY_H_
