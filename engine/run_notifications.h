// The end of a run, told to its pipeline's `notify:` webhooks
// (docs/notifications.md). Internal to //engine.
#ifndef KILN_ENGINE_RUN_NOTIFICATIONS_H_
#define KILN_ENGINE_RUN_NOTIFICATIONS_H_

#include <string>
#include <vector>

#include "engine/notify/notifier.h"
#include "engine/store/run_store.h"
#include "kiln/v1/pipeline.pb.h"
#include "kiln/v1/run.pb.h"

namespace kiln {

// The state of the newest finished run of `pipeline_name` on `branch`
// created before run `run_id` that succeeded, failed or timed out
// (cancelled runs are passed over); RUN_STATE_UNSPECIFIED when there is
// none among the last 1000 runs of the pipeline, or the store cannot say.
v1::RunState PreviousVerdict(store::RunStore* runs,
                             const std::string& pipeline_name,
                             const std::string& branch,
                             const std::string& run_id);

// Posts the notifications of `pipeline` that match `run` (bounded by
// their timeouts, in parallel) and returns one NotificationSent event per
// post. `run.previous` is filled in here.
std::vector<v1::RunEvent> NotifyRunEnd(store::RunStore* runs,
                                       const v1::Pipeline& pipeline,
                                       notify::FinishedRun run);

}  // namespace kiln

#endif  // KILN_ENGINE_RUN_NOTIFICATIONS_H_
