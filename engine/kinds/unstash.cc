// The `unstash` kind: an artifact -> a directory below the source directory.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/kinds/kind.h"
#include "engine/kinds/kinds.h"
#include "engine/kinds/outcome.h"

namespace kiln::kinds {
namespace {

using pipeline::Field;
using pipeline::FieldUse;
using pipeline::internal::Decoder;
using pipeline::internal::Fields;

class UnstashKind : public Kind {
 public:
  UnstashKind() : Kind("unstash", v1::Task::kUnstash) {}

  void Decode(Decoder* d, const yaml::Node& node, const std::string& path,
              v1::Task* task) const override {
    using namespace pipeline::internal;  // NOLINT: the field readers
    v1::UnstashSpec* out = task->mutable_unstash();
    Fields f(d, node, path, {"artifact", "to"});
    DecodeString(d, f, "artifact", out->mutable_artifact());
    DecodeString(d, f, "to", out->mutable_to());
  }

  void Validate(const v1::Task& task, const std::string& path,
                pipeline::KindChecks* checks) const override {
    std::string p = Field(path, "unstash");
    checks->Require(!task.unstash().artifact().empty(), p, "artifact");
    checks->Require(!task.unstash().to().empty(), p, "to");
    const std::string& to = task.unstash().to();
    if (to.empty()) return;
    if (pipeline::NamesRoot(to)) {
      checks->Error(Field(p, "to"),
                    absl::StrCat("unstash to '", to,
                                 "' names the source directory itself; name a "
                                 "directory below it"));
    } else {
      checks->RelativePath(Field(p, "to"), to, "unstash to");
    }
  }

  void ForEachString(v1::Task* task, const std::string& path,
                     const pipeline::TaskStringVisitor& visit) const override {
    std::string p = Field(path, "unstash");
    visit(Field(p, "artifact"), task->mutable_unstash()->mutable_artifact(),
          FieldUse::kLiteral);
    visit(Field(p, "to"), task->mutable_unstash()->mutable_to(),
          FieldUse::kLiteral);
  }

  pipeline::KindFacts Facts(const v1::Task& task) const override {
    pipeline::KindFacts facts;
    facts.consumed.push_back({task.unstash().artifact(), "unstash.artifact"});
    facts.memoizable = false;  // writes the host: always done afresh
    return facts;
  }

  absl::optional<pipeline::Refusal> Unsupported(
      const v1::Task&, const pipeline::ExecCapabilities&) const override {
    return absl::nullopt;
  }

  AttemptOutcome Execute(const KindCall& call) const override;
};

AttemptOutcome UnstashKind::Execute(const KindCall& call) const {
  const v1::UnstashSpec& spec = call.task.unstash();
  const TaskRunnerContext& ctx = call.env->ctx();
  auto digest_text = call.env->ArtifactDigest(spec.artifact(), call.finished);
  if (!digest_text.ok()) return Failed(digest_text.status());
  auto digest = cas::Digest::Parse(*digest_text);
  if (!digest.ok()) return Failed(digest.status());
  // `to` resolves beneath the source directory without following a
  // symlink: a source from a client may hold `out -> /anywhere`.
  absl::StatusOr<std::vector<std::string>> parts =
      cas::SplitRelativePath(spec.to());
  if (!parts.ok()) return Failed(parts.status(), "unstash to: ");
  if (parts->empty()) {
    return Failed(absl::StrCat("unstash to '", spec.to(),
                               "': must name a directory below the source "
                               "directory, not the source directory itself"));
  }
  std::string name = parts->back();
  parts->pop_back();
  std::string parent_rel = absl::StrJoin(*parts, "/");
  absl::StatusOr<cas::UniqueFd> root = cas::OpenTrustedDir(ctx.source_dir);
  if (!root.ok()) return Failed(root.status());
  absl::StatusOr<cas::UniqueFd> parent =
      cas::MakeDirsBeneath(root->get(), parent_rel, 0755);
  if (!parent.ok()) {
    return Failed(parent.status(),
                  absl::StrCat("unstash into ", spec.to(), ": "));
  }
  // Leftovers of a killed engine next to the target: best effort (what
  // stays is swept again next time; UnstashAt never reuses them).
  cas::SweepDeadTemps(parent->get()).IgnoreError();
  // Extracted next to the target, then swapped in: the target never holds
  // a half-extracted tree, and nothing is left behind on failure.
  absl::Status s = ctx.artifacts->UnstashAt(
      *digest, parent->get(), name, call.env->SourcePath(parent_rel), true);
  if (!s.ok()) {
    return Failed(s, absl::StrCat("unstash ", spec.artifact(), " into ",
                                  spec.to(), ": "));
  }
  AttemptOutcome o = Outcome(v1::TASK_SUCCEEDED, "");
  o.results["digest"] = *digest_text;
  return o;
}

}  // namespace

const Kind& Unstash() {
  static const auto* kind = new UnstashKind();
  return *kind;
}

}  // namespace kiln::kinds
