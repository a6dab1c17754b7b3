#include "engine/scheduler/scheduler.h"

#include <algorithm>
#include <deque>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "engine/pipeline/kind_spec.h"

namespace kiln {

bool IsSuccess(v1::TaskState s) {
  return s == v1::TASK_SUCCEEDED || s == v1::TASK_CACHED;
}

bool IsFinal(v1::TaskState s) {
  return s == v1::TASK_SUCCEEDED || s == v1::TASK_CACHED ||
         s == v1::TASK_FAILED || s == v1::TASK_SKIPPED ||
         s == v1::TASK_CANCELLED || s == v1::TASK_TIMED_OUT;
}

absl::Duration RetryBackoff(int attempt, absl::Duration base,
                            absl::Duration cap) {
  absl::Duration d = base;
  for (int i = 1; i < attempt && d < cap; ++i) d *= 2;
  return std::min(d, cap);
}

namespace {

bool IsFailure(v1::TaskState s) {
  return s == v1::TASK_FAILED || s == v1::TASK_CANCELLED ||
         s == v1::TASK_TIMED_OUT;
}

google::protobuf::Timestamp Now() {
  google::protobuf::Timestamp t;
  absl::Time now = absl::Now();
  t.set_seconds(absl::ToUnixSeconds(now));
  t.set_nanos(static_cast<int32_t>(
      (absl::ToUnixNanos(now) % 1000000000 + 1000000000) % 1000000000));
  return t;
}

}  // namespace

// One list of tasks (the main tasks, or `finally`) run to completion.
class Scheduler::Phase {
 public:
  Phase(Scheduler* s, const google::protobuf::RepeatedPtrField<v1::Task>& tasks,
        std::map<std::string, v1::TaskStatus>* statuses, absl::Time deadline,
        bool is_finally)
      : s_(s),
        statuses_(statuses),
        deadline_(deadline),
        is_finally_(is_finally) {
    for (const v1::Task& t : tasks) tasks_.push_back(&t);
  }

  // Runs every task of the phase; returns when all are final.
  void Run() {
    // No more workers than tasks: a huge parallelism must not start a
    // thread per slot.
    int workers =
        static_cast<int>(std::min<size_t>(std::max(1, s_->options_.parallelism),
                                          std::max<size_t>(1, tasks_.size())));
    std::vector<std::thread> pool;
    pool.reserve(workers);
    for (int i = 0; i < workers; ++i) pool.emplace_back([this] { Work(); });
    Loop();
    {
      MutexLock lock(&mu_);
      shutting_down_ = true;
    }
    for (std::thread& t : pool) t.join();
  }

  // Stops the phase: running attempts cancelled, pending tasks skipped.
  void Stop(v1::TaskState pending_state, const std::string& reason) {
    // Shared: HandleDone may drop a finished task's signal meanwhile.
    std::vector<std::shared_ptr<CancelSignal>> to_cancel;
    {
      MutexLock lock(&mu_);
      if (stopped_) return;
      stopped_ = true;
      stop_pending_ = true;
      stop_state_ = pending_state;
      stop_reason_ = reason;
      for (auto& [name, sig] : running_) to_cancel.push_back(sig);
    }
    for (const auto& c : to_cancel) c->Cancel();
  }

  bool is_finally() const { return is_finally_; }

  // Starts nothing new; running attempts still running at `deadline` are
  // stopped and reported PENDING.
  void Drain(absl::Time deadline) {
    MutexLock lock(&mu_);
    draining_ = true;
    drain_deadline_ = deadline;
    stop_pending_ = true;  // wake the loop
  }

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
  };
  struct Done {
    const v1::Task* task;
    int attempt;
    AttemptOutcome outcome;
  };

  v1::TaskStatus& Status(const std::string& name) { return (*statuses_)[name]; }

  void Emit(const std::string& task, v1::TaskState state, int attempt,
            int exit_code, const std::string& reason) {
    v1::TaskStateChanged e;
    e.set_task(task);
    e.set_state(state);
    e.set_attempt(attempt);
    e.set_exit_code(exit_code);
    e.set_reason(reason);
    s_->sink_->OnTaskEvent(e);
  }

