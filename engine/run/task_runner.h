// EngineTaskRunner: what running one attempt of a task means inside the
// engine. For a `run` task: substitute ${...}, compute the cache key, reuse
// a recorded result on a hit, otherwise prepare a fresh workspace (unstash
// inputs), execute through the Executor, stream and store the log, stash the
// outputs, record the result. `stash`/`unstash` move artifacts between the
// host and the store; `render` renders a kustomization; `containerize` and
// `deploy` are not implemented yet and say so (the task is skipped).
#ifndef KILN_ENGINE_RUN_TASK_RUNNER_H_
#define KILN_ENGINE_RUN_TASK_RUNNER_H_

#include <functional>
#include <map>
#include <set>
#include <string>

#include "engine/base/mutex.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/beneath.h"
#include "engine/exec/executor_set.h"
#include "engine/keys/task_key.h"
#include "engine/pipeline/substitute.h"
#include "engine/scheduler/scheduler.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "executors/executor.h"

namespace kiln {

struct TaskRunnerContext {
  std::string run_id;
  std::string pipeline_name;
  std::string store_dir;
  // Host directory that stash/unstash paths are relative to ("" = none).
  std::string source_dir;
  // Tree digest of the implicit artifact `source` ("" = none).
  std::string source_digest;
  pipeline::SubstitutionContext substitution;
  // Values of secret params: masked in logs, HMAC'd in keys.
  std::map<std::string, std::string> secrets;
  std::string hmac_key;
  bool keep_workspaces = false;
  // An attempt's stored log file cap, unless the task sets max_log_bytes.
  int64_t max_log_file_bytes = 8 << 20;

  // The default executor (kept for callers that set only it).
  Executor* executor = nullptr;
  // The executors, with the run's default; a task's comes from For(task).
  ExecutorSet executors;
  cas::ArtifactStore* artifacts = nullptr;
  store::ActionCache* action_cache = nullptr;
  store::RunStore* run_store = nullptr;
  // Emits a log line event (thread-safe).
  std::function<void(v1::RunEvent)> emit;
};

class EngineTaskRunner : public TaskRunner {
 public:
  explicit EngineTaskRunner(TaskRunnerContext context);

  AttemptOutcome RunAttempt(
      const v1::Task& task, int attempt,
      const std::map<std::string, v1::TaskStatus>& finished,
      CancelSignal* cancel) override;

 private:
  AttemptOutcome RunCommand(const v1::Task& task, const v1::Task& key_view,
                            int attempt,
                            const std::map<std::string, v1::TaskStatus>& fin,
                            CancelSignal* cancel);
  AttemptOutcome Stash(const v1::Task& task);
  AttemptOutcome Unstash(const v1::Task& task,
                         const std::map<std::string, v1::TaskStatus>& fin);
  AttemptOutcome Render(const v1::Task& task, const v1::Task& key_view,
                        int attempt,
                        const std::map<std::string, v1::TaskStatus>& fin);

  // Digest of an artifact visible to a task: `source`, or an output of a
  // finished task it needs. NotFound otherwise.
  absl::StatusOr<std::string> ArtifactDigest(
      const std::string& artifact,
      const std::map<std::string, v1::TaskStatus>& fin) const;
  // The executor platform plus what identifies the environment (host OS
  // release, the invoked binary's digest).
  std::string PlatformFor(const v1::Task& task);
  // The executor that runs `task` (context.executors, else the single one).
  Executor* ExecutorFor(const v1::Task& task) const {
    return !ctx_.executors.empty() ? ctx_.executors.For(task) : ctx_.executor;
  }
  // A cached result that is still usable (its artifacts are in the store).
  absl::optional<store::ActionResult> Lookup(const std::string& key);
  // The CACHED outcome for a usable recorded result of `key`.
  absl::optional<AttemptOutcome> CachedOutcome(const std::string& key);
  // A fresh per-attempt directory under the store (not created).
  std::string WorkDir(const v1::Task& task, int attempt) const;
  // The directory holding this run's workspaces (created, mode 0755).
  absl::StatusOr<cas::UniqueFd> OpenWorkParent() const;
  void Record(const std::string& key, const v1::Task& task,
              const std::vector<KeyComponent>& components,
              const AttemptOutcome& outcome, const std::string& log_path);
  std::string Mask(std::string line) const;
  // `relative` (already split and checked) shown below the source directory.
  std::string SourcePath(const std::string& relative) const;

  TaskRunnerContext ctx_;
  std::vector<std::string> secret_forms_;  // every encoding to mask

  Mutex mu_;
  // path -> "size:mtime:digest" of binaries hashed for PlatformFor.
  std::map<std::string, std::string> binary_digests_ ABSL_GUARDED_BY(mu_);
  std::string os_release_digest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kiln

#endif  // KILN_ENGINE_RUN_TASK_RUNNER_H_
