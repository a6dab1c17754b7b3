// The `run` kind: a command in a sandbox, memoized. Its execution on this
// host is run_exec.cc.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/kinds/kind.h"
#include "engine/kinds/kinds.h"
#include "engine/kinds/memoizer.h"
#include "engine/kinds/outcome.h"
#include "engine/kinds/run_exec.h"
#include "engine/pipeline/substitute.h"

namespace kiln::kinds {
namespace {

using pipeline::Field;
using pipeline::Index;
using pipeline::internal::Decoder;
using pipeline::internal::Fields;

class RunKind : public Kind {
 public:
  RunKind() : Kind("run", v1::Task::kRun) {}

  void Decode(Decoder* d, const yaml::Node& node, const std::string& path,
              v1::Task* task) const override {
    using namespace pipeline::internal;  // NOLINT: the field readers
    static const auto* roles =
        new EnumNames{{"compile", v1::COMPILE}, {"test", v1::TEST}};
    v1::RunSpec* out = task->mutable_run();
    Fields f(d, node, path,
             {"role", "image", "command", "env", "workdir", "network", "report",
              "results"});
    if (const yaml::Node* n = f.Get("role")) {
      int role = 0;
      if (d->Enum(*n, f.PathOf("role"), *roles, "role", &role)) {
        out->set_role(static_cast<v1::Role>(role));
      }
    }
    DecodeString(d, f, "image", out->mutable_image());
    DecodeList(d, f, "command", out->mutable_command());
    DecodeEnv(d, f, out->mutable_env());
    DecodeString(d, f, "workdir", out->mutable_workdir());
    DecodeBool(d, f, "network", [out](bool v) { out->set_network(v); });
    DecodeString(d, f, "report", out->mutable_report());
    DecodeList(d, f, "results", out->mutable_results());
  }

  void Validate(const v1::Task& task, const std::string& path,
                pipeline::KindChecks* checks) const override {
    std::string p = Field(path, "run");
    const v1::RunSpec& run = task.run();
    checks->Require(!run.command().empty(), p, "command");
    if (!run.command().empty() && run.command(0).empty()) {
      checks->Error(Index(Field(p, "command"), 0),
                    "the command's program (command[0]) is empty");
    }
    for (int i = 0; i < run.command_size(); ++i) {
      if (run.command(i).find('\0') != std::string::npos) {
        checks->Error(Index(Field(p, "command"), i),
                      absl::StrCat("command[", i,
                                   "] contains a NUL byte (\\0), which no "
                                   "program argument can hold"));
      }
    }
    if (!run.workdir().empty()) {
      checks->RelativePath(Field(p, "workdir"), run.workdir(), "workdir");
    }
    if (!run.report().empty()) {
      checks->RelativePath(Field(p, "report"), run.report(), "report");
    }
    checks->Env(run.env(), Field(p, "env"));
    std::string error = pipeline::CheckResultNames(run.results());
    if (!error.empty()) checks->Error(Field(p, "results"), error);
  }

  void ForEachString(v1::Task* task, const std::string& path,
                     const pipeline::TaskStringVisitor& visit) const override {
    using pipeline::FieldUse;
    std::string p = Field(path, "run");
    v1::RunSpec* run = task->mutable_run();
    visit(Field(p, "image"), run->mutable_image(), FieldUse::kSubstituted);
    pipeline::VisitList(run->mutable_command(), Field(p, "command"),
                        FieldUse::kSubstituted, visit);
    pipeline::VisitEnv(run->mutable_env(), Field(p, "env"),
                       FieldUse::kSecretEnv, visit);
    visit(Field(p, "workdir"), run->mutable_workdir(), FieldUse::kSubstituted);
    visit(Field(p, "report"), run->mutable_report(), FieldUse::kLiteral);
  }

  pipeline::KindFacts Facts(const v1::Task& task) const override {
    pipeline::KindFacts facts;
    facts.memoizable = true;
    facts.results.assign(task.run().results().begin(),
                         task.run().results().end());
    return facts;
  }