  void Finish(const v1::Task& task, v1::TaskState state, int attempt,
              const AttemptOutcome* outcome, const std::string& reason) {
    v1::TaskStatus& st = Status(task.name());
    st.set_name(task.name());
    st.set_state(state);
    st.set_reason(reason);
    if (attempt > 0) st.set_attempts(attempt);
    if (outcome != nullptr) {
      st.set_exit_code(outcome->exit_code);
      st.set_error_code(static_cast<int32_t>(outcome->code));
      st.set_cache_key(outcome->cache_key);
      for (const auto& [k, v] : outcome->outputs) {
        (*st.mutable_outputs())[k] = v;
        s_->producers_[k].push_back(task.name());
      }
      for (const auto& [k, v] : outcome->results)
        (*st.mutable_results())[k] = v;
    }
    *st.mutable_finished() = Now();
    Emit(task.name(), state, attempt, st.exit_code(), reason);
  }

  // The final statuses a task may read: the producers of the artifacts it
  // consumes and the tasks its ${tasks.T...} references name. (Validation
  // guarantees those are ancestors.) Bounded by what the task uses, not by
  // the size of the graph.
  std::map<std::string, v1::TaskStatus> Relevant(const v1::Task& task) {
    std::map<std::string, v1::TaskStatus> out;
    const Scheduler::Uses& uses = s_->UsesOf(task);
    for (const std::string& artifact : uses.artifacts) {
      auto it = s_->producers_.find(artifact);
      if (it == s_->producers_.end()) continue;
      for (const std::string& producer : it->second) {
        auto st = statuses_->find(producer);
        if (st != statuses_->end()) out[producer] = st->second;
      }
    }
    for (const std::string& name : uses.tasks) {
      auto st = statuses_->find(name);
      if (st != statuses_->end()) out[name] = st->second;
    }
    return out;
  }

  // Decides what to do with a pending task whose needs may be final:
  // returns true if it was resolved (skipped) or launched.
  bool TryStart(const v1::Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    bool all_skipped = !task.needs().empty();
    for (const std::string& n : task.needs()) {
      auto it = statuses_->find(n);
      v1::TaskState st =
          it == statuses_->end() ? v1::TASK_PENDING : it->second.state();
      if (!IsFinal(st)) return false;
      if (IsFailure(st)) {
        Finish(
            task, v1::TASK_SKIPPED, 0, nullptr,
            absl::StrCat("needs ", n, ", which ",
                         st == v1::TASK_FAILED ? "failed" : "did not finish"));
        return true;
      }
      if (st != v1::TASK_SKIPPED) all_skipped = false;
    }
    if (all_skipped && !task.run_if_needs_skipped()) {
      Finish(task, v1::TASK_SKIPPED, 0, nullptr,
             "every task it needs was skipped");
      return true;
    }
    auto used = s_->options_.attempts_used.find(task.name());
    Launch(task, used == s_->options_.attempts_used.end()
                     ? 1
                     : std::max(0, used->second) + 1);
    return true;
  }

  void Launch(const v1::Task& task, int attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto signal = std::make_shared<CancelSignal>();
    CancelSignal* sig = signal.get();
    running_[task.name()] = std::move(signal);
    v1::TaskStatus& st = Status(task.name());
    st.set_name(task.name());
    st.set_state(v1::TASK_RUNNING);
    st.set_attempts(attempt);
    if (!st.has_started()) *st.mutable_started() = Now();
    Emit(task.name(), v1::TASK_RUNNING, attempt, 0, "");
    queue_.push_back(Work_{&task, attempt, Relevant(task), sig});
  }

