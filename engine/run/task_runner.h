// EngineTaskRunner: what running one attempt of a task means inside the
// engine: substitute ${...} (and a key view with secrets as HMACs), find
// the task's kind in the registry (engine/kinds/kinds.h), skip it with the
// reason if this kiln cannot execute it and the pipeline set
// `options.unsupported: skip`, fail it otherwise (validation refused every
// such task it could see before ${...} was resolved), execute it, and record
// its outputs with the run — a failed record fails the task.
#ifndef KILN_ENGINE_RUN_TASK_RUNNER_H_
#define KILN_ENGINE_RUN_TASK_RUNNER_H_

#include <map>
#include <optional>
#include <string>

#include "base/side_thread.h"
#include "engine/kinds/kind_env.h"
#include "engine/scheduler/scheduler.h"

namespace kiln {

class EngineTaskRunner : public TaskRunner {
 public:
  explicit EngineTaskRunner(TaskRunnerContext context);

  AttemptOutcome RunAttempt(
      const v1::Task& task, int attempt,
      const std::map<std::string, v1::TaskStatus>& finished,
      CancelSignal* cancel) override;

  // Keys of every offered task whose kind can say it without running
  // anything (Kind::CacheInputs) and one action-cache read transaction for
  // all. The hits are recorded by their TASK_CACHED events (key, outputs,
  // results), which the scheduler emits together (EventSink::HoldEvents).
  std::vector<std::optional<AttemptOutcome>> TryCached(
      const std::vector<ReadyTask>& ready) override;

 private:
  // The task with ${...} substituted, and its key view (secrets as HMACs).
  absl::Status Resolve(const v1::Task& task,
                       const std::map<std::string, v1::TaskStatus>& finished,
                       v1::Task* resolved, v1::Task* key_view) const;
  // A `when` that reads task results (pipeline::DependsOnResults), decided
  // now from the finished tasks: the skip reason if it does not hold.
  std::optional<std::string> SkippedByResults(
      const v1::Task& task,
      const std::map<std::string, v1::TaskStatus>& finished) const;
  // Stores a TASK_SUCCEEDED outcome's outputs with the run (a hit's are
  // recorded by its TASK_CACHED event).
  AttemptOutcome RecordOutputs(const v1::Task& task, AttemptOutcome out);

  kinds::KindEnv env_;
  // Shares TryCached's key computations and presence checks of a batch
  // (base/side_thread.h).
  SideThread side_;
};

}  // namespace kiln

#endif  // KILN_ENGINE_RUN_TASK_RUNNER_H_
