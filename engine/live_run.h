// The run handles kiln::Engine gives out: LiveRun, a run executing in this
// process (scheduler thread + batched event pump), and RecordedRun, a run
// known only from the store. Internal to //engine.
#ifndef KILN_ENGINE_LIVE_RUN_H_
#define KILN_ENGINE_LIVE_RUN_H_

#include <deque>
#include <map>
#include <string>
#include <thread>
#include <utility>

#include "base/mutex.h"
#include "base/pooled_thread.h"
#include "engine/cas/artifact_store.h"
#include "engine/engine.h"
#include "engine/planned_run.h"
#include "engine/run/task_runner.h"
#include "engine/scheduler/scheduler.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_lease.h"
#include "engine/store/run_store.h"

namespace kiln {

bool IsFinalRun(v1::RunState s);

// What a live run uses of its engine; owned by the engine, which outlives
// its runs.
struct LiveRunDeps {
  const EngineOptions* options;
  store::RunStore* runs;
  store::ActionCache* cache;
  cas::ArtifactStore* artifacts;
  std::string hmac_key;
};

// A run executing in this process: a scheduler thread plus an event pump
// that records events in batches and hands them to subscribers.
class LiveRun : public RunHandle, public EventSink {
 public:
  // `planned`: the run's one plan (an error fails the run when it starts).
  LiveRun(LiveRunDeps deps, std::string id, absl::StatusOr<PlannedRun> planned,
          v1::Trigger trigger, std::string source_dir, bool keep_going,
          std::map<std::string, v1::TaskStatus> prior,
          std::map<std::string, int> attempts_used,
          std::map<std::string, v1::ApprovalStatus> approvals,
          std::unique_ptr<store::RunLease> lease);
  ~LiveRun() override;

  const std::string& id() const override { return id_; }
  int Subscribe(uint64_t after_seq, EventCallback callback) override;
  void Unsubscribe(int subscription) override;
  v1::Run Wait() override;
  std::shared_ptr<const v1::Run> WaitShared() override;
  std::shared_ptr<const v1::Run> WaitSummary() override;
  bool WaitFor(absl::Duration timeout, v1::Run* run) override;
  void Cancel(const std::string& reason) override;
  // Checkpoint for shutdown (Scheduler::Drain): the run stays unfinished in
  // the store and resumes later.
  void Drain(absl::Duration grace);
  // Scheduler::Decide, the decision recorded in the run store first.
  // FailedPrecondition when the scheduler is not running (yet / any more).
  absl::StatusOr<v1::ApprovalStatus> DecideApproval(
      const std::string& task, const ApprovalDecision& decision);

  void OnTaskEvent(const v1::TaskStateChanged& event) override;
  void HoldEvents() override;
  void ReleaseEvents() override;
  void Start();
  bool done() {
    MutexLock lock(&mu_);
    return done_;
  }

