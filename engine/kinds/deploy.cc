// The `deploy` kind: a render task's manifests (or a kustomization in the
// source, `overlay:`, rendered here) server-side-applied to an environment's
// namespace (engine/deploy, docs/deploy.md), optionally waiting for the
// rollouts. Never served from the action cache: a deploy
// changes a cluster whose state kiln does not own; it is skipped only when
// the live objects still match the latest deployment (engine/deploy/drift.h).
#include <unistd.h>

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/deploy/deployer.h"
#include "engine/deploy/drift.h"
#include "engine/deploy/manifest_files.h"
#include "engine/deploy/manifests.h"
#include "engine/deploy/prune.h"
#include "engine/deploy/record.h"
#include "engine/kinds/deploy_promote.h"
#include "engine/kinds/deploy_target.h"
#include "engine/kinds/kind.h"
#include "engine/kinds/kinds.h"
#include "engine/kinds/outcome.h"
#include "engine/kinds/render_tree.h"
#include "engine/kinds/run_log.h"
#include "engine/kinds/workspace.h"
#include "kube/kubeconfig.h"
#include "kube/names.h"

namespace kiln::kinds {
namespace {

using pipeline::Field;
using pipeline::FieldUse;
using pipeline::internal::Decoder;
using pipeline::internal::Fields;

constexpr absl::Duration kDefaultWaitTimeout = absl::Minutes(5);
constexpr absl::Duration kMaxWaitTimeout = absl::Hours(6);

absl::Duration WaitTimeout(const v1::DeploySpec& d) {
  if (!d.has_wait_timeout()) return kDefaultWaitTimeout;
  return absl::Seconds(d.wait_timeout().seconds()) +
         absl::Nanoseconds(d.wait_timeout().nanos());
}

class DeployKind : public Kind {
 public:
  DeployKind() : Kind("deploy", v1::Task::kDeploy) {}

  void Decode(Decoder* d, const yaml::Node& node, const std::string& path,
              v1::Task* task) const override {
    using namespace pipeline::internal;  // NOLINT: the field readers
    static const auto* kinds =
        new EnumNames{{"preview", v1::PREVIEW}, {"permanent", v1::PERMANENT}};
    v1::DeploySpec* out = task->mutable_deploy();
    Fields f(
        d, node, path,
        {"environment", "kind", "manifests", "overlay", "namespace", "context",
         "wait", "force", "wait_timeout", "promote", "always_apply"});
    DecodeString(d, f, "environment", out->mutable_environment());
    if (const yaml::Node* n = f.Get("kind")) {
      int kind = 0;
      if (d->Enum(*n, f.PathOf("kind"), *kinds, "environment kind", &kind)) {
        out->set_kind(static_cast<v1::EnvironmentKind>(kind));
      }
    }
    DecodeString(d, f, "manifests", out->mutable_manifests());
    DecodeString(d, f, "overlay", out->mutable_overlay());
    DecodeString(d, f, "namespace", out->mutable_namespace_());
    DecodeString(d, f, "context", out->mutable_context());
    DecodeBool(d, f, "wait", [out](bool v) { out->set_wait(v); });
    DecodeBool(d, f, "force", [out](bool v) { out->set_force(v); });
    DecodeBool(d, f, "always_apply",
               [out](bool v) { out->set_always_apply(v); });
    if (const yaml::Node* n = f.Get("wait_timeout")) {
      d->Duration(*n, f.PathOf("wait_timeout"), out->mutable_wait_timeout());
    }
    DecodePromotion(d, f, out);
  }

  void Validate(const v1::Task& task, const std::string& path,
                pipeline::KindChecks* checks) const override {
    std::string p = Field(path, "deploy");
    const v1::DeploySpec& d = task.deploy();
    checks->Require(!d.environment().empty(), p, "environment");
    if (d.manifests().empty() == d.overlay().empty()) {
      checks->Error(p,
                    "deploy needs exactly one of "
                    "'manifests' (a render task or artifact) "
                    "and 'overlay' (a directory in source)");
    }
    if (!d.overlay().empty()) {
      checks->RelativePath(Field(p, "overlay"), d.overlay(), "overlay");
    }
    if (d.has_wait_timeout()) {
      absl::Duration t = WaitTimeout(d);
      if (t <= absl::ZeroDuration() || t > kMaxWaitTimeout) {
        checks->Error(Field(p, "wait_timeout"),
                      "wait_timeout must be more than 0 and at most 6h");
      } else if (!d.wait()) {
        checks->Error(Field(p, "wait_timeout"),
                      "wait_timeout needs 'wait: true'");
      }
    }
    ValidatePromotion(d, p, checks);
  }

