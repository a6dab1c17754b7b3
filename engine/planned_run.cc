#include "engine/planned_run.h"

#include <utility>

namespace kiln {

absl::StatusOr<PlannedRun> PlanRun(v1::Pipeline pipeline,
                                   const v1::Trigger& trigger) {
  PlannedRun run;
  run.pipeline = std::make_shared<const v1::Pipeline>(std::move(pipeline));
  absl::StatusOr<pipeline::Plan> plan =
      pipeline::ComputePlan(*run.pipeline, trigger);
  if (!plan.ok()) return plan.status();
  run.plan = *std::move(plan);
  return run;
}

}  // namespace kiln
