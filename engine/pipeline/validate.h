// Static checks of a pipeline, before anything runs.
//
// Checks: pipeline name; params (names, uniqueness, default valid for its
// type/choices); task names (unique across tasks and finally, [A-Za-z0-9_-],
// at most 63 chars); exactly one kind per task and that kind's required
// fields; `needs` (known, with a suggestion; not itself; not twice; tasks
// never need finally tasks; finally tasks only need finally tasks); cycles
// (naming every task on each cycle); `when` (valid regex/glob, known params,
// non-empty event sets and lists); artifacts (every consumed artifact is
// `source` or produced by an ancestor via `needs` — a finally task may also
// consume anything a regular task produces; one producer per artifact);
// workspace paths relative without `..`; env var names; `${...}` references
// (substitute.h): known params, ancestors' known output keys, secret params
// only in run.env values, no references in literal fields (task_strings.h).
//
// The implicit artifact `source` is the directory of the pipeline file; the
// engine stashes it when a run starts. No task may produce it.
//
// Thread-safe; pure.
#ifndef KILN_ENGINE_PIPELINE_VALIDATE_H_
#define KILN_ENGINE_PIPELINE_VALIDATE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/pipeline/diagnostic.h"
#include "engine/pipeline/kind_spec.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline {

inline constexpr char kSourceArtifact[] = "source";

// Approval gates (Task.approval): limits the validator enforces, and the
// wait when `timeout` is unset.
inline constexpr size_t kMaxApprovalMessageBytes = 4096;
inline constexpr int64_t kMaxApprovalTimeoutSeconds = 30 * 86400;
inline constexpr int64_t kDefaultApprovalTimeoutSeconds = 86400;

// Every problem found (empty: valid). With a source map (from the loader)
// diagnostics carry FILE:LINE:COL; without one, only field paths such as
// "tasks[2].needs[0]".
//
// A task this kiln cannot execute (its kind is not implemented, or it
// needs what `caps` lacks, e.g. run.image without image support) is an
// error unless the pipeline sets `options.unsupported: skip`. Without
// `caps`: no executor capabilities beyond the host.
std::vector<Diagnostic> ValidatePipeline(const v1::Pipeline& pipeline,
                                         const SourceMap* source_map = nullptr);
std::vector<Diagnostic> ValidatePipeline(const v1::Pipeline& pipeline,
                                         const SourceMap* source_map,
                                         const ExecCapabilities& caps);

class Validation;

namespace internal {
// A proof for `pipeline` that does not validate it. Only for the loader's
// decode cache (LoadOptions::decode_cache_dir), whose checksummed entry
// records that this same kiln build found nothing in these exact bytes,
// decoded under the same limits, validated with the same capabilities.
std::shared_ptr<const Validation> ValidatedBefore(const v1::Pipeline& pipeline);
}  // namespace internal

// Proof that a validation found nothing wrong with one pipeline, for a
// later caller that knows more (Engine::Submit knows its executors'
// capabilities): it then runs only the checks that depend on them
// (ValidateWithCapabilities) instead of every check again. Made by the
// ValidatePipeline overload below (and, for what it made before, by the
// loader's decode cache); bound to the pipeline's content (its
// deterministic serialization), so a changed pipeline is not covered.
class Validation {
 public:
  // Whether `pipeline` is, field for field, the pipeline validated.
  bool Covers(const v1::Pipeline& pipeline) const;

 private:
  friend std::vector<Diagnostic> ValidatePipeline(
      const v1::Pipeline& pipeline, const SourceMap* source_map,
      const ExecCapabilities& caps,
      std::shared_ptr<const Validation>* validation);
  friend std::shared_ptr<const Validation> internal::ValidatedBefore(
      const v1::Pipeline& pipeline);
  explicit Validation(std::string bytes) : bytes_(std::move(bytes)) {}
  std::string bytes_;
};

// As above; when nothing is found, *validation (not null) is set to the
// proof for `pipeline` (otherwise reset).
std::vector<Diagnostic> ValidatePipeline(
    const v1::Pipeline& pipeline, const SourceMap* source_map,
    const ExecCapabilities& caps,
    std::shared_ptr<const Validation>* validation);

// What ValidatePipeline(pipeline, source_map, caps) reports, the same
// diagnostics in the same order. With `prior` covering `pipeline`, every
// check but those depending on `caps` (whether this kiln can execute each
// task: ExecCapabilities) passed already: only those run. Without (null, or
// made for another pipeline): every check runs.
std::vector<Diagnostic> ValidateWithCapabilities(const v1::Pipeline& pipeline,
                                                 const SourceMap* source_map,
                                                 const ExecCapabilities& caps,
                                                 const Validation* prior);

// Validations that ran every check, made in this process (a test hook:
// a loaded pipeline is validated in full once).
int64_t FullValidationsForTesting();

// The name of the artifact a task produces by its kind (containerize and
// render: `artifact` or the task's name; stash: its artifact), or "".
// Both ask the kind registry (kind_spec.h).
std::string KindArtifact(const v1::Task& task);

// "run", "stash", "unstash", "containerize", "render", "deploy" or "" (unset).
const char* KindName(const v1::Task& task);

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_VALIDATE_H_
