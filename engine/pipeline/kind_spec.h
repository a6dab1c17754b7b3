// What the pipeline layer knows of a task kind: how to decode, validate and
// walk its spec, and what it consumes, produces and declares. The pipeline
// layer owns this interface and the registry; the kinds themselves live in
// engine/kinds/ (which adds execution, see engine/kinds/kind.h) and register
// there, so that no file of the pipeline layer switches on the task kind.
#ifndef KILN_ENGINE_PIPELINE_KIND_SPEC_H_
#define KILN_ENGINE_PIPELINE_KIND_SPEC_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/optional.h"
#include "engine/pipeline/decoder.h"
#include "engine/pipeline/task_strings.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline {

// What the engine's executors can do, as far as validation must know.
struct ExecCapabilities {
  bool images = false;  // a run task may name an image other than the host
  bool ImagesSupported() const { return images; }
  // Per task, when set: can the executor chosen for `task` run images?
  // (ExecutorSet::Capabilities() sets it; `images` is then "all can".)
  std::function<bool(const v1::Task&)> images_for_task;
  bool ImagesSupported(const v1::Task& task) const {
    return images_for_task ? images_for_task(task) : images;
  }
  // Can a deploy find its cluster under this kube context ("": the run's)?
  // OK, or why not (e.g. "no kubeconfig ..."). Unset: not checked (`kiln
  // validate` knows no cluster flags).
  std::function<absl::Status(const std::string& context)> cluster;
};

// Checks a kind runs on one task; every error is about that task and is
// reported at a field path below it (FILE:LINE:COL with a source map).
class KindChecks {
 public:
  virtual ~KindChecks() = default;
  // "task 'T': " is prepended to `message`.
  virtual void Error(const std::string& path, const std::string& message) = 0;
  virtual void Require(bool present, const std::string& path,
                       const std::string& field) = 0;
  // Relative, without "..", without NUL.
  virtual void RelativePath(const std::string& path, const std::string& value,
                            const std::string& what) = 0;
  virtual void Env(const google::protobuf::RepeatedPtrField<v1::EnvVar>& env,
                   const std::string& path) = 0;
};

// An artifact a kind's spec consumes, with the field naming it (relative to
// the task, e.g. "unstash.artifact").
struct ConsumedArtifact {
  std::string artifact;
  std::string field;
};

// Why this kiln cannot execute a task, at which field (relative to the task).
struct Refusal {
  std::string field;
  std::string reason;  // e.g. "deploy tasks are not implemented yet"
};

// What a task of a kind reads and makes, beyond its `inputs`/`outputs`.
struct KindFacts {
  std::vector<ConsumedArtifact> consumed;
  std::string produced;                  // artifact made by the kind, or ""
  std::vector<std::string> output_keys;  // ${tasks.T.outputs.KEY}
  std::vector<std::string> results;      // declared: ${tasks.T.results.NAME}
  bool memoizable = false;               // may a recorded result stand in?
  // A kind deploying to an environment: its name as written (may hold
  // references) and the field naming it; and the fields the task sets that
  // a declared environment owns (kind, namespace, context), all relative to
  // the task. Checked against Pipeline.environments (docs/environments.md).
  std::string environment;
  std::string environment_field;
  std::vector<std::string> environment_overrides;
  // A deploy promoting another environment's deployment (deploy.promote):
  // that environment as written and the field naming it; same_run without
  // a run named (then a deploy to it must be among the task's needs).
  std::string promote_from;
  std::string promote_from_field;
  bool promote_same_run = false;
};

class KindSpec {
 public:
  // `name` is the YAML key (and what KindName returns); `kind_case` the
  // Task oneof case the kind fills.
  KindSpec(std::string name, v1::Task::KindCase kind_case)
      : name_(std::move(name)), kind_case_(kind_case) {}
  virtual ~KindSpec() = default;
  const std::string& name() const { return name_; }
  v1::Task::KindCase kind_case() const { return kind_case_; }

  // Decodes the YAML mapping under the kind's key into `out`'s oneof,
  // recording positions below `path` and reporting through `d`.
  virtual void Decode(internal::Decoder* d, const yaml::Node& node,
                      const std::string& path, v1::Task* out) const = 0;
  // Reports every problem of the kind's fields (`path` is the task's).
  virtual void Validate(const v1::Task& task, const std::string& path,
                        KindChecks* checks) const = 0;
  // Visits each string of the kind's spec (see task_strings.h), in a fixed
  // order, with whether references in it are substituted.
  virtual void ForEachString(v1::Task* task, const std::string& path,
                             const TaskStringVisitor& visit) const = 0;
  // Consumed/produced artifacts, output keys, memoizability. Pure.
  virtual KindFacts Facts(const v1::Task& task) const = 0;
  // Set when this kiln cannot execute `task` (the kind is not implemented,
  // or it needs what `caps` lacks). Validation refuses such a task unless
  // the pipeline sets `options.unsupported: skip`; then it is skipped.
  virtual absl::optional<Refusal> Unsupported(
      const v1::Task& task, const ExecCapabilities& caps) const = 0;
  // Whether running `task` certainly makes HTTP requests (a registry push,
  // a cluster's API): `kiln run` then readies its HTTP client early.
  virtual bool MakesRequests(const v1::Task& task) const { return false; }

 private:
  std::string name_;
  v1::Task::KindCase kind_case_;
};

// True if `path` has no components but "." (it names its root).
bool NamesRoot(const std::string& path);

// The registry: every kind, in registration order. Kinds register once,
// at static initialisation (engine/kinds/registry.cc) or in a test.
// Registering a second kind with the same name or case is a fatal error.
void RegisterKind(const KindSpec* kind);
const std::vector<const KindSpec*>& RegisteredKinds();
// nullptr when no registered kind matches.
const KindSpec* FindKind(v1::Task::KindCase kind_case);
const KindSpec* FindKind(absl::string_view name);
inline const KindSpec* KindOf(const v1::Task& task) {
  return FindKind(task.kind_case());
}

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_KIND_SPEC_H_
