// The `deploy` kind: manifests applied to an environment. Decoded and
// validated; this kiln has no Kubernetes executor yet (Unsupported). Never
// memoizable: a deploy must happen when asked, not be replayed.
#include "absl/strings/str_cat.h"
#include "engine/kinds/kind.h"
#include "engine/kinds/kinds.h"
#include "engine/kinds/outcome.h"

namespace kiln::kinds {
namespace {

using pipeline::Field;
using pipeline::FieldUse;
using pipeline::internal::Decoder;
using pipeline::internal::Fields;

constexpr char kNotImplemented[] = "deploy tasks are not implemented yet";

class DeployKind : public Kind {
 public:
  DeployKind() : Kind("deploy", v1::Task::kDeploy) {}

  void Decode(Decoder* d, const yaml::Node& node, const std::string& path,
              v1::Task* task) const override {
    using namespace pipeline::internal;  // NOLINT: the field readers
    static const auto* kinds =
        new EnumNames{{"preview", v1::PREVIEW}, {"permanent", v1::PERMANENT}};
    v1::DeploySpec* out = task->mutable_deploy();
    Fields f(d, node, path,
             {"environment", "kind", "manifests", "overlay", "namespace",
              "context", "wait"});
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
  }

  pipeline::KindFacts Facts(const v1::Task& task) const override {
    pipeline::KindFacts facts;
    if (!task.deploy().manifests().empty()) {
      facts.consumed.push_back({task.deploy().manifests(), "deploy.manifests"});
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
    return facts;
  }

  absl::optional<pipeline::Refusal> Unsupported(
      const v1::Task&, const pipeline::ExecCapabilities&) const override {
    return pipeline::Refusal{"deploy", kNotImplemented};
  }

  AttemptOutcome Execute(const KindCall&) const override {
    return Outcome(v1::TASK_SKIPPED, kNotImplemented);
  }
};

}  // namespace

const Kind& Deploy() {
  static const auto* kind = new DeployKind();
  return *kind;
}

}  // namespace kiln::kinds
