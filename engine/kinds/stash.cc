// The `stash` kind: a directory below the source directory -> an artifact.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/cas/beneath.h"
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

class StashKind : public Kind {
 public:
  StashKind() : Kind("stash", v1::Task::kStash) {}

  void Decode(Decoder* d, const yaml::Node& node, const std::string& path,
              v1::Task* task) const override {
    using namespace pipeline::internal;  // NOLINT: the field readers
    v1::StashSpec* out = task->mutable_stash();
    Fields f(d, node, path, {"artifact", "from", "exclude"});
    DecodeString(d, f, "artifact", out->mutable_artifact());
    DecodeString(d, f, "from", out->mutable_from());
    DecodeList(d, f, "exclude", out->mutable_exclude());
  }

  void Validate(const v1::Task& task, const std::string& path,
                pipeline::KindChecks* checks) const override {
    std::string p = Field(path, "stash");
    const v1::StashSpec& stash = task.stash();
    checks->Require(!stash.artifact().empty(), p, "artifact");
    checks->Require(!stash.from().empty(), p, "from");
    if (!stash.from().empty()) {
      checks->RelativePath(Field(p, "from"), stash.from(), "stash from");
    }
    for (int i = 0; i < stash.exclude_size(); ++i) {
      const std::string& pattern = stash.exclude(i);
      std::string item = Index(Field(p, "exclude"), i);
      if (pipeline::NamesRoot(pattern)) {
        checks->Error(item, "an exclude pattern is empty");
      } else {
        checks->RelativePath(
            item, absl::StartsWith(pattern, "/") ? pattern.substr(1) : pattern,
            "exclude pattern");
      }
    }
  }

  void ForEachString(v1::Task* task, const std::string& path,
                     const pipeline::TaskStringVisitor& visit) const override {
    std::string p = Field(path, "stash");
    v1::StashSpec* stash = task->mutable_stash();
    visit(Field(p, "artifact"), stash->mutable_artifact(), FieldUse::kLiteral);
    visit(Field(p, "from"), stash->mutable_from(), FieldUse::kLiteral);
    pipeline::VisitList(stash->mutable_exclude(), Field(p, "exclude"),
                        FieldUse::kLiteral, visit);
  }

  pipeline::KindFacts Facts(const v1::Task& task) const override {
    pipeline::KindFacts facts;
    facts.produced = task.stash().artifact();
    facts.output_keys = {};
    facts.memoizable = false;  // reads the host: always stashed afresh
    return facts;
  }

  absl::optional<pipeline::Refusal> Unsupported(
      const v1::Task&, const pipeline::ExecCapabilities&) const override {
    return absl::nullopt;
  }

  AttemptOutcome Execute(const KindCall& call) const override {
    const v1::StashSpec& spec = call.task.stash();
    const TaskRunnerContext& ctx = call.env->ctx();
    // `from` resolves beneath the source directory without following a
    // symlink (the source may come from a client); symlinks inside the
    // stashed tree are stored as symlinks, never followed.
    absl::StatusOr<cas::UniqueFd> root = cas::OpenTrustedDir(ctx.source_dir);
    if (!root.ok()) return Failed(root.status());
    absl::StatusOr<std::vector<std::string>> parts =
        cas::SplitRelativePath(spec.from());
    if (!parts.ok()) return Failed(parts.status(), "stash from: ");
    absl::StatusOr<cas::UniqueFd> from =
        cas::OpenDirBeneath(root->get(), spec.from());
    if (!from.ok()) {
      return Failed(from.status(), absl::StrCat("stash ", spec.from(), ": "));
    }
    std::string shown = call.env->SourcePath(absl::StrJoin(*parts, "/"));
    std::vector<std::string> exclude(spec.exclude().begin(),
                                     spec.exclude().end());
    auto stashed =
        ctx.artifacts->StashDirAt(from->get(), shown, shown, exclude);
    if (!stashed.ok()) {
      return Failed(stashed.status(),
                    absl::StrCat("stash ", spec.from(), ": "));
    }
    AttemptOutcome o = Outcome(v1::TASK_SUCCEEDED, "");
    o.outputs[spec.artifact()] = stashed->tree.ToString();
    o.results["digest"] = stashed->tree.ToString();
    return o;
  }
};

}  // namespace

const Kind& Stash() {
  static const auto* kind = new StashKind();
  return *kind;
}

}  // namespace kiln::kinds