 private:
  void Execute();
  // final_, built first if it was left to a request.
  std::shared_ptr<const v1::Run> FinalLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The stored run on an arena the result shares (10,000 task statuses
  // without a malloc for each message and map entry, freed at once);
  // `tasks` false: without them (tasks_omitted).
  std::shared_ptr<v1::Run> ReadRun(bool tasks, absl::Status* read);
  // What the task runner needs of this run (TaskRunnerContext).
  absl::StatusOr<TaskRunnerContext> RunnerContext();
  SchedulerOptions SchedOptions() const;
  const v1::Pipeline& pipeline() const { return *planned_->pipeline; }
  // Stashes the source directory as `source`, without the pipeline file
  // (unless the pipeline asks to keep it).
  absl::StatusOr<cas::StashResult> StashSource() const;
  void Emit(v1::RunEvent event);
  // Queues a log event within the attempt's budget and the queue bound, or
  // counts it as dropped.
  void EmitLogLocked(v1::RunEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushLocked(v1::RunEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Pump();
  // `replay_fingerprint`: set when the run could be replayed later; a
  // run that succeeded is then recorded as the source of such replays.
  void FinishRun(v1::RunState state, std::string reason,
                 const std::optional<std::string>& replay_fingerprint = {},
                 const TaskRunnerContext* ctx = nullptr);
  // Records this run as a replay of `source` and delivers its task events
  // (run_replay.h). False (nothing recorded) if the store refused.
  bool Replay(const store::ReplaySource& source,
              const std::vector<store::ReplayShardStamp>& refreshed_stamps);
  // Posts the pipeline's matching notifications (bounded) and emits one
  // event each, before the final RunStateChanged.
  void Notify(v1::RunState state, const std::string& reason);

  LiveRunDeps deps_;
  const std::string id_;
  const absl::StatusOr<PlannedRun> planned_;
  v1::Trigger trigger_;
  const std::string source_dir_;
  const bool keep_going_;
  std::map<std::string, v1::TaskStatus> prior_;
  // Attempts of unfinished tasks started by an earlier process (resume).
  std::map<std::string, int> attempts_used_;
  // Recorded approval gates (SchedulerOptions::approvals).
  std::map<std::string, v1::ApprovalStatus> approvals_;
  // This process's ownership of the run; released when the run finishes
  // or is drained.
  std::unique_ptr<store::RunLease> lease_;
  // Pooled: a server starts and ends these two per run (base/pooled_thread.h).
  PooledThread thread_;
  PooledThread pump_;

  Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool pump_stop_ ABSL_GUARDED_BY(mu_) = false;
  // The run's final event was recorded with its replay (Replay).
  bool final_recorded_ ABSL_GUARDED_BY(mu_) = false;
  // Tasks in the order they succeeded or hit (a replay source's order).
  std::vector<std::string> finish_order_ ABSL_GUARDED_BY(mu_);
  // While above zero (HoldEvents) the pump waits for the rest of a burst,
  // at most its usual 100 ms.
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  // The first failure to record a batch of events: the run cannot report
  // success with a record that lost them (FinishRun).
  absl::Status record_error_ ABSL_GUARDED_BY(mu_);
  // The pump is recording a batch it took from pending_.
  bool recording_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<v1::RunEvent> pending_ ABSL_GUARDED_BY(mu_);
  // Log events in pending_ (bounded by max_pending_log_events).
  int64_t pending_logs_ ABSL_GUARDED_BY(mu_) = 0;
  // Streamed-log budget of each running attempt (task, attempt).
  struct LogBudget {
    int64_t lines = 0;
    int64_t bytes = 0;
    int64_t dropped = 0;
    bool noted = false;  // the "limit reached" marker was emitted
  };
  std::map<std::pair<std::string, uint32_t>, LogBudget> log_budgets_
      ABSL_GUARDED_BY(mu_);
  uint64_t appended_ ABSL_GUARDED_BY(mu_) = 0;  // last seq recorded
  // Set when done_ is; for a replay, on first request (FinalLocked).
  std::shared_ptr<const v1::Run> final_ ABSL_GUARDED_BY(mu_);
  // Set when done_ is: final_, or for a replay the run without its tasks.
  std::shared_ptr<const v1::Run> summary_ ABSL_GUARDED_BY(mu_);
  // The run was recorded as a replay (Replay).
  bool replayed_ ABSL_GUARDED_BY(mu_) = false;
  // The last state of each task, from prior_ and emitted events (for the
  // notifications' failed tasks).
  std::map<std::string, v1::TaskState> task_states_ ABSL_GUARDED_BY(mu_);

  // Cancel/Drain requests and the scheduler they go to. A lock of its own:
  // the scheduler calls back into Emit (mu_) while holding its locks, so
  // mu_ must never be held while calling into the scheduler.
  Mutex sched_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  int cancels_ ABSL_GUARDED_BY(sched_mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(sched_mu_) = false;
  absl::Duration drain_grace_ ABSL_GUARDED_BY(sched_mu_);
  std::string cancel_reason_ ABSL_GUARDED_BY(sched_mu_);
  Scheduler* scheduler_ ABSL_GUARDED_BY(sched_mu_) = nullptr;

  // Subscribers; delivery happens under sub_mu_ so that replay and live
  // delivery never interleave.
  struct Sub {
    uint64_t last;
    EventCallback cb;
  };
  Mutex sub_mu_;
  std::map<int, Sub> subs_ ABSL_GUARDED_BY(sub_mu_);
  int next_sub_ ABSL_GUARDED_BY(sub_mu_) = 0;
};

// A recorded run that is not executing in this process.
class RecordedRun : public RunHandle {
 public:
  RecordedRun(store::RunStore* runs, std::string id)
      : runs_(runs), id_(std::move(id)) {}
  const std::string& id() const override { return id_; }
  int Subscribe(uint64_t after_seq, EventCallback callback) override {
    while (true) {
      auto events = runs_->ReadEvents(id_, after_seq, 1000);
      if (!events.ok() || events->empty()) break;
      for (const auto& e : *events) callback(e);
      after_seq = events->back().sequence();
    }
    return 0;
  }
  void Unsubscribe(int) override {}
  v1::Run Wait() override {
    v1::Run run;
    while (!WaitFor(absl::Seconds(1), &run)) {
    }
    return run;
  }
  bool WaitFor(absl::Duration timeout, v1::Run* run) override {
    absl::Time deadline = absl::Now() + timeout;
    while (true) {
      auto r = runs_->GetRun(id_);
      if (r.ok()) *run = *r;
      // A run whose owning process died stays unfinished until someone
      // resumes it: waiting ends there too, with owner_gone set.
      if (!r.ok() || IsFinalRun(r->state()) || r->owner_gone()) return true;
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  void Cancel(const std::string&) override {}

 private:
  store::RunStore* runs_;
  std::string id_;
};

}  // namespace kiln

#endif  // KILN_ENGINE_LIVE_RUN_H_
