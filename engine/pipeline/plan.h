// The static part of a run: which tasks would run for a trigger, which are
// skipped and why, in a topological order.
//
// A task is skipped when its `when` does not hold (a `when` that reads task
// results is left to the task runner: DependsOnResults, condition.h), or when
// it has needs and every one of them is skipped (unless run_if_needs_skipped).
// Tasks that merely need a skipped task among others still run. Finally tasks
// follow the same rules among themselves (they never depend on regular tasks).
// Each run is planned once, when it is submitted (or, after a crash, once
// when it is resumed, from the recorded pipeline and trigger: the plan is a
// pure function of those); the scheduler consumes the plan. What happens at
// run time (failures, cancellation, a task skipped when it runs) is not
// planned here, but the scheduler applies the same needs rule
// (SkippedByNeeds) to it.
#ifndef KILN_ENGINE_PIPELINE_PLAN_H_
#define KILN_ENGINE_PIPELINE_PLAN_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline {

struct PlannedTask {
  const v1::Task* task = nullptr;  // points into the pipeline given
  bool is_finally = false;
  int index = 0;  // in pipeline.tasks() or pipeline.finally()
  bool skipped = false;
  // Why skipped, e.g. "branch 'main' does not match !main" or
  // "every task it needs is skipped (deploy-preview)"; for a task that runs
  // with a `when`, why it holds.
  std::string reason;
};

struct Plan {
  // Regular tasks then finally tasks, each part topologically ordered
  // (a task after all it needs; ties in declaration order).
  std::vector<PlannedTask> order;
  // Resolved param values (defaults applied).
  std::map<std::string, std::string> params;

  // The entry for `name`, or nullptr.
  const PlannedTask* Find(const std::string& name) const;
};

// REQUIRES: ValidatePipeline(pipeline) is empty (a cycle is reported as
// FailedPrecondition anyway). InvalidArgument when the trigger's params do
// not resolve (params.h). The Plan points into `pipeline`, which must
// outlive it.
absl::StatusOr<Plan> ComputePlan(const v1::Pipeline& pipeline,
                                 const v1::Trigger& trigger);

// The one home of the needs rule: a task that has needs, every one of them
// skipped, is skipped too, unless it sets run_if_needs_skipped.
// `need_skipped(name)` says whether a need is skipped, or nullopt for a name
// that does not count (not in the task's part of the pipeline). Returns the
// reason ("every task it needs is skipped (a, b)") when the task is skipped,
// else nullopt.
std::optional<std::string> SkippedByNeeds(
    const v1::Task& task,
    const std::function<std::optional<bool>(const std::string&)>& need_skipped);

// ComputePlan calls made in this process (a test hook: a run is planned
// once).
int64_t PlansComputedForTesting();

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_PLAN_H_