  void Work() {
    while (true) {
      Work_ w;
      {
        MutexLock lock(&mu_);
        mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return HasWorkOrShutdown();
        });
        if (queue_.empty()) return;
        w = std::move(queue_.front());
        queue_.pop_front();
      }
      AttemptOutcome outcome =
          s_->runner_->RunAttempt(*w.task, w.attempt, w.finished, w.cancel);
      MutexLock lock(&mu_);
      done_.push_back(Done{w.task, w.attempt, std::move(outcome)});
    }
  }

  void HandleDone(Done d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const v1::Task& task = *d.task;
    running_.erase(task.name());
    AttemptOutcome& o = d.outcome;
    if (IsSuccess(o.state) || o.state == v1::TASK_SKIPPED) {
      Finish(task, o.state, d.attempt, &o, o.reason);
      return;
    }
    uint32_t allowed = task.hints().retries() + 1;
    if (!stopped_ && o.retryable && o.state != v1::TASK_CANCELLED &&
        static_cast<uint32_t>(d.attempt) < allowed) {
      absl::Duration wait = RetryBackoff(d.attempt, s_->options_.retry_backoff,
                                         s_->options_.max_retry_backoff);
      std::string reason =
          absl::StrCat("attempt ", d.attempt, " of ", allowed, " failed",
                       o.reason.empty() ? "" : ": ", o.reason, "; retrying in ",
                       absl::FormatDuration(wait));
      Status(task.name()).set_state(v1::TASK_PENDING);
      Emit(task.name(), v1::TASK_PENDING, d.attempt, o.exit_code, reason);
      retries_.push_back({absl::Now() + wait, &task, d.attempt + 1});
      return;
    }
    if (draining_ && (o.state == v1::TASK_CANCELLED || drain_killed_)) {
      // Interrupted by a shutdown: it runs again when the run resumes.
      Status(task.name()).set_state(v1::TASK_PENDING);
      Emit(task.name(), v1::TASK_PENDING, d.attempt, 0,
           "interrupted by shutdown; runs again on resume");
      return;
    }
    v1::TaskState final_state = o.state;
    std::string reason = o.reason;
    if (o.state == v1::TASK_CANCELLED && stopped_) {
      final_state = stop_state_ == v1::TASK_TIMED_OUT ? v1::TASK_TIMED_OUT
                                                      : v1::TASK_CANCELLED;
      if (reason.empty()) reason = stop_reason_;
    }
    Finish(task, final_state, d.attempt, &o, reason);
    if (IsFailure(final_state) && !is_finally_ &&
        s_->options_.on_failure != v1::CONTINUE && !stopped_) {
      StopLocked(v1::TASK_SKIPPED,
                 absl::StrCat("skipped: ", task.name(), " failed (fail-fast)"));
    }
  }

  void StopLocked(v1::TaskState state, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stopped_) return;
    stopped_ = true;
    stop_state_ = state;
    stop_reason_ = reason;
    for (auto& [name, sig] : running_) sig->Cancel();
  }

  void Loop() {
    MutexLock lock(&mu_);
    for (const v1::Task* t : tasks_) by_name_[t->name()] = t;
    std::vector<const v1::Task*> pending;
    for (const v1::Task* t : tasks_) {
      auto it = statuses_->find(t->name());
      if (it != statuses_->end() && IsFinal(it->second.state())) continue;
      auto skip = s_->static_skips_.find(t->name());
      if (skip != s_->static_skips_.end()) {
        Finish(*t, v1::TASK_SKIPPED, 0, nullptr, skip->second);
        continue;
      }
      Status(t->name()).set_name(t->name());
      Status(t->name()).set_state(v1::TASK_PENDING);
      pending.push_back(t);
    }
    while (true) {
      while (!done_.empty()) {
        Done d = std::move(done_.front());
        done_.pop_front();
        HandleDone(std::move(d));
      }
      absl::Time now = absl::Now();
      if (!stopped_ && deadline_ != absl::InfiniteFuture() &&
          now >= deadline_) {
        timed_out_ = true;
        StopLocked(v1::TASK_TIMED_OUT, is_finally_ ? "finally budget exhausted"
                                                   : "pipeline timed out");
      }
      if (draining_) {
        stop_pending_ = false;
        if (!drain_killed_ && now >= drain_deadline_) {
          drain_killed_ = true;
          for (auto& [name, sig] : running_) sig->Cancel();
        }
        if (running_.empty() && done_.empty()) return;
        mu_.AwaitWithDeadline(
            [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return HasNews(); },
            drain_killed_ ? absl::InfiniteFuture() : drain_deadline_);
        continue;
      }
      if (stopped_) {
        stop_pending_ = false;
        for (const v1::Task* t : pending) {
          Finish(*t,
                 stop_state_ == v1::TASK_TIMED_OUT ? v1::TASK_SKIPPED
                                                   : stop_state_,
                 0, nullptr, stop_reason_);
        }
        pending.clear();
        for (const Retry& r : retries_) {
          Finish(*r.task, v1::TASK_CANCELLED, r.attempt - 1, nullptr,
                 stop_reason_);
        }
        retries_.clear();
      }
      // Due retries re-enter the queue.
      for (auto it = retries_.begin(); it != retries_.end();) {
        if (it->when <= now && Capacity() > 0) {
          Launch(*it->task, it->attempt);
          it = retries_.erase(it);
        } else {
          ++it;
        }
      }
      // Start ready tasks in pipeline order, within the parallelism limit.
      bool progress = true;
      while (progress) {
        progress = false;
        for (auto it = pending.begin(); it != pending.end();) {
          if (Capacity() <= 0 && NeedsAllFinalAndRunnable(**it)) break;
          if (TryStart(**it)) {
            it = pending.erase(it);
            progress = true;
          } else {
            ++it;
          }
        }
      }
      if (pending.empty() && retries_.empty() && running_.empty() &&
          done_.empty()) {
        return;
      }
      absl::Time wake = deadline_;
      for (const Retry& r : retries_) wake = std::min(wake, r.when);
      mu_.AwaitWithDeadline(
          [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return HasNews(); }, wake);
    }
  }

  bool HasWorkOrShutdown() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return shutting_down_ || !queue_.empty();
  }
  bool HasNews() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !done_.empty() || stop_pending_;
  }

  int Capacity() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::max(1, s_->options_.parallelism) -
           static_cast<int>(running_.size());
  }

  // A pending task that would launch (not be skipped) if capacity allowed.
  bool NeedsAllFinalAndRunnable(const v1::Task& task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    bool all_skipped = !task.needs().empty();
    for (const std::string& n : task.needs()) {
      auto it = statuses_->find(n);
      if (it == statuses_->end() || !IsFinal(it->second.state())) return false;
      if (IsFailure(it->second.state())) return false;
      if (it->second.state() != v1::TASK_SKIPPED) all_skipped = false;
    }
    return !(all_skipped && !task.run_if_needs_skipped());
  }

  struct Retry {
    absl::Time when;
    const v1::Task* task;
    int attempt;
  };

  Scheduler* s_;
  std::vector<const v1::Task*> tasks_;
  std::map<std::string, const v1::Task*> by_name_;
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
};

