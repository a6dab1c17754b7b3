// A run's pipeline together with its plan (pipeline/plan.h), computed once:
// when the run is submitted (after validation), or when a run recorded by
// an earlier process is resumed — from the recorded pipeline and trigger
// (with its secrets), of which the plan is a pure function. The live run
// and its scheduler consume this one plan; nothing re-plans or re-evaluates
// a `when`. Internal to //engine.
#ifndef KILN_ENGINE_PLANNED_RUN_H_
#define KILN_ENGINE_PLANNED_RUN_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/pipeline/plan.h"
#include "kiln/v1/pipeline.pb.h"
#include "kiln/v1/run.pb.h"

namespace kiln {

struct PlannedRun {
  // Shared and never moved: the plan points into it.
  std::shared_ptr<const v1::Pipeline> pipeline;
  pipeline::Plan plan;
  // The hex SHA-256 of the pipeline's deterministic serialization when the
  // run store computed it (a submitted run); "" otherwise.
  std::string pipeline_digest;
};

// Plans `pipeline` for `trigger`. REQUIRES: the pipeline is valid
// (pipeline::ValidatePipeline). InvalidArgument for params that do not
// resolve.
absl::StatusOr<PlannedRun> PlanRun(v1::Pipeline pipeline,
                                   const v1::Trigger& trigger);

}  // namespace kiln

#endif  // KILN_ENGINE_PLANNED_RUN_H_