  void ForEachString(v1::Task* task, const std::string& path,
                     const pipeline::TaskStringVisitor& visit) const override {
    const FieldUse lit = FieldUse::kLiteral, sub = FieldUse::kSubstituted;
    std::string p = Field(path, "deploy");
    v1::DeploySpec* d = task->mutable_deploy();
    visit(Field(p, "environment"), d->mutable_environment(), sub);
    visit(Field(p, "manifests"), d->mutable_manifests(), lit);
    visit(Field(p, "overlay"), d->mutable_overlay(), lit);
    visit(Field(p, "namespace"), d->mutable_namespace_(), sub);
    visit(Field(p, "context"), d->mutable_context(), sub);
    VisitPromotionStrings(d, p, visit);
  }

  bool MakesRequests(const v1::Task&) const override { return true; }

  pipeline::KindFacts Facts(const v1::Task& task) const override {
    pipeline::KindFacts facts;
    if (!task.deploy().manifests().empty()) {
      facts.consumed.push_back({task.deploy().manifests(), "deploy.manifests"});
    } else if (!task.deploy().overlay().empty()) {
      facts.consumed.push_back({"source", "deploy.overlay"});
    }
    facts.memoizable = false;
    const v1::DeploySpec& d = task.deploy();
    facts.environment = d.environment();
    facts.environment_field = "deploy.environment";
    if (d.kind() != v1::ENVIRONMENT_KIND_UNSPECIFIED) {
      facts.environment_overrides.push_back("deploy.kind");
    }
    if (!d.namespace_().empty()) {
      facts.environment_overrides.push_back("deploy.namespace");
    }
    if (!d.context().empty()) {
      facts.environment_overrides.push_back("deploy.context");
    }
    PromotionFacts(d, &facts);
    return facts;
  }

  absl::optional<pipeline::Refusal> Unsupported(
      const v1::Task& task,
      const pipeline::ExecCapabilities& caps) const override {
    // A context still holding ${...} is checked once resolved, at run time.
    const std::string& context = task.deploy().context();
    if (caps.cluster && !absl::StrContains(context, "${")) {
      absl::Status s = caps.cluster(context);
      if (!s.ok()) {
        return pipeline::Refusal{
            "deploy", absl::StrCat("deploy has no cluster: ", s.message(),
                                   " (pass --kubeconfig)")};
      }
    }
    return absl::nullopt;
  }

  AttemptOutcome Execute(const KindCall& call) const override {
    RunLog log(call);
    auto say = [&log](const std::string& line) {
      log.OnLine(v1::LogLine::STDOUT, line, absl::Now());
    };
    AttemptOutcome o = Deploy(call, say);
    if (o.state != v1::TASK_SUCCEEDED && o.state != v1::TASK_CACHED) {
      say("deploy failed: " + o.reason);
    }
    log.Finish();
    return o;
  }

 private:
  static absl::StatusOr<std::string> ManifestsDigest(const KindCall& call) {
    const v1::DeploySpec& spec = call.task.deploy();
    if (spec.overlay().empty()) {
      return call.env->ArtifactDigest(spec.manifests(), call.finished);
    }
    absl::StatusOr<std::string> source =
        call.env->ArtifactDigest("source", call.finished);
    if (!source.ok()) return source.status();
    return RenderInArtifact(call, *source, spec.overlay(), {});
  }