Scheduler::Scheduler(const v1::Pipeline& pipeline,
                     std::map<std::string, std::string> static_skips,
                     std::map<std::string, v1::TaskStatus> prior,
                     TaskRunner* runner, EventSink* sink,
                     SchedulerOptions options)
    : pipeline_(pipeline),
      static_skips_(std::move(static_skips)),
      prior_(std::move(prior)),
      runner_(runner),
      sink_(sink),
      options_(options) {}

Scheduler::~Scheduler() = default;

void Scheduler::Cancel(const std::string& reason) {
  // Holding mu_ keeps the active phase alive while it is stopped.
  MutexLock lock(&mu_);
  int count = ++cancel_count_;
  if (cancel_reason_.empty()) cancel_reason_ = reason;
  Phase* phase = active_phase_;
  // `finally` survives a graceful cancel; only a second one stops it.
  if (phase == nullptr || (phase->is_finally() && count < 2)) return;
  phase->Stop(v1::TASK_CANCELLED, reason);
}

void Scheduler::Drain(absl::Duration grace) {
  MutexLock lock(&mu_);
  draining_ = true;
  drain_grace_deadline_ = absl::Now() + grace;
  if (active_phase_ != nullptr) active_phase_->Drain(drain_grace_deadline_);
}

namespace {

// Artifacts a task consumes: its inputs and what its kind reads.
void ConsumedArtifacts(const v1::Task& task, std::vector<std::string>* out) {
  for (const auto& input : task.inputs()) out->push_back(input.artifact());
  if (const pipeline::KindSpec* kind = pipeline::KindOf(task)) {
    for (const auto& c : kind->Facts(task).consumed) {
      out->push_back(c.artifact);
    }
  }
}

// Task names in ${tasks.NAME.…} references anywhere in the task.
void ReferencedTasks(const v1::Task& task, std::vector<std::string>* out) {
  std::string text = task.ShortDebugString();
  static constexpr char kPrefix[] = "${tasks.";
  for (size_t pos = text.find(kPrefix); pos != std::string::npos;
       pos = text.find(kPrefix, pos + 1)) {
    size_t begin = pos + sizeof(kPrefix) - 1;
    size_t end = text.find_first_of(".}", begin);
    if (end != std::string::npos)
      out->push_back(text.substr(begin, end - begin));
  }
}

}  // namespace

