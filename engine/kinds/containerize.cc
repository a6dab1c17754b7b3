// The `containerize` kind: an OCI image from a base and artifact layers.
// Decoded and validated; this kiln cannot build images yet (Unsupported).
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/kinds/kind.h"
#include "engine/kinds/kinds.h"
#include "engine/kinds/outcome.h"

namespace kiln::kinds {
namespace {

using pipeline::Field;
using pipeline::FieldUse;
using pipeline::Index;
using pipeline::internal::Decoder;
using pipeline::internal::Fields;

constexpr char kNotImplemented[] = "containerize tasks are not implemented yet";

class ContainerizeKind : public Kind {
 public:
  ContainerizeKind() : Kind("containerize", v1::Task::kContainerize) {}

  void Decode(Decoder* d, const yaml::Node& node, const std::string& path,
              v1::Task* task) const override {
    using namespace pipeline::internal;  // NOLINT: the field readers
    v1::ContainerizeSpec* out = task->mutable_containerize();
    Fields f(d, node, path,
             {"base", "layers", "entrypoint", "cmd", "env", "labels", "workdir",
              "user", "push", "artifact", "platform"});
    DecodeString(d, f, "base", out->mutable_base());
    if (const yaml::Node* n = f.Get("layers");
        n && d->ExpectSequence(*n, f.PathOf("layers"))) {
      for (size_t i = 0; i < n->items().size(); ++i) {
        Fields l(d, n->items()[i], Index(f.PathOf("layers"), i),
                 {"artifact", "to"});
        v1::ImageLayer* layer = out->add_layers();
        DecodeString(d, l, "artifact", layer->mutable_artifact());
        DecodeString(d, l, "to", layer->mutable_to());
      }
    }
    DecodeList(d, f, "entrypoint", out->mutable_entrypoint());
    DecodeList(d, f, "cmd", out->mutable_cmd());
    DecodeEnv(d, f, out->mutable_env());
    DecodeLabels(d, f, out->mutable_labels());
    DecodeString(d, f, "workdir", out->mutable_workdir());
    DecodeString(d, f, "user", out->mutable_user());
    DecodeString(d, f, "push", out->mutable_push());
    DecodeString(d, f, "artifact", out->mutable_artifact());
    DecodeString(d, f, "platform", out->mutable_platform());
  }

  void Validate(const v1::Task& task, const std::string& path,
                pipeline::KindChecks* checks) const override {
    std::string p = Field(path, "containerize");
    const v1::ContainerizeSpec& c = task.containerize();
    checks->Require(!c.base().empty(), p, "base");
    for (int i = 0; i < c.layers_size(); ++i) {
      std::string item = Index(Field(p, "layers"), i);
      checks->Require(!c.layers(i).artifact().empty(), item, "artifact");
      if (!absl::StartsWith(c.layers(i).to(), "/")) {
        checks->Error(item, absl::StrCat("layer 'to' must be an absolute "
                                         "directory in the image, got '",
                                         c.layers(i).to(), "'"));
      }
    }
    checks->Env(c.env(), Field(p, "env"));
  }

  void ForEachString(v1::Task* task, const std::string& path,
                     const pipeline::TaskStringVisitor& visit) const override {
    const FieldUse lit = FieldUse::kLiteral, sub = FieldUse::kSubstituted;
    std::string p = Field(path, "containerize");
    v1::ContainerizeSpec* c = task->mutable_containerize();
    visit(Field(p, "base"), c->mutable_base(), sub);
    for (int i = 0; i < c->layers_size(); ++i) {
      std::string item = Index(Field(p, "layers"), i);
      visit(Field(item, "artifact"), c->mutable_layers(i)->mutable_artifact(),
            lit);
      visit(Field(item, "to"), c->mutable_layers(i)->mutable_to(), lit);
    }
    pipeline::VisitList(c->mutable_entrypoint(), Field(p, "entrypoint"), sub,
                        visit);
    pipeline::VisitList(c->mutable_cmd(), Field(p, "cmd"), sub, visit);
    pipeline::VisitEnv(c->mutable_env(), Field(p, "env"), sub, visit);
    pipeline::VisitLabels(c->mutable_labels(), Field(p, "labels"), visit);
    visit(Field(p, "workdir"), c->mutable_workdir(), sub);
    visit(Field(p, "user"), c->mutable_user(), sub);
    visit(Field(p, "push"), c->mutable_push(), sub);
    visit(Field(p, "artifact"), c->mutable_artifact(), lit);
    visit(Field(p, "platform"), c->mutable_platform(), lit);
  }

  pipeline::KindFacts Facts(const v1::Task& task) const override {
    pipeline::KindFacts facts;
    const v1::ContainerizeSpec& c = task.containerize();
    for (int i = 0; i < c.layers_size(); ++i) {
      facts.consumed.push_back(
          {c.layers(i).artifact(),
           Field(Index("containerize.layers", i), "artifact")});
    }
    facts.produced = c.artifact().empty() ? task.name() : c.artifact();
    facts.output_keys = {"digest", "image"};
    facts.memoizable = true;
    return facts;
  }

  absl::optional<pipeline::Refusal> Unsupported(
      const v1::Task&, const pipeline::ExecCapabilities&) const override {
    return pipeline::Refusal{"containerize", kNotImplemented};
  }

  AttemptOutcome Execute(const KindCall&) const override {
    return Outcome(v1::TASK_SKIPPED, kNotImplemented);
  }
};

}  // namespace

const Kind& Containerize() {
  static const auto* kind = new ContainerizeKind();
  return *kind;
}

}  // namespace kiln::kinds
