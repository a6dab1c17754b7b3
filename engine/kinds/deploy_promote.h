// deploy.promote (docs/deploy.md, "Promotion"): its YAML, its checks and
// its run-time step, kept apart from the deploy kind (engine/kinds/deploy.cc
// calls these). The rewrite itself: engine/deploy/promote.h.
#ifndef KILN_ENGINE_KINDS_DEPLOY_PROMOTE_H_
#define KILN_ENGINE_KINDS_DEPLOY_PROMOTE_H_

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

namespace kiln::kinds {

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
absl::Status PromoteManifests(const v1::DeploySpec& spec,
                              const TaskRunnerContext& ctx,
                              std::vector<deploy::Manifest>* manifests,
                              const deploy::LogFn& say);

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_DEPLOY_PROMOTE_H_
