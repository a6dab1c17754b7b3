#include "engine/kinds/deploy_promote.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/deploy/promote.h"

namespace kiln::kinds {

using pipeline::Field;
using pipeline::FieldUse;

void DecodePromotion(pipeline::internal::Decoder* d,
                     const pipeline::internal::Fields& f, v1::DeploySpec* out) {
  const yaml::Node* n = f.Get("promote");
  if (n == nullptr) return;
  v1::Promotion* p = out->mutable_promote();
  pipeline::internal::Fields pf(d, *n, f.PathOf("promote"), {"from", "run"});
  pipeline::internal::DecodeString(d, pf, "from", p->mutable_from());
  pipeline::internal::DecodeString(d, pf, "run", p->mutable_run());
}

void ValidatePromotion(const v1::DeploySpec& spec, const std::string& p,
                       pipeline::KindChecks* checks) {
  if (!spec.has_promote()) return;
  const std::string pp = Field(p, "promote");
  const v1::Promotion& promote = spec.promote();
  if (promote.from().empty()) {
    checks->Error(pp,
                  "promote: missing required field 'from' (the environment "
                  "whose deployment is promoted, e.g. stage)");
    return;
  }
  if (promote.from() == spec.environment()) {
    checks->Error(Field(pp, "from"),
                  absl::StrCat("promote.from '", promote.from(),
                               "' is this deploy's own environment: promote "
                               "from another one (e.g. stage to prod)"));
  }
}

void VisitPromotionStrings(v1::DeploySpec* spec, const std::string& p,
                           const pipeline::TaskStringVisitor& visit) {
  if (!spec->has_promote()) return;
  const std::string pp = Field(p, "promote");
  v1::Promotion* promote = spec->mutable_promote();
  visit(Field(pp, "from"), promote->mutable_from(), FieldUse::kSubstituted);
  visit(Field(pp, "run"), promote->mutable_run(), FieldUse::kSubstituted);
}

void PromotionFacts(const v1::DeploySpec& spec, pipeline::KindFacts* facts) {
  if (!spec.has_promote()) return;
  facts->promote_from = spec.promote().from();
  facts->promote_from_field = "deploy.promote.from";
  facts->promote_same_run = spec.promote().run().empty();
}

absl::Status PromoteManifests(
    const v1::DeploySpec& spec, const TaskRunnerContext& ctx,
    const std::map<std::string, v1::TaskStatus>& finished,
    std::vector<deploy::Manifest>* manifests, const deploy::LogFn& say) {
  if (!spec.has_promote()) return absl::OkStatus();
  const v1::Promotion& promote = spec.promote();
  if (promote.from().empty()) {
    return absl::FailedPreconditionError("promote.from is empty");
  }
  if (promote.from() == spec.environment()) {
    return absl::FailedPreconditionError(
        absl::StrCat("promote.from '", promote.from(),
                     "' is this deploy's own environment"));
  }
  deploy::PromotionSource source;
  source.from = promote.from();
  source.same_run = promote.run().empty() || promote.run() == ctx.run_id;
  source.run = promote.run().empty() ? ctx.run_id : promote.run();
  if (source.same_run) {
    for (const auto& [name, status] : finished) {
      auto env = status.results().find(kDeployResultEnvironment);
      auto id = status.results().find(kDeployResultDeployment);
      if (status.state() != v1::TASK_CACHED || env == status.results().end() ||
          env->second != source.from || id == status.results().end()) {
        continue;
      }
      int64_t n = 0;
      if (absl::SimpleAtoi(id->second, &n) && n > source.confirmed) {
        source.confirmed = n;
      }
    }
  }
  return deploy::Promote(ctx.run_store, source, manifests, say);
}

}  // namespace kiln::kinds
