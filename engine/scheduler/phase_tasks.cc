// Scheduler::Phase: starting, finishing and retrying tasks (phase.h).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/pipeline/plan.h"
#include "engine/scheduler/phase.h"

namespace kiln {

void Scheduler::Phase::Emit(
    const std::string& task, v1::TaskState state, int attempt, int exit_code,
    const std::string& reason, int error_code,
    const google::protobuf::Map<std::string, std::string>* outputs,
    const google::protobuf::Map<std::string, std::string>* results,
    const v1::ApprovalStatus* approval, const std::string& cache_key) {
  v1::TaskStateChanged e;
  e.set_task(task);
  e.set_state(state);
  e.set_attempt(attempt);
  e.set_exit_code(exit_code);
  e.set_reason(reason);
  e.set_error_code(error_code);
  if (outputs != nullptr) *e.mutable_outputs() = *outputs;
  if (results != nullptr) *e.mutable_results() = *results;
  if (approval != nullptr) *e.mutable_approval() = *approval;
  e.set_cache_key(cache_key);
  s_->sink_->OnTaskEvent(e);
}

void Scheduler::Phase::Finish(const v1::Task& task, v1::TaskState state,
                              int attempt, const AttemptOutcome* outcome,
                              const std::string& reason) {
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
    for (const auto& [k, v] : outcome->results) (*st.mutable_results())[k] = v;
  }
  *st.mutable_finished() = NowProto();
  newly_final_.push_back(task.name());
  auto gate = gates_.find(task.name());
  if (gate != gates_.end()) *st.mutable_approval() = gate->second;
  Emit(task.name(), state, attempt, st.exit_code(), reason, st.error_code(),
       &st.outputs(), &st.results(),
       gate != gates_.end() ? &gate->second : nullptr, st.cache_key());
  if (TraceRecorder* trace = s_->options_.trace) {
    absl::Time now = absl::Now();
    auto begin = task_begin_.find(&task);
    trace->Span(Track(task), "task",
                begin != task_begin_.end() ? begin->second : now, now,
                {{"state", v1::TaskState_Name(state)}});
  }
}

int Scheduler::Phase::Track(const v1::Task& task) const {
  return s_->options_.trace->TaskTrack(task.name());
}

void Scheduler::Phase::BeginTask(const v1::Task& task) {
  if (s_->options_.trace != nullptr) task_begin_.emplace(&task, absl::Now());
}

