// `${...}` references in task strings, substituted as data.
//
// References:
//   ${params.NAME}            the run's value of param NAME (default applied)
//   ${trigger.branch}         Trigger.branch
//   ${trigger.branch_slug}    BranchSlug(Trigger.branch), a DNS label
//   ${trigger.revision}       Trigger.revision
//   ${trigger.event}          push | pull_request | tag | manual | unspecified
//   ${tasks.T.outputs.KEY}    an output of task T, an ancestor via `needs`:
//                               containerize: digest ("sha256:..." of the
//                                 image manifest), image (the pushed reference
//                                 "REPO@sha256:...", or the digest if not
//                                 pushed);
//                               render: digest (of the rendered manifests).
//   ${tasks.T.results.NAME}   a result task T declared (run.results) and
//                             wrote to $KILN_RESULTS/NAME; T must be an
//                             ancestor via `needs`, as for outputs.
//   $${                       a literal "${" (any other '$' is literal).
// Which fields are substituted: task_strings.h.
//
// Substituted values are data: a value is copied verbatim into the one string
// it replaces (one argv element stays one argv element); nothing is ever
// re-parsed, so "; rm -rf /", "$(...)", backticks, newlines or "${...}" in a
// value are inert. Pure functions; thread-safe.
#ifndef KILN_ENGINE_PIPELINE_SUBSTITUTE_H_
#define KILN_ENGINE_PIPELINE_SUBSTITUTE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline {

struct Reference {
  enum class Kind { kParam, kTrigger, kTaskOutput, kTaskResult };
  Kind kind = Kind::kParam;
  std::string name;  // param name, trigger field, or task name
  std::string key;   // kTaskOutput: the output key; kTaskResult: the result
  std::string text;  // as written, e.g. "${params.registry}"
};

// Every reference in `text`. InvalidArgument for an unterminated "${" or a
// reference of no known form (the message quotes it).
absl::Status ParseReferences(absl::string_view text,
                             std::vector<Reference>* refs);

// The output keys a task of this kind provides (sorted; may be empty).
std::vector<std::string> OutputKeys(const v1::Task& task);

// The results a task declares (sorted; may be empty).
std::vector<std::string> DeclaredResults(const v1::Task& task);

// Where a declared result lives among a task's results
// (TaskStatus.results, SubstitutionContext.task_outputs): "results.NAME".
// Output keys never contain a dot, so the two never collide.
std::string ResultKey(absl::string_view name);
inline constexpr char kResultKeyPrefix[] = "results.";

// Bounds of run.results (the values' bounds are the executor's,
// executors/results_dir.h).
inline constexpr int kMaxDeclaredResults = 32;
inline constexpr size_t kMaxResultNameBytes = 64;

// "" if `names` are valid result names ([A-Za-z0-9_-], 1..64 bytes),
// distinct and at most kMaxDeclaredResults; else the first problem.
std::string CheckResultNames(
    const google::protobuf::RepeatedPtrField<std::string>& names);

// The trigger fields ${trigger.X} may name.
const std::vector<std::string>& TriggerFields();

// A DNS label (RFC 1123) from a branch name: ASCII letters lowercased; every
// run of other characters than [a-z0-9] becomes one '-'; leading and
// trailing '-' removed. If longer than 63: the first 54 characters (trailing
// '-' removed) + '-' + 8 hex digits of FNV-1a-32 of the original branch. An
// empty result is "branch".  "feature/JIRA-12_Fix" -> "feature-jira-12-fix".
std::string BranchSlug(absl::string_view branch);

// What a run knows when a task starts.
struct SubstitutionContext {
  std::map<std::string, std::string> params;  // resolved (params.h)
  v1::Trigger trigger;
  // task name -> output key -> value, for finished tasks (declared
  // results under ResultKey(NAME)).
  std::map<std::string, std::map<std::string, std::string>> task_outputs;
};

// `text` with every reference replaced. InvalidArgument for a malformed
// reference or an unknown param; FailedPrecondition for a task output that
// is not (yet) known.
absl::StatusOr<std::string> Substitute(absl::string_view text,
                                       const SubstitutionContext& context);

// A copy of `task` with every substituted field (task_strings.h) resolved.
// Errors name the field path within the task, e.g. "run.command[2]".
absl::StatusOr<v1::Task> SubstituteTask(const v1::Task& task,
                                        const SubstitutionContext& context);

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_SUBSTITUTE_H_
