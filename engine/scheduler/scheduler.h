// Runs one pipeline's DAG from its plan (pipeline/plan.h): a ready queue
// under a parallelism limit, the plan's skips and skip propagation at run
// time, fail-fast or continue-on-failure, retries with
// exponential backoff, a pipeline timeout, cancellation (graceful, then
// immediate), and `finally` tasks that always run with their own budget.
//
// The scheduler decides *when* a task attempt runs; a TaskRunner decides
// *what* running it means (cache lookup, workspace, executor). Every state
// change is reported to an EventSink in the order it happened.
#ifndef KILN_ENGINE_SCHEDULER_SCHEDULER_H_
#define KILN_ENGINE_SCHEDULER_SCHEDULER_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "base/trace.h"
#include "engine/pipeline/plan.h"
#include "engine/scheduler/cancel_signal.h"
#include "kiln/v1/pipeline.pb.h"
#include "kiln/v1/run.pb.h"

namespace kiln {

// What one attempt of one task came to.
struct AttemptOutcome {
  v1::TaskState state = v1::TASK_FAILED;  // SUCCEEDED, CACHED, FAILED,
                                          // TIMED_OUT, CANCELLED, SKIPPED
  int exit_code = 0;
  std::string reason;
  // The code of the error behind a failure the engine hit (kOk: none, e.g.
  // a non-zero exit); `reason` holds its message.
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string cache_key;
  std::map<std::string, std::string> outputs;  // artifact -> digest
  std::map<std::string, std::string> results;  // ${tasks.T.outputs.KEY}
  // false: do not retry even if retries remain (e.g. a setup error that
  // would fail again, or a task that was cancelled).
  bool retryable = true;
};

// A task whose needs are met, offered to TaskRunner::TryCached before it
// is given to a worker.
struct ReadyTask {
  const v1::Task* task;
  int attempt;
  // As RunAttempt's `finished`.
  std::map<std::string, v1::TaskStatus> finished;
};

// Runs one task attempt, blocking. Called on scheduler worker threads,
// concurrently for different tasks. `cancel` fires when the attempt must stop
// (fail-fast, run cancelled, pipeline timeout); the runner then returns
// promptly with state CANCELLED or TIMED_OUT as appropriate.
class TaskRunner {
 public:
  virtual ~TaskRunner() = default;
  // `finished` holds the final statuses this task may read: those of the
  // tasks producing the artifacts it consumes and of the tasks its
  // ${tasks.T.outputs.KEY} / ${tasks.T.results.NAME} references and
  // `when: {result: ...}` conditions name.
  virtual AttemptOutcome RunAttempt(
      const v1::Task& task, int attempt,
      const std::map<std::string, v1::TaskStatus>& finished,
      CancelSignal* cancel) = 0;

  // The no-op path, called on the scheduler's own thread with every task
  // that became ready (once per task and run of the phase, before any
  // worker sees it): for each, a CACHED outcome — its key found in the
  // action cache and the hit already recorded with the run — or nullopt,
  // and the task then goes through RunAttempt as usual. A hit never
  // occupies a worker or a parallelism slot. Default: no hits.
  virtual std::vector<std::optional<AttemptOutcome>> TryCached(
      const std::vector<ReadyTask>& ready) {
    return std::vector<std::optional<AttemptOutcome>>(ready.size());
  }
};

// A decision on a task waiting for approval (Task.approval).
struct ApprovalDecision {
  bool approve = false;
  std::string principal;
  std::string comment;
};

// Records a decision durably before it takes effect (called with the
// scheduler's locks held; keep it short); an error refuses the decision.
using ApprovalRecorder = std::function<absl::Status(
    const std::string& task, const v1::ApprovalStatus& approval)>;

// Receives every event, in order, from one scheduler thread at a time.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void OnTaskEvent(const v1::TaskStateChanged& event) = 0;
  // Bracket a burst of events emitted at once (the hits of one cache
  // lookup), which the sink may then record together.
  virtual void HoldEvents() {}
  virtual void ReleaseEvents() {}
};

struct SchedulerOptions {
  int parallelism = 2;
  v1::FailurePolicy on_failure = v1::FAIL_FAST;
  absl::Duration timeout = absl::ZeroDuration();  // zero: none
  absl::Duration finally_timeout = absl::Minutes(10);
  absl::Duration retry_backoff = absl::Seconds(1);  // doubles per attempt
  absl::Duration max_retry_backoff = absl::Minutes(1);
  // Attempts an earlier process already started, by task (resume): the
  // task's next attempt is numbered after them (a new log, a new
  // workspace), and they count against its retries (it always gets one).
  std::map<std::string, int> attempts_used;
  // Approval gates as recorded by an earlier process (resume: when the
  // task started waiting, and a decision it did not act on) or decided in
  // advance (a local run's `--approve`), by task. A gate without an entry
  // starts waiting when its needs are done.
  std::map<std::string, v1::ApprovalStatus> approvals;
  // Where the run's profile goes (null: none): per task "task", "queued",
  // "attempt N" and "hand-back" spans on the task's track.
  TraceRecorder* trace = nullptr;
};