const Scheduler::Uses& Scheduler::UsesOf(const v1::Task& task) {
  auto it = uses_.find(&task);
  if (it != uses_.end()) return it->second;
  Uses& uses = uses_[&task];
  ConsumedArtifacts(task, &uses.artifacts);
  ReferencedTasks(task, &uses.tasks);
  return uses;
}

SchedulerResult Scheduler::Run() {
  SchedulerResult result;
  result.tasks = prior_;
  for (const auto& [name, status] : prior_) {
    for (const auto& [artifact, digest] : status.outputs()) {
      producers_[artifact].push_back(name);
    }
  }
  absl::Time deadline = options_.timeout > absl::ZeroDuration()
                            ? absl::Now() + options_.timeout
                            : absl::InfiniteFuture();
  Phase main(this, pipeline_.tasks(), &result.tasks, deadline, false);
  bool main_timed_out = false;
  {
    MutexLock lock(&mu_);
    active_phase_ = &main;
  }
  {
    std::string reason;
    bool cancelled;
    {
      MutexLock lock(&mu_);
      cancelled = cancel_count_ > 0;
      reason = cancel_reason_;
    }
    if (cancelled) main.Stop(v1::TASK_CANCELLED, reason);
  }
  {
    MutexLock lock(&mu_);
    if (draining_) main.Drain(drain_grace_deadline_);
  }
  main.Run();
  main_timed_out = main.timed_out();
  {
    MutexLock lock(&mu_);
    if (draining_ || main.drained()) {
      active_phase_ = nullptr;
      result.state = v1::RUN_RUNNING;
      result.reason = "interrupted by shutdown";
      return result;
    }
  }

  absl::Duration budget = options_.finally_timeout > absl::ZeroDuration()
                              ? options_.finally_timeout
                              : absl::Minutes(10);
  Phase fin(this, pipeline_.finally(), &result.tasks, absl::Now() + budget,
            true);
  int cancels;
  std::string cancel_reason;
  {
    MutexLock lock(&mu_);
    active_phase_ = &fin;
    cancels = cancel_count_;
    cancel_reason = cancel_reason_;
  }
  if (cancels >= 2) fin.Stop(v1::TASK_CANCELLED, cancel_reason);
  fin.Run();
  {
    MutexLock lock(&mu_);
    active_phase_ = nullptr;
    if (draining_ || fin.drained()) {
      result.state = v1::RUN_RUNNING;
      result.reason = "interrupted by shutdown";
      return result;
    }
    cancels = cancel_count_;
    cancel_reason = cancel_reason_;
  }

  bool failed = false;
  std::vector<std::string> failures;
  for (const auto& [name, st] : result.tasks) {
    if (IsFailure(st.state())) {
      failed = true;
      failures.push_back(name);
    }
  }
  if (cancels > 0) {
    result.state = v1::RUN_CANCELLED;
    result.reason = cancel_reason;
  } else if (main_timed_out) {
    result.state = v1::RUN_TIMED_OUT;
    result.reason = "pipeline timed out";
  } else if (failed) {
    result.state = v1::RUN_FAILED;
    result.reason = absl::StrCat("failed: ", absl::StrJoin(failures, ", "));
  } else {
    result.state = v1::RUN_SUCCEEDED;
  }
  return result;
}

}  // namespace kiln