// The producers of the artifacts the task consumes and the tasks its
// ${tasks.T...} references name. (Validation guarantees those are
// ancestors.) Bounded by what the task uses, not by the size of the graph.
std::map<std::string, v1::TaskStatus> Scheduler::Phase::Relevant(
    const v1::Task& task) {
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

Scheduler::Phase::NeedsVerdict Scheduler::Phase::CheckNeeds(
    const v1::Task& task, std::string* skip_reason) {
  for (const std::string& n : task.needs()) {
    auto it = statuses_->find(n);
    v1::TaskState st =
        it == statuses_->end() ? v1::TASK_PENDING : it->second.state();
    if (!IsFinal(st)) return NeedsVerdict::kWait;
    if (IsFailure(st)) {
      *skip_reason =
          absl::StrCat("needs ", n, ", which ",
                       st == v1::TASK_FAILED ? "failed" : "did not finish");
      return NeedsVerdict::kSkip;
    }
  }
  // Needs skipped when they ran count like those the plan skipped.
  std::optional<std::string> skipped = pipeline::SkippedByNeeds(
      task, [this](const std::string& need) -> std::optional<bool> {
        auto it = statuses_->find(need);
        if (it == statuses_->end()) return std::nullopt;
        return it->second.state() == v1::TASK_SKIPPED;
      });
  if (!skipped.has_value()) return NeedsVerdict::kRun;
  *skip_reason = *std::move(skipped);
  return NeedsVerdict::kSkip;
}

bool Scheduler::Phase::TryStart(const v1::Task& task) {
  std::string reason;
  switch (CheckNeeds(task, &reason)) {
    case NeedsVerdict::kWait:
      return false;
    case NeedsVerdict::kSkip:
      Finish(task, v1::TASK_SKIPPED, 0, nullptr, reason);
      return true;
    case NeedsVerdict::kRun:
      break;
  }
  if (!PassedGate(task)) return Gate(task);
  Launch(task, FirstAttempt(task));
  return true;
}

int Scheduler::Phase::FirstAttempt(const v1::Task& task) const {
  auto used = s_->options_.attempts_used.find(task.name());
  return used == s_->options_.attempts_used.end()
             ? 1
             : std::max(0, used->second) + 1;
}

void Scheduler::Phase::MarkRunning(const v1::Task& task, int attempt) {
  v1::TaskStatus& st = Status(task.name());
  st.set_name(task.name());
  st.set_state(v1::TASK_RUNNING);
  st.set_attempts(attempt);
  if (!st.has_started()) *st.mutable_started() = NowProto();
  Emit(task.name(), v1::TASK_RUNNING, attempt, 0, "");
}

void Scheduler::Phase::Launch(const v1::Task& task, int attempt) {
  auto signal = std::make_shared<CancelSignal>();
  CancelSignal* sig = signal.get();
  sig->OnCommandDone([this, name = task.name()] {
    MutexLock lock(&mu_);
    if (running_.count(name) > 0 && command_done_.insert(name).second) {
      slot_news_ = true;
    }
  });
  running_[task.name()] = std::move(signal);
  BeginTask(task);
  MarkRunning(task, attempt);
  queue_.push_back(Work_{&task, attempt, Relevant(task), sig, absl::Now()});
}

std::vector<ReadyTask> Scheduler::Phase::Offerable(
    const std::vector<const v1::Task*>& candidates) {
  std::vector<ReadyTask> ready;
  for (const v1::Task* t : candidates) {
    if (offered_.count(t) > 0) continue;
    auto st = statuses_->find(t->name());
    if (st == statuses_->end() || st->second.state() != v1::TASK_PENDING) {
      continue;
    }
    std::string ignored;
    if (CheckNeeds(*t, &ignored) != NeedsVerdict::kRun) continue;
    // A gate comes before the cache: an approved task is offered when it
    // is released (see Loop), by RunAttempt's own lookup.
    if (!PassedGate(*t)) continue;
    offered_.insert(t);
    BeginTask(*t);
    ready.push_back(ReadyTask{t, FirstAttempt(*t), Relevant(*t)});
  }
  return ready;
}

bool Scheduler::Phase::FinishCached(std::vector<const v1::Task*>* pending) {
  std::set<const v1::Task*> finished;
  while (true) {
    std::vector<const v1::Task*> candidates;
    if (!offered_all_) {
      offered_all_ = true;
      for (size_t i = 0; i < tasks_.size(); ++i) {
        position_[tasks_[i]] = i;
        for (const std::string& need : tasks_[i]->needs()) {
          dependents_[need].push_back(tasks_[i]);
        }
      }
      candidates = *pending;
    } else {
      std::set<const v1::Task*> seen;
      for (const std::string& name : newly_final_) {
        auto it = dependents_.find(name);
        if (it == dependents_.end()) continue;
        for (const v1::Task* t : it->second) {
          if (seen.insert(t).second) candidates.push_back(t);
        }
      }
      std::sort(candidates.begin(), candidates.end(),
                [this](const v1::Task* a, const v1::Task* b)
                    ABSL_NO_THREAD_SAFETY_ANALYSIS {
                      return position_[a] < position_[b];
                    });
    }
    newly_final_.clear();
    std::vector<ReadyTask> ready = Offerable(candidates);
    if (ready.empty()) break;
    std::vector<std::optional<AttemptOutcome>> hits =
        s_->runner_->TryCached(ready);
    bool any = false;
    // The batch's events are recorded together (one transaction).
    s_->sink_->HoldEvents();
    for (size_t i = 0; i < ready.size() && i < hits.size(); ++i) {
      if (!hits[i].has_value() || hits[i]->state != v1::TASK_CACHED) continue;
      const v1::Task& task = *ready[i].task;
      // The same events as a hit found by a worker: RUNNING, then CACHED.
      MarkRunning(task, ready[i].attempt);
      Finish(task, v1::TASK_CACHED, ready[i].attempt, &*hits[i],
             hits[i]->reason);
      finished.insert(&task);
      any = true;
    }
    s_->sink_->ReleaseEvents();
    if (!any) break;
  }
  if (finished.empty()) return false;
  pending->erase(
      std::remove_if(pending->begin(), pending->end(),
                     [&](const v1::Task* t) { return finished.count(t) > 0; }),
      pending->end());
  return true;
}

void Scheduler::Phase::Work() {
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
    TraceRecorder* trace = s_->options_.trace;
    absl::Time picked = absl::Now();
    AttemptOutcome outcome =
        s_->runner_->RunAttempt(*w.task, w.attempt, w.finished, w.cancel);
    absl::Time returned = absl::Now();
    if (trace != nullptr) {
      int track = Track(*w.task);
      trace->Span(track, "queued", w.queued, picked);
      trace->Span(track, absl::StrCat("attempt ", w.attempt), picked, returned,
                  {{"state", v1::TaskState_Name(outcome.state)}});
    }
    MutexLock lock(&mu_);
    done_.push_back(Done{w.task, w.attempt, std::move(outcome), returned});
  }
}

bool Scheduler::Phase::MaybeRetry(const Done& d) {
  const v1::Task& task = *d.task;
  const AttemptOutcome& o = d.outcome;
  uint32_t allowed = task.hints().retries() + 1;
  if (stopped_ || !o.retryable || o.state == v1::TASK_CANCELLED ||
      static_cast<uint32_t>(d.attempt) >= allowed) {
    return false;
  }
  absl::Duration wait = RetryBackoff(d.attempt, s_->options_.retry_backoff,
                                     s_->options_.max_retry_backoff);
  std::string reason =
      absl::StrCat("attempt ", d.attempt, " of ", allowed, " failed",
                   o.reason.empty() ? "" : ": ", o.reason, "; retrying in ",
                   absl::FormatDuration(wait));
  Status(task.name()).set_state(v1::TASK_PENDING);
  Emit(task.name(), v1::TASK_PENDING, d.attempt, o.exit_code, reason);
  retries_.push_back({absl::Now() + wait, &task, d.attempt + 1});
  return true;
}

void Scheduler::Phase::HandleDone(Done d) {
  const v1::Task& task = *d.task;
  if (TraceRecorder* trace = s_->options_.trace) {
    trace->Span(Track(task), "hand-back", d.returned, absl::Now());
  }
  running_.erase(task.name());
  command_done_.erase(task.name());
  AttemptOutcome& o = d.outcome;
  if (IsSuccess(o.state) || o.state == v1::TASK_SKIPPED) {
    Finish(task, o.state, d.attempt, &o, o.reason);
    return;
  }
  if (MaybeRetry(d)) return;
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
  AfterFailure(task, final_state);
}

void Scheduler::Phase::AfterFailure(const v1::Task& task, v1::TaskState state) {
  if (IsFailure(state) && !is_finally_ &&
      s_->options_.on_failure != v1::CONTINUE && !stopped_) {
    StopLocked(v1::TASK_SKIPPED,
               absl::StrCat("skipped: ", task.name(), " failed (fail-fast)"));
  }
}

}  // namespace kiln