struct SchedulerResult {
  // RUN_RUNNING: drained (see Scheduler::Drain); the run is not over.
  v1::RunState state = v1::RUN_SUCCEEDED;
  std::string reason;
  std::map<std::string, v1::TaskStatus> tasks;
};

class Scheduler {
 public:
  // `plan`: the run's plan (computed once, when the run was submitted or
  // resumed); the tasks it skips are reported skipped with its reason, and
  // it (and the pipeline it points into) must outlive the scheduler.
  // `prior`: tasks already finished in an earlier process (resume); those in
  // a final successful/skipped state are not run again.
  Scheduler(const pipeline::Plan& plan,
            std::map<std::string, v1::TaskStatus> prior, TaskRunner* runner,
            EventSink* sink, SchedulerOptions options);
  ~Scheduler();

  // Runs to completion (including `finally`). Call once.
  SchedulerResult Run();

  // Graceful: running attempts are cancelled, pending tasks skipped, then
  // `finally` runs. A second call (immediate) also cancels `finally`.
  // Thread-safe; may be called before or during Run().
  void Cancel(const std::string& reason);

  // Checkpoint for a shutdown: start nothing new and return once the running
  // attempts end, leaving pending tasks pending (no event) so that a later
  // resume continues the run. Attempts still running after `grace` are
  // stopped and reported PENDING ("interrupted"), to run again on resume.
  // Run() then returns state RUN_RUNNING. Thread-safe.
  void Drain(absl::Duration grace);

  // Decides the approval gate of `task`, which must be waiting
  // (TASK_WAITING_FOR_APPROVAL): `record` stores the decision first, then
  // an approved task runs (when a slot is free) and a rejected one fails
  // with "rejected by PRINCIPAL: COMMENT" (fail-fast applies as to any
  // failure). A task that was waiting before a restart (its record in
  // SchedulerOptions::approvals) may be decided before it is reached
  // again. FailedPrecondition if the task is not waiting (not reached,
  // decided, finished); Unavailable before Run() has begun (try again).
  // Returns the gate's record. Thread-safe.
  absl::StatusOr<v1::ApprovalStatus> Decide(const std::string& task,
                                            const ApprovalDecision& decision,
                                            const ApprovalRecorder& record);

 private:
  class Phase;

  // What a task reads from finished tasks (see Phase::Relevant).
  struct Uses {
    std::vector<std::string> artifacts;  // consumed artifact names
    std::vector<std::string> tasks;      // ${tasks.T...} references
  };
  // Used only by the thread running Run() (phases run one at a time).
  const Uses& UsesOf(const v1::Task& task);
  std::map<const v1::Task*, Uses> uses_;
  // Artifact name -> the tasks whose final status lists it as an output.
  std::map<std::string, std::vector<std::string>> producers_;

  // The tasks of one part (main or finally), in declaration order.
  std::vector<const v1::Task*> PartOf(bool is_finally) const;
  // Runs the main phase; false if the run was drained meanwhile.
  bool RunMain(SchedulerResult* result, bool* timed_out);
  // Runs `finally`; false if the run was drained meanwhile.
  bool RunFinally(SchedulerResult* result);

  const pipeline::Plan& plan_;
  // The tasks the plan skips, name -> reason.
  std::map<std::string, std::string> planned_skips_;
  std::map<std::string, v1::TaskStatus> prior_;
  TaskRunner* runner_;
  EventSink* sink_;
  SchedulerOptions options_;

  Mutex mu_;
  int cancel_count_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_grace_deadline_ ABSL_GUARDED_BY(mu_);
  std::string cancel_reason_ ABSL_GUARDED_BY(mu_);
  Phase* active_phase_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool main_begun_ ABSL_GUARDED_BY(mu_) = false;
};

// "attempt N of M, next in 2s" style backoff: base * 2^(attempt-1), capped.
absl::Duration RetryBackoff(int attempt, absl::Duration base,
                            absl::Duration cap);

// True for states that count as success for `needs`.
bool IsSuccess(v1::TaskState state);
// How long `approval` lets a task wait (its timeout, or the default).
absl::Duration ApprovalTimeout(const v1::Approval& approval);

// True for states after which a task never runs again in this run.
bool IsFinal(v1::TaskState state);

}  // namespace kiln

#endif  // KILN_ENGINE_SCHEDULER_SCHEDULER_H_
