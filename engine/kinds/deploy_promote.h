// deploy.promote (docs/deploy.md, "Promotion"): its YAML, its checks and
// its run-time step, kept apart from the deploy kind (engine/kinds/deploy.cc
// calls these). The rewrite itself: engine/deploy/promote.h.
#ifndef KILN_ENGINE_KINDS_DEPLOY_PROMOTE_H_
#define KILN_ENGINE_KINDS_DEPLOY_PROMOTE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/deploy/deployer.h"
#include "engine/deploy/manifests.h"
#include "engine/kinds/kind_env.h"
#include "engine/pipeline/decoder.h"
#include "engine/pipeline/kind_spec.h"
#include "engine/pipeline/task_strings.h"
#include "kiln/v1/pipeline.pb.h"
#include "kiln/v1/run.pb.h"

namespace kiln::kinds {

// The results every successful deploy publishes
// (${tasks.T.outputs.environment}, ${tasks.T.outputs.deployment}): its
// environment and the id of the deployment now live there (the one it
// recorded, or the one the deploy memo found unchanged).
inline constexpr char kDeployResultEnvironment[] = "environment";
inline constexpr char kDeployResultDeployment[] = "deployment";

// `promote: {from: ENV, run: RUN}` under deploy (f: the deploy's fields).
void DecodePromotion(pipeline::internal::Decoder* d,
                     const pipeline::internal::Fields& f, v1::DeploySpec* out);
// The task's own checks (p: the path of `deploy`); the needs are checked
// by the pipeline validator from PromotionFacts.
void ValidatePromotion(const v1::DeploySpec& spec, const std::string& p,
                       pipeline::KindChecks* checks);
// promote.from and promote.run (both substituted).
void VisitPromotionStrings(v1::DeploySpec* spec, const std::string& p,
                           const pipeline::TaskStringVisitor& visit);
void PromotionFacts(const v1::DeploySpec& spec, pipeline::KindFacts* facts);

// With spec.promote: pins every image of `manifests` to what the promoted
// deployment recorded, saying so on `say`; before any write to the
// cluster. Without: nothing. FailedPrecondition saying why it cannot.
// `finished`: the statuses of the tasks it needs; a deploy of promote.from
// among them that re-applied nothing names, in its results, the live
// deployment that is then promoted (kDeployResultEnvironment/Deployment).
absl::Status PromoteManifests(
    const v1::DeploySpec& spec, const TaskRunnerContext& ctx,
    const std::map<std::string, v1::TaskStatus>& finished,
    std::vector<deploy::Manifest>* manifests, const deploy::LogFn& say);

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_DEPLOY_PROMOTE_H_