  // The one place that decides whether a run task's image can run here.
  absl::optional<pipeline::Refusal> Unsupported(
      const v1::Task& task,
      const pipeline::ExecCapabilities& caps) const override {
    const std::string& image = task.run().image();
    if (image.empty() || image == "host" || caps.ImagesSupported(task)) {
      return absl::nullopt;
    }
    return pipeline::Refusal{
        "run.image",
        absl::StrCat("run.image '", image,
                     "' cannot run here: the executor this task runs on does "
                     "not run images")};
  }

  // Host tasks only: an image task pins its image (a registry round trip)
  // before its key, so it always goes through Execute.
  absl::optional<std::vector<std::pair<std::string, std::string>>> CacheInputs(
      const KindCall& call) const override {
    const std::string& image = call.task.run().image();
    if (call.task.run().command_size() == 0 ||
        !(image.empty() || image == "host")) {
      return absl::nullopt;
    }
    std::vector<std::pair<std::string, std::string>> inputs;
    for (const auto& input : call.task.inputs()) {
      auto digest = call.env->ArtifactDigest(input.artifact(), call.finished);
      if (!digest.ok()) return absl::nullopt;
      inputs.emplace_back(input.artifact(), *digest);
    }
    return inputs;
  }

  // A host task's platform is its executor's, the runner version and the
  // binary command[0] resolves to on PATH (HostPlatform): decided by the
  // task as written when those are literal. An image task pins a tag when
  // it runs, which no root decides.
  absl::optional<std::string> ReplayPlatformChoice(
      const v1::Task& task) const override {
    const v1::RunSpec& run = task.run();
    auto literal = [](absl::string_view s) {
      return !absl::StrContains(s, "${");
    };
    if (!(run.image().empty() || run.image() == "host") ||
        run.command_size() == 0 || !literal(run.command(0)) ||
        !literal(task.executor())) {
      return absl::nullopt;
    }
    std::string choice;
    auto field = [&choice](absl::string_view v) {
      absl::StrAppend(&choice, v.size(), ":", v, ";");
    };
    field(task.executor());
    field(run.image());
    field(run.command(0));
    for (const auto& e : run.env()) {
      if (e.name() != "PATH") continue;
      if (!literal(e.value())) return absl::nullopt;
      field(e.value());
    }
    return choice;
  }

  AttemptOutcome Execute(const KindCall& call) const override {
    if (call.task.run().command_size() == 0) {
      return Failed("run: empty command");
    }
    std::vector<std::pair<std::string, std::string>> inputs;
    for (const auto& input : call.task.inputs()) {
      auto digest = call.env->ArtifactDigest(input.artifact(), call.finished);
      if (!digest.ok()) return Failed(digest.status());
      inputs.emplace_back(input.artifact(), *digest);
    }
    const std::string& image = call.task.run().image();
    if (image.empty() || image == "host") {
      return Memoize(*this, call, inputs,
                     [&](const TaskKey& key, std::string* log_path) {
                       return ExecuteRun(call, key, inputs, log_path);
                     });
    }
    // The image is pinned before the key: the digest enters the key (and
    // the request), never the tag, so a moved tag is a new key.
    image::ImageStore* images = call.env->ctx().images;
    if (images == nullptr) {
      return Failed(absl::FailedPreconditionError(absl::StrCat(
          "run.image '", image, "': this engine has no image store")));
    }
    absl::StatusOr<std::string> pinned = images->Pin(image);
    if (!pinned.ok()) {
      // A registry that is down or slow may answer on a retry.
      bool transient = absl::IsUnavailable(pinned.status()) ||
                       absl::IsDeadlineExceeded(pinned.status()) ||
                       absl::IsResourceExhausted(pinned.status());
      return Failed(pinned.status(), "run.image: ", transient);
    }
    v1::Task task = call.task;
    v1::Task key_view = call.key_view;
    task.mutable_run()->set_image(*pinned);
    key_view.mutable_run()->set_image(*pinned);
    KindCall pinned_call{task,          key_view,    call.attempt,
                         call.finished, call.cancel, call.env};
    return Memoize(*this, pinned_call, inputs,
                   [&](const TaskKey& key, std::string* log_path) {
                     return ExecuteRun(pinned_call, key, inputs, log_path);
                   });
  }
};

}  // namespace

const Kind& Run() {
  static const auto* kind = new RunKind();
  return *kind;
}

}  // namespace kiln::kinds
