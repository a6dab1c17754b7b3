// A task kind: the pipeline-facing description (pipeline::KindSpec: decode,
// validate, strings, facts, what this kiln cannot execute) plus Execute.
// One file per kind (run.cc, stash.cc, ...), registered in registry.cc.
// A memoizable kind runs its work through the Memoizer (memoizer.h), which
// computes the key, reuses a recorded result and records a fresh one.
#ifndef KILN_ENGINE_KINDS_KIND_H_
#define KILN_ENGINE_KINDS_KIND_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/types/optional.h"
#include "engine/kinds/kind_env.h"
#include "engine/pipeline/kind_spec.h"
#include "engine/scheduler/scheduler.h"

namespace kiln::kinds {

// One attempt of one task, as a kind sees it.
struct KindCall {
  const v1::Task& task;      // ${...} substituted
  const v1::Task& key_view;  // substituted with secrets as HMACs (for keys)
  int attempt;
  // Final statuses of the tasks it reads (see TaskRunner::RunAttempt).
  const std::map<std::string, v1::TaskStatus>& finished;
  CancelSignal* cancel;
  KindEnv* env;  // the engine's services for this run
};

class Kind : public pipeline::KindSpec {
 public:
  using pipeline::KindSpec::KindSpec;
  // Runs one attempt; blocks; returns promptly once `call.cancel` fires.
  // Never called for a task Unsupported() refuses (the dispatcher skips
  // it). Failures carry their absl::StatusCode in the outcome.
  virtual AttemptOutcome Execute(const KindCall& call) const = 0;
  // For the no-op path (memoizer.h ProbeKey): the (artifact, digest) inputs
  // Execute would key this call with, if Execute would key it by Memoize
  // with exactly those inputs and nothing else to do first (no registry,
  // no pinning, no side effect). nullopt (the default): the task always
  // goes through Execute.
  virtual absl::optional<std::vector<std::pair<std::string, std::string>>>
  CacheInputs(const KindCall&) const {
    return absl::nullopt;
  }
  // For a whole-run replay (engine/run_replay.h): when every key of
  // `task` (unsubstituted) is decided by its substituted fields, the inputs
  // CacheInputs gives and a platform that the task as written decides, the
  // fields that decide that platform (compared as one string). nullopt
  // (the default): a run holding the task is never replayed.
  virtual absl::optional<std::string> ReplayPlatformChoice(
      const v1::Task&) const {
    return absl::nullopt;
  }
};

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_KIND_H_
