// Scheduler::Phase: the loop and its steps (phase.h).
#include "engine/scheduler/phase.h"

#include <algorithm>
#include <thread>

#include "absl/time/clock.h"

namespace kiln {

void Scheduler::Phase::Run() {
  // Twice the slots: a task whose command has ended gives its slot to the
  // next while its thread captures the outputs (waiting on the disk). No
  // more workers than tasks: a huge parallelism must not start a thread
  // per slot.
  int workers = static_cast<int>(std::min<size_t>(
      2 * static_cast<size_t>(std::max(1, s_->options_.parallelism)),
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

void Scheduler::Phase::Stop(v1::TaskState pending_state,
                            const std::string& reason) {
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

void Scheduler::Phase::Drain(absl::Time deadline) {
  MutexLock lock(&mu_);
  draining_ = true;
  drain_deadline_ = deadline;
  stop_pending_ = true;  // wake the loop
}

void Scheduler::Phase::StopLocked(v1::TaskState state,
                                  const std::string& reason) {
  if (stopped_) return;
  stopped_ = true;
  stop_state_ = state;
  stop_reason_ = reason;
  for (auto& [name, sig] : running_) sig->Cancel();
}

// Tasks not final yet; those the plan skips are finished as skipped here.
std::vector<const v1::Task*> Scheduler::Phase::InitialPending() {
  std::vector<const v1::Task*> pending;
  for (const v1::Task* t : tasks_) {
    auto it = statuses_->find(t->name());
    if (it != statuses_->end() && IsFinal(it->second.state())) continue;
    auto skip = s_->planned_skips_.find(t->name());
    if (skip != s_->planned_skips_.end()) {
      Finish(*t, v1::TASK_SKIPPED, 0, nullptr, skip->second);
      continue;
    }
    Status(t->name()).set_name(t->name());
    Status(t->name()).set_state(v1::TASK_PENDING);
    pending.push_back(t);
  }
  return pending;
}

void Scheduler::Phase::Loop() {
  MutexLock lock(&mu_);
  std::vector<const v1::Task*> pending = InitialPending();
  while (true) {
    while (!done_.empty()) {
      Done d = std::move(done_.front());
      done_.pop_front();
      HandleDone(std::move(d));
    }
    slot_news_ = false;
    absl::Time now = absl::Now();
    if (!stopped_ && deadline_ != absl::InfiniteFuture() && now >= deadline_) {
      timed_out_ = true;
      StopLocked(v1::TASK_TIMED_OUT, is_finally_ ? "finally budget exhausted"
                                                 : "pipeline timed out");
    }
    if (draining_) {
      if (DrainStep(now)) return;
      continue;
    }
    gate_news_ = false;
    // Approved gates go back to pending (they start like any ready task).
    pending.insert(pending.end(), released_.begin(), released_.end());
    released_.clear();
    if (stopped_) FinishStopped(&pending);
    absl::Time next_expiry = ExpireApprovals(now);
    StartReady(now, &pending);
    if (pending.empty() && retries_.empty() && running_.empty() &&
        done_.empty() && waiting_.empty()) {
      return;
    }
    absl::Time wake = std::min(deadline_, next_expiry);
    for (const Retry& r : retries_) wake = std::min(wake, r.when);
    mu_.AwaitWithDeadline(
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return HasNews(); }, wake);
  }
}

bool Scheduler::Phase::DrainStep(absl::Time now) {
  stop_pending_ = false;
  if (!drain_killed_ && now >= drain_deadline_) {
    drain_killed_ = true;
    for (auto& [name, sig] : running_) sig->Cancel();
  }
  if (running_.empty() && done_.empty()) return true;
  mu_.AwaitWithDeadline(
      [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return HasNews(); },
      drain_killed_ ? absl::InfiniteFuture() : drain_deadline_);
  return false;
}

void Scheduler::Phase::FinishStopped(std::vector<const v1::Task*>* pending) {
  stop_pending_ = false;
  for (const v1::Task* t : *pending) {
    Finish(*t,
           stop_state_ == v1::TASK_TIMED_OUT ? v1::TASK_SKIPPED : stop_state_,
           0, nullptr, stop_reason_);
  }
  pending->clear();
  for (auto& [task, approval] : waiting_) {
    gates_[task->name()] = approval;
    Finish(*task,
           stop_state_ == v1::TASK_TIMED_OUT ? v1::TASK_SKIPPED : stop_state_,
           0, nullptr, stop_reason_);
  }
  waiting_.clear();
  for (const Retry& r : retries_) {
    Finish(*r.task, v1::TASK_CANCELLED, r.attempt - 1, nullptr, stop_reason_);
  }
  retries_.clear();
}

void Scheduler::Phase::StartReady(absl::Time now,
                                  std::vector<const v1::Task*>* pending) {
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
    // Cache hits first: they need no slot, and finishing them readies more.
    progress = FinishCached(pending);
    for (auto it = pending->begin(); it != pending->end();) {
      std::string ignored;
      // A gate that is not passed yet needs no slot (it starts waiting).
      if (Capacity() <= 0 && PassedGate(**it) &&
          CheckNeeds(**it, &ignored) == NeedsVerdict::kRun) {
        break;
      }
      if (TryStart(**it)) {
        it = pending->erase(it);
        progress = true;
      } else {
        ++it;
      }
    }
  }
}

}  // namespace kiln
