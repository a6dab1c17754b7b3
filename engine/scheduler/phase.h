// Scheduler::Phase — one list of tasks (the main tasks, or `finally`) run
// to completion: a ready queue under the parallelism limit, retries, stop
// (fail-fast, cancel, timeout) and drain. Internal to the scheduler.
#ifndef KILN_ENGINE_SCHEDULER_PHASE_H_
#define KILN_ENGINE_SCHEDULER_PHASE_H_

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/scheduler/scheduler.h"

namespace kiln {

// The current time as a proto timestamp.
google::protobuf::Timestamp NowProto();
// FAILED, CANCELLED or TIMED_OUT.
bool IsFailure(v1::TaskState state);

class Scheduler::Phase {
 public:
  // `tasks` in declaration order.
  Phase(Scheduler* s, std::vector<const v1::Task*> tasks,
        std::map<std::string, v1::TaskStatus>* statuses, absl::Time deadline,
        bool is_finally)
      : s_(s),
        tasks_(std::move(tasks)),
        statuses_(statuses),
        deadline_(deadline),
        is_finally_(is_finally) {}

  // Runs every task of the phase; returns when all are final.
  void Run();
  // Stops the phase: running attempts cancelled, pending tasks skipped.
  void Stop(v1::TaskState pending_state, const std::string& reason);
  // Starts nothing new; running attempts still running at `deadline` are
  // stopped and reported PENDING.
  void Drain(absl::Time deadline);

  // Scheduler::Decide for a task of this phase.
  absl::StatusOr<v1::ApprovalStatus> Decide(const std::string& task,
                                            const ApprovalDecision& decision,
                                            const ApprovalRecorder& record);

  bool is_finally() const { return is_finally_; }
  bool drained() const {
    MutexLock lock(&mu_);
    return draining_;
  }
  bool timed_out() const {
    MutexLock lock(&mu_);
    return timed_out_;
  }

 private:
  struct Work_ {
    const v1::Task* task;
    int attempt;
    std::map<std::string, v1::TaskStatus> finished;
    CancelSignal* cancel;
    absl::Time queued;
  };
  struct Done {
    const v1::Task* task;
    int attempt;
    AttemptOutcome outcome;
    absl::Time returned;
  };
  struct Retry {
    absl::Time when;
    const v1::Task* task;
    int attempt;
  };

