#include "engine/kinds/deploy_target.h"

#include "absl/strings/str_cat.h"
#include "engine/environments/lifecycle.h"
#include "engine/environments/preview_template.h"
#include "engine/environments/target.h"
#include "kube/names.h"

namespace kiln::kinds {
namespace {

// The preview's factory template (environments/preview_template.h); the
// factory file is relative to the pipeline's directory, its secrets are
// the run's secret params.
absl::Status ApplyFactoryTemplate(const TaskRunnerContext& ctx,
                                  const environments::Target& t,
                                  kube::Client* client,
                                  const deploy::LogFn& say) {
  source::Secrets secrets;
  for (const auto& [name, value] : ctx.secrets) secrets.Set(name, value);
  return environments::ApplyPreviewTemplate(*client, t.factory, ctx.source_dir,
                                            t.namespace_name, secrets, say);
}

}  // namespace

absl::StatusOr<DeployPlacement> PlaceDeploy(const v1::DeploySpec& spec,
                                            const TaskRunnerContext& ctx) {
  DeployPlacement p;
  p.target.environment = spec.environment();
  if (ctx.environments.environments().empty()) {
    // No declarations: the task says where (as before environments).
    p.target.namespace_name =
        spec.namespace_().empty() ? spec.environment() : spec.namespace_();
    if (!kube::IsDnsLabel(p.target.namespace_name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("namespace \"", p.target.namespace_name,
                       "\" is not a namespace name (a DNS-1123 label); set "
                       "deploy.namespace"));
    }
    p.target.create_namespace = spec.kind() != v1::PERMANENT;
    p.context = spec.context();
    return p;
  }
  absl::StatusOr<environments::Target> env = environments::ResolveEnvironment(
      ctx.environments, spec.environment(), ctx.substitution);
  if (!env.ok()) return env.status();
  p.declared = true;
  p.target.namespace_name = env->namespace_name;
  p.target.create_namespace = !env->permanent();
  p.context = env->context;
  return p;
}

void BindNamespace(const TaskRunnerContext& ctx, const std::string& environment,
                   kube::Client* client, const deploy::LogFn& say,
                   DeployPlacement* placement) {
  if (!placement->declared) return;
  placement->target.ensure_namespace = [&ctx, environment, client, say] {
    absl::StatusOr<environments::Target> t = environments::PrepareDeploy(
        *client, ctx.environments, environment, ctx.substitution);
    if (!t.ok()) return t.status();
    if (!t->permanent() && !t->factory.empty()) {
      absl::Status s = ApplyFactoryTemplate(ctx, *t, client, say);
      if (!s.ok()) return s;
    }
    say(absl::StrCat(
        t->permanent() ? "permanent" : "preview", " environment ",
        t->environment, ": namespace ", t->namespace_name,
        t->permanent() ? " (exists)" : " ensured, labelled",
        t->permanent()
            ? ""
            : absl::StrCat(", expires in ", absl::FormatDuration(t->ttl))));
    return absl::OkStatus();
  };
}

}  // namespace kiln::kinds