  AttemptOutcome Deploy(const KindCall& call, const deploy::LogFn& say) const {
    const v1::DeploySpec& spec = call.task.deploy();
    const TaskRunnerContext& ctx = call.env->ctx();
    absl::StatusOr<DeployPlacement> placed = PlaceDeploy(spec, ctx);
    if (!placed.ok()) return Failed(placed.status(), "deploy: ");
    deploy::DeployTarget& target = placed->target;
    target.force = spec.force();
    target.wait = spec.wait();
    target.timeout = WaitTimeout(spec);

    // The manifests: a render task's artifact, or the overlay rendered here
    // into an artifact of its own (recorded with the deployment, so that a
    // rollback re-applies exactly it). Read beneath a fresh scratch directory.
    absl::StatusOr<std::string> digest_text = ManifestsDigest(call);
    if (!digest_text.ok()) return Failed(digest_text.status(), "deploy: ");
    auto digest = cas::Digest::Parse(*digest_text);
    if (!digest.ok()) return Failed(digest.status(), "deploy: ");
    std::vector<deploy::Manifest> manifests;
    {
      ScopedWorkDir work(call.env, call.task, call.attempt, /*keep=*/false);
      absl::Status s = work.Create();
      if (!s.ok()) return Failed(s, "deploy: ", true);
      s = ctx.artifacts->UnstashAt(*digest, work.fd(), "in", work.path(),
                                   false);
      if (!s.ok()) return Failed(s, "deploy: unstash: ");
      auto read = deploy::ReadManifests(work.fd(), "in");
      if (!read.ok()) return Failed(read.status(), "deploy: manifests: ");
      manifests = *std::move(read);
    }
    // promote: pinned to what the promoted deployment applied (a copy).
    absl::Status promoted =
        PromoteManifests(spec, ctx, call.finished, &manifests, say);
    if (!promoted.ok()) return Failed(promoted, "deploy: ");
    say(absl::StrCat(
        "deploying ", manifests.size(), " objects of ",
        spec.manifests().empty() ? absl::StrCat("overlay ", spec.overlay())
                                 : spec.manifests(),
        " (", *digest_text, ") to environment ", target.environment,
        ", namespace ", target.namespace_name));

    // The cluster: the environment's (or task's) context, else the run's.
    kube::LoadOptions load;
    load.kubeconfig_paths = ctx.kubeconfig_paths;
    load.context = placed->context.empty() ? ctx.kube_context : placed->context;
    absl::StatusOr<kube::ClusterConfig> config = kube::LoadClusterConfig(load);
    if (!config.ok()) return Failed(config.status(), "deploy: cluster: ");
    say(absl::StrCat("cluster: context ",
                     config->context.empty() ? "in-cluster" : config->context));
    absl::StatusOr<std::unique_ptr<kube::Client>> client =
        kube::Client::Create(*config);
    if (!client.ok()) return Failed(client.status(), "deploy: cluster: ");

    BindNamespace(ctx, spec.environment(), client->get(), say, &*placed);
    // The deploy memo: skipped while the cluster holds the latest deployment.
    if (spec.always_apply() || (call.task.has_cache() && !call.task.cache())) {
      say("applying: always_apply or cache: false (no drift check)");
    } else if (auto same = deploy::FindUnchanged(
                   client->get(), ctx.run_store, target, config->context,
                   *digest_text, manifests, say)) {
      AttemptOutcome o = Outcome(v1::TASK_CACHED, same->message);
      o.results[kDeployResultEnvironment] = target.environment;
      o.results[kDeployResultDeployment] = absl::StrCat(same->deployment_id);
      return o;
    }
    deploy::Deployer deployer(client->get(), say, [&call] {
      return call.cancel != nullptr && call.cancel->cancelled();
    });
    deploy::DeploymentRecorder record(ctx.run_store, target, config->context,
                                      ctx.run_id, call.task.name(),
                                      *digest_text, manifests);
    absl::StatusOr<std::vector<deploy::AppliedObject>> applied =
        deployer.Apply(std::move(manifests), target);
    absl::Status done = applied.status();
    if (done.ok()) {
      // What this environment's earlier deploys applied and this one no
      // longer renders (docs/deploy.md, "Pruning").
      auto pruned = deploy::Prune(client->get(), target, *applied, say);
      if (!pruned.ok()) {
        done = absl::Status(pruned.status().code(),
                            absl::StrCat("prune: ", pruned.status().message()));
      }
    }
    if (done.ok() && target.wait) done = deployer.Wait(*applied, target);
    auto recorded = record.Finish(
        deployer.applied(), done, say,
        [&call](std::string s) { return call.env->Mask(std::move(s)); });
    if (!applied.ok()) {
      return Failed(applied.status(),
                    "deploy: ", absl::IsUnavailable(applied.status()));
    }
    if (!done.ok()) {
      if (absl::IsCancelled(done)) {
        return Outcome(v1::TASK_CANCELLED, "", false);
      }
      return Failed(done, "deploy: ");
    }
    if (!recorded.ok()) {
      return Failed(recorded.status(), "deploy: applied, but not recorded: ");
    }
    say(absl::StrCat("deployed ", applied->size(), " objects to ",
                     target.namespace_name));
    AttemptOutcome o = Outcome(v1::TASK_SUCCEEDED, "");
    o.results[kDeployResultEnvironment] = target.environment;
    if (*recorded > 0) {
      o.results[kDeployResultDeployment] = absl::StrCat(*recorded);
    }
    return o;
  }
};

}  // namespace

std::function<absl::Status(const std::string& context)> ClusterCheck(
    std::vector<std::string> kubeconfig_paths, std::string kube_context) {
  return [paths = std::move(kubeconfig_paths),
          run_context = std::move(kube_context)](const std::string& context) {
    kube::LoadOptions load;
    load.kubeconfig_paths = paths;
    load.context = context.empty() ? run_context : context;
    return kube::LoadClusterConfig(load).status();
  };
}

const Kind& Deploy() {
  static const auto* kind = new DeployKind();
  return *kind;
}

}  // namespace kiln::kinds