  v1::TaskStatus& Status(const std::string& name) { return (*statuses_)[name]; }
  // `outputs` (a final state's artifacts, name -> tree digest) may be null.
  void Emit(
      const std::string& task, v1::TaskState state, int attempt, int exit_code,
      const std::string& reason, int error_code = 0,
      const google::protobuf::Map<std::string, std::string>* outputs = nullptr,
      const google::protobuf::Map<std::string, std::string>* results = nullptr,
      const v1::ApprovalStatus* approval = nullptr,
      const std::string& cache_key = "");
  void Finish(const v1::Task& task, v1::TaskState state, int attempt,
              const AttemptOutcome* outcome, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The final statuses a task may read (see Scheduler::Uses).
  std::map<std::string, v1::TaskStatus> Relevant(const v1::Task& task);

  // Decides what to do with a pending task whose needs may be final:
  // returns true if it was resolved (skipped) or launched.
  bool TryStart(const v1::Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  enum class NeedsVerdict { kWait, kRun, kSkip };
  // What the needs of a pending task allow: wait (one is not final), skip
  // (one failed, or every one was skipped: pipeline::SkippedByNeeds; the
  // reason in *skip_reason) or run.
  NeedsVerdict CheckNeeds(const v1::Task& task, std::string* skip_reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Launch(const v1::Task& task, int attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // phase_approval.cc: a gated task whose needs are done and which was not
  // approved yet: acts on a recorded decision or starts waiting. true
  // (the task leaves `pending`).
  bool Gate(const v1::Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `task` may start now (no gate, or approved).
  bool PassedGate(const v1::Task& task) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !task.has_approval() || approved_.count(&task) > 0;
  }
  // Acts on a decision: approved -> PENDING (to start), else FAILED.
  void ApplyDecision(const v1::Task& task, const v1::ApprovalStatus& approval)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waiting tasks past their deadline time out; returns the earliest
  // deadline of those still waiting.
  absl::Time ExpireApprovals(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fail-fast after a task failed (unless continuing on failure).
  void AfterFailure(const v1::Task& task, v1::TaskState state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The attempt a task's first start in this run gets (after those an
  // earlier process used).
  int FirstAttempt(const v1::Task& task) const;
  // Marks the task running and emits TASK_RUNNING.
  void MarkRunning(const v1::Task& task, int attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Offers the ready pending tasks not offered yet to TaskRunner::TryCached
  // and finishes the hits, batch after batch while there are hits (the
  // first call looks at every pending task, later ones only at the
  // dependents of tasks that became final since), then removes the hits
  // from *pending. true if any hit.
  bool FinishCached(std::vector<const v1::Task*>* pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The ready, never offered tasks among `candidates`.
  std::vector<ReadyTask> Offerable(
      const std::vector<const v1::Task*>& candidates)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Profile: the task's track, and the start of its "task" span.
  int Track(const v1::Task& task) const;
  void BeginTask(const v1::Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Work();
  void HandleDone(Done d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A failed attempt that may run again: schedules the retry.
  bool MaybeRetry(const Done& d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopLocked(v1::TaskState state, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The loop, one step at a time.
  std::vector<const v1::Task*> InitialPending()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Loop();
  // true: the drain is complete and the loop ends.
  bool DrainStep(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishStopped(std::vector<const v1::Task*>* pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartReady(absl::Time now, std::vector<const v1::Task*>* pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  bool HasWorkOrShutdown() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return shutting_down_ || !queue_.empty();
  }
  bool HasNews() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !done_.empty() || stop_pending_ || !released_.empty() ||
           gate_news_ || slot_news_;
  }
  // Slots are held by running tasks whose command has not ended yet.
  int Capacity() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::max(1, s_->options_.parallelism) -
           static_cast<int>(running_.size() - command_done_.size());
  }

  Scheduler* s_;
  const std::vector<const v1::Task*> tasks_;
  std::map<std::string, v1::TaskStatus>* statuses_;
  absl::Time deadline_;
  bool is_finally_;

  mutable Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_pending_ ABSL_GUARDED_BY(mu_) = false;  // set by Stop()
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool drain_killed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool timed_out_ ABSL_GUARDED_BY(mu_) = false;
  v1::TaskState stop_state_ ABSL_GUARDED_BY(mu_) = v1::TASK_SKIPPED;
  std::string stop_reason_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<CancelSignal>> running_
      ABSL_GUARDED_BY(mu_);
  std::deque<Work_> queue_ ABSL_GUARDED_BY(mu_);
  std::deque<Done> done_ ABSL_GUARDED_BY(mu_);
  std::vector<Retry> retries_ ABSL_GUARDED_BY(mu_);
  // Tasks already offered to TryCached (a miss is not offered again).
  std::set<const v1::Task*> offered_ ABSL_GUARDED_BY(mu_);
  // For FinishCached: tasks that became final since it last looked, the
  // phase's tasks by need, and their declaration order.
  bool offered_all_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> newly_final_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<const v1::Task*>> dependents_
      ABSL_GUARDED_BY(mu_);
  std::map<const v1::Task*, size_t> position_ ABSL_GUARDED_BY(mu_);
  // Approval gates: tasks waiting for a decision (their records), approved
  // tasks (they pass the gate), approved tasks to move back to pending,
  // and the latest record of every gate (sent with the task's events).
  std::map<const v1::Task*, v1::ApprovalStatus> waiting_ ABSL_GUARDED_BY(mu_);
  std::set<const v1::Task*> approved_ ABSL_GUARDED_BY(mu_);
  std::vector<const v1::Task*> released_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::ApprovalStatus> gates_ ABSL_GUARDED_BY(mu_);
  bool gate_news_ ABSL_GUARDED_BY(mu_) = false;  // a decision; wakes Loop
  // Running tasks whose command has ended (CancelSignal::CommandDone):
  // they capture outputs and record without holding a slot.
  std::set<std::string> command_done_ ABSL_GUARDED_BY(mu_);
  bool slot_news_ ABSL_GUARDED_BY(mu_) = false;  // a slot freed; wakes Loop
  // Profile: when each task's "task" span began.
  std::map<const v1::Task*, absl::Time> task_begin_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kiln

#endif  // KILN_ENGINE_SCHEDULER_PHASE_H_
